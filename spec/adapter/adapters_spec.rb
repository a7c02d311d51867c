# frozen_string_literal: true

require "spec_helper"
require "open3"
require "rack"
require "megamode/rack/prefix"

RSpec.describe Megamode::Rack::Prefix do
  # A Rack app that answers with the SCRIPT_NAME and PATH_INFO it was given.
  let(:app) do
    described_class.new(->(env) { [200, {}, ["#{env["SCRIPT_NAME"]}|#{env["PATH_INFO"]}"]] })
  end

  def get(path, prefix)
    headers = prefix ? { "HTTP_X_FORWARDED_PREFIX" => prefix } : {}
    Rack::MockRequest.new(app).get(path, headers).body
  end

  it "moves the forwarded prefix into SCRIPT_NAME and leaves the path alone" do
    expect(get("/posts/1", "/dev")).to eq("/dev|/posts/1")
    expect(get("/posts", "/v1/shop/")).to eq("/v1/shop|/posts")
    expect(get("/posts", nil)).to eq("|/posts")
  end

  it "ignores a prefix that could lead links elsewhere" do
    ["//evil.example", "/a/../b", "dev", "/dev?x=1", "/dev#x", "https://evil.example", "/a b"].each do |prefix|
      expect(get("/posts", prefix)).to eq("|/posts"), prefix
    end
  end
end

# The Rails adapter in a real Rails application, booted in a process of its own.
RSpec.describe "Megamode::Rails" do
  def boot_rails(megamode:, path: "/posts/7")
    lib = File.join(SpecHelpers::ROOT, "lib")
    script = <<~RUBY
      require "rails"
      require "action_controller/railtie"
      require "megamode/rails"
      class Adapted < Rails::Application
        config.root = Dir.pwd
        config.eager_load = false
        config.logger = Logger.new(nil)
        config.secret_key_base = "s" * 64
        config.hosts << "app.example"        # as development has: host authorization is on
        config.public_file_server.enabled = false
        routes.append do
          get "/posts/:id" => "posts#show", as: :post
          get "/links" => "posts#links"
        end
      end
      # Twice, as when an app's own initializer and a local run's both call it.
      2.times { Megamode::Rails.configure(Adapted) }
      Adapted.initialize!
      class PostsController < ActionController::Base
        def show
          render plain: [post_url(params[:id]), helpers.asset_path("app.css")].join(" ")
        end

        # A route's path (which carries SCRIPT_NAME) given to every kind of asset helper.
        def links
          h = helpers
          render plain: [h.image_tag(post_path(8)), h.asset_path(post_path(8)), h.asset_url(post_path(8)),
                         h.image_path(post_path(8)), h.video_tag(post_path(8)), h.audio_tag(post_path(8)),
                         h.stylesheet_link_tag(post_path(8)), h.javascript_include_tag(post_path(8)),
                         h.image_tag("pic.png"), h.image_url("pic.png"), h.image_tag(post_url(8))].join("\n")
        end
      end
      env = Rack::MockRequest.env_for("http://abc123.execute-api.us-east-1.amazonaws.com#{path}",
                                      "HTTP_HOST" => "abc123.execute-api.us-east-1.amazonaws.com",
                                      "HTTP_X_FORWARDED_PREFIX" => "/dev", "HTTP_X_FORWARDED_PROTO" => "https")
      status, _, body = Adapted.call(env)
      text = +""
      body.each { |part| text << part }
      puts [status, text, Adapted.config.public_file_server.enabled].inspect
    RUBY
    out, err, status = Open3.capture3({ "MEGAMODE" => megamode ? "1" : nil, "RUBYLIB" => lib },
                                      RbConfig.ruby, "-e", script, chdir: Dir.tmpdir)
    raise "Rails did not run (#{status}): #{err}" unless status.success?

    eval(out.lines.last) # rubocop:disable Security/Eval -- our own script's inspect output
  end

  it "admits the execute-api host, serves public/, and links with the stage prefix under megamode" do
    status, text, public_files = boot_rails(megamode: true)

    expect(status).to eq(200), text.to_s[0, 2000]
    expect(text).to eq("https://abc123.execute-api.us-east-1.amazonaws.com/dev/posts/7 " \
                       "https://abc123.execute-api.us-east-1.amazonaws.com/dev/app.css")
    expect(public_files).to be(true)
  end

  it "adds the stage to no path that already carries it, whichever asset helper is given it" do
    status, text, = boot_rails(megamode: true, path: "/links")

    expect(status).to eq(200), text.to_s[0, 2000]
    host = "https://abc123.execute-api.us-east-1.amazonaws.com"
    image, path, url, image_path, video, audio, css, js, asset, asset_url, full = text.split("\n")
    expect(image).to eq(%(<img src="/dev/posts/8" />))
    expect(path).to eq("/dev/posts/8")
    expect(url).to eq("#{host}/dev/posts/8")
    expect(image_path).to eq("/dev/posts/8")
    expect(video).to eq(%(<video src="/dev/posts/8"></video>))
    expect(audio).to eq(%(<audio src="/dev/posts/8"></audio>))
    expect(css).to include(%(href="/dev/posts/8.css"))
    expect(js).to include(%(src="/dev/posts/8.js"))
    # What has no prefix of its own still gets it, through the asset host.
    expect(asset).to eq(%(<img src="#{host}/dev/images/pic.png" />))
    expect(asset_url).to eq("#{host}/dev/images/pic.png")
    expect(full).to eq(%(<img src="#{host}/dev/posts/8" />))
  end

  it "changes nothing outside megamode" do
    status, text, public_files = boot_rails(megamode: false)

    expect(status).to eq(403), "host authorization blocks the unknown host: #{text}"
    expect(public_files).to be(false)
  end
end
