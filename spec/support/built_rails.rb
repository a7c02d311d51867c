# frozen_string_literal: true

require "fileutils"

# The Rails scaffold app (RailsApp), with what an end-to-end run needs on top of the scaffold (an
# image in public/, a file upload, an action that fails), built once per test run with the real
# `megamode build`.
module BuiltRails
  NAME = "blog"
  # What a prebuilt package of it records (PackageBuild.prebuilt).
  MADE_FROM = "the Rails scaffold app with BuiltRails's extras"
  PNG = File.binread(File.expand_path("../fixtures/files/pixel.png", __dir__))

  class << self
    def package
      @package ||= build
    end

    private

    def build
      dir = PackageBuild.scratch("megamode-built-rails-")
      at_exit { FileUtils.rm_rf(dir) }
      prebuilt = PackageBuild.prebuilt(NAME, dir, MADE_FROM)
      return prebuilt if prebuilt
      app = File.join(dir, NAME)
      FileUtils.cp_r(RailsApp.path, app)
      add_extras(app)
      status, log = PackageBuild.build(app, File.join(dir, "out", NAME))
      raise "megamode build failed:\n#{log}" unless status.success?

      File.join(dir, "out", NAME)
    end

    def add_extras(app)
      # Rails 7.1+ generates production with force_ssl: on Lambda every URL is HTTPS, but the local
      # gateway is plain HTTP, so (as `megamode serve` advises) the app lets an environment
      # variable turn it off.
      production = File.join(app, "config", "environments", "production.rb")
      File.write(production, File.read(production).sub(/^(\s*)config\.force_ssl = true/,
                                                      '\1config.force_ssl = ENV["FORCE_SSL"] != "0"'))
      File.binwrite(File.join(app, "public", "pixel.png"), PNG)
      File.write(File.join(app, "app", "controllers", "uploads_controller.rb"), <<~RUBY)
        require "digest"

        class UploadsController < ApplicationController
          skip_forgery_protection

          def create
            file = params.require(:file)
            render json: { name: file.original_filename, size: file.size,
                           sha256: Digest::SHA256.hexdigest(file.read) }
          end

          def boom
            raise "boom: an app error on purpose"
          end
        end
      RUBY
      # The scaffold `rails new --minimal` makes has no JSON views (that needs jbuilder): a JSON API
      # of the app's own stands in for them.
      File.write(File.join(app, "app", "controllers", "api_posts_controller.rb"), <<~RUBY)
        class ApiPostsController < ApplicationController
          def index
            render json: Post.order(:id).map { |p| { id: p.id, title: p.title, body: p.body } }
          end

          def create
            post = Post.create!(params.require(:post).permit(:title, :body))
            render json: { id: post.id, title: post.title, body: post.body }, status: :created
          end
        end
      RUBY
      # Streaming (spec/runtime/streaming_spec.rb): Server-Sent Events from ActionController::Live, each
      # written once the test has the one before (it writes GATE/got-N), and send_file of a file
      # larger than Lambda's 6 MB buffered limit.
      File.write(File.join(app, "app", "controllers", "streams_controller.rb"), <<~RUBY)
        require "digest"
        require "tmpdir"

        class StreamsController < ApplicationController
          include ActionController::Live

          def events
            response.headers["Content-Type"] = "text/event-stream"
            gate = params.require(:gate)
            sse = ActionController::Live::SSE.new(response.stream)
            n = Integer(params.fetch(:n, "3"))
            n.times do |i|
              sse.write({ n: i }, id: i)
              next if i == n - 1

              500.times { break if File.exist?(File.join(gate, "got-\#{i}")); sleep 0.02 }
            end
            File.write(File.join(gate, "done"), "")
          ensure
            sse&.close
          end

          def download
            mb = Integer(params.fetch(:mb, "20"))
            path = File.join(Dir.tmpdir, "download-\#{mb}.bin")
            unless File.exist?(path)
              block = Random.new(mb).bytes(1024 * 1024)
              File.open(path, "wb") { |f| mb.times { f.write(block) } }
            end
            response.headers["X-Body-Sha256"] = Digest::SHA256.file(path).hexdigest
            send_file path, type: "application/octet-stream", filename: "download.bin"
          end
        end
      RUBY
      routes = File.join(app, "config", "routes.rb")
      text = File.read(routes)
      extra = %(  post "/uploads" => "uploads#create"\n  get "/boom" => "uploads#boom"\n) +
              %(  get "/api/posts" => "api_posts#index"\n  post "/api/posts" => "api_posts#create"\n) +
              %(  get "/streams/events" => "streams#events"\n  get "/streams/download" => "streams#download"\n)
      File.write(routes, text.sub(/end\s*\z/, "#{extra}end\n"))
    end
  end
end
