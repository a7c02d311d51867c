# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "stringio"
require "megamode/local/lambda_environment"

# A Rails app directory with Active Storage (StorageRails), run locally behind an API Gateway REST
# stage `dev`: megamode sets it up as its package would (the stage in its links), without a change
# to the app's files, and no link carries the stage twice, whichever helper made it.
RSpec.describe "Stage links of a Rails app run from its directory" do
  # The link (src, else href, else the text) in the element with `id` of the links page.
  def link(page, id)
    element = page[%r{<p id="#{id}">(.*?)</p>}m, 1] or raise "no ##{id} in:\n#{page}"
    element[/(?:src|href)="([^"]+)"/, 1] || element.strip
  end

  # Every link the page has, by id, each with the stage exactly once, right after the host if any.
  def expect_stage_once(page, host:)
    links = %w[blob-path url-for asset blob-url asset-path asset-url video].to_h { |id| [id, link(page, id)] }
    origin = Regexp.escape(host)
    links.each do |id, value|
      expect(value.scan(%r{/dev(?=/)}).size).to eq(1), "#{id}: #{value}"
      expect(value).to match(%r{\A(?:#{origin})?/dev/}), "#{id}: #{value}"
    end
    %w[blob-path url-for blob-url asset-path asset-url video].each do |id|
      expect(links[id]).to match(%r{\A(?:#{origin})?/dev/rails/active_storage/}), "#{id}: #{links[id]}"
    end
    # Full URLs where Rails makes them, paths where it does not.
    expect(links["blob-path"]).to start_with("/dev/rails/active_storage/")
    expect(links["url-for"]).to start_with("/dev/rails/active_storage/")
    expect(links["blob-url"]).to start_with("#{host}/dev/rails/active_storage/")
    expect(links["asset-url"]).to start_with("#{host}/dev/rails/active_storage/")
    expect(links["asset"]).to eq("#{host}/dev/images/pixel.png")
    links
  end

  context "through megamode serve --app --format v1 --stage dev" do
    before(:all) do
      @server = LocalGateway.new("--app", StorageRails.path, "--format", "v1", "--stage", "dev",
                                 env: StorageRails::ENV_VARS)
    end
    after(:all) { @server.stop }

    let(:client) { @server.client }

    after { client.close }

    it "links to the attachment, the blob and the asset under /dev/ once, and each link answers" do
      host = "http://127.0.0.1:#{@server.port}"
      page = client.get("/dev/links/#{StorageRails.post_id}")
      expect(page.code).to eq("200"), "#{page.body[0, 2000]}\n#{@server.log[-3000..]}"

      links = expect_stage_once(page.body, host: host)
      # The links lead where they say: the blob's redirect to the disk service, the image's bytes.
      redirect = client.get(links["blob-path"])
      expect(redirect.code).to eq("302"), redirect.body[0, 500]
      served = LocalGateway::Client.location_path(redirect)
      expect(served).to start_with("/dev/rails/active_storage/disk/")
      expect(client.get(served).body.b).to eq(StorageRails::PNG)
      expect(client.get(links["asset"].delete_prefix(host)).body.b).to eq(StorageRails::PNG)
    end
  end

  it "is set up the same for megamode invoke --app with a REST API event of stage dev" do
    event = JSON.parse(File.read(File.join(SpecHelpers::ROOT, "spec/fixtures/events/rest_api.json")))
    path = "/links/#{StorageRails.post_id}"
    event.merge!("path" => path, "pathParameters" => { "proxy" => path.delete_prefix("/") })
    event["requestContext"]["path"] = "/dev#{path}"
    file = File.join(Dir.mktmpdir("megamode-stage-links-"), "event.json")
    File.write(file, JSON.generate(event))

    out, err, status = Open3.capture3(StorageRails::ENV_VARS, RbConfig.ruby, LocalGateway::EXE, "invoke",
                                      "--app", StorageRails.path, "--event", file)
    expect(status.success?).to be(true), err[-3000..]
    result = JSON.parse(out.lines.last)
    expect(result["statusCode"]).to eq(200), "#{result["body"].to_s[0, 2000]}\n#{err[-3000..]}"
    expect_stage_once(result["body"], host: "https://r3pmxmplak.execute-api.us-east-2.amazonaws.com")
  ensure
    FileUtils.rm_rf(File.dirname(file)) if file
  end

  describe "the handler process of an app directory" do
    let(:log) { StringIO.new }

    it "gives the app's server the adapter through RUBYOPT, after the developer's own options" do
      stub_const("ENV", ENV.to_h.merge("RUBYOPT" => "-W0"))
      env, = Megamode::Local::LambdaEnvironment.handler_process("app", StorageRails.path, 30, log: log)

      expect(env["RUBYOPT"]).to eq("-W0 -r#{Megamode::Local::LambdaEnvironment::RAILS_LOCAL_RUN}")
      expect(File.file?(Megamode::Local::LambdaEnvironment::RAILS_LOCAL_RUN)).to be(true)
      expect(log.string).to eq("")
    end

    it "says why a Rails app runs without it when megamode's path has a space" do
      stub_const("Megamode::Local::LambdaEnvironment::RAILS_LOCAL_RUN", "/opt/my gems/megamode/lib/megamode/local/rails_local_run.rb")
      env, = Megamode::Local::LambdaEnvironment.handler_process("app", StorageRails.path, 30, log: log)

      expect(env).not_to have_key("RUBYOPT")
      expect(log.string).to include("without megamode's Rails adapter", "/opt/my gems/megamode", "RUBYOPT cannot carry")
    end
  end
end
