# frozen_string_literal: true

require "spec_helper"
require "digest"

# A Sinatra app built with `megamode build` and served from its package by `megamode serve
# --package`, through every event source, by a cookie-keeping HTTP client.
RSpec.describe "A Sinatra app end to end, from its package" do
  before(:all) do
    @dir = PackageBuild.scratch("megamode-e2e-sinatra-")
    @package = PackageBuild.built("sinatra_build", @dir, package: "shop", ruby_line: %(ruby "3.3.0"))
  end
  after(:all) { FileUtils.rm_rf(@dir) }

  LocalGateway::SOURCES.each do |format, stage|
    context "through #{format}#{" with stage #{stage}" if stage}" do
      before(:all) { @gateway = LocalGateway.serve_package(@package, format, stage) }
      after(:all) { @gateway.stop }

      let(:prefix) { stage ? "/#{stage}" : "" }
      let(:client) { @gateway.client }

      after { client.close }

      it "follows links and a form post with its redirect, keeping the session" do
        index = client.get("#{prefix}/")
        expect(index.body).to include(%(href="#{prefix}/items/new"))
        form = client.get("#{prefix}/items/new")
        expect(form.body).to include(%(action="#{prefix}/items"))

        created = client.post_form("#{prefix}/items", "name" => "lamp")
        expect(created.code).to eq("303")
        expect(LocalGateway::Client.location_path(created)).to eq("#{prefix}/items/lamp")
        client.post_form("#{prefix}/items", "name" => "chair")

        expect(client.get("#{prefix}/items/lamp").body).to eq("Item lamp (2 in your basket)")
        expect(JSON.parse(client.get("#{prefix}/items.json").body)).to eq("items" => %w[lamp chair])
      end

      it "serves public/ images, takes an upload, and answers 404 and 500" do
        image = client.get("#{prefix}/pixel.png")
        expect(image["content-type"]).to eq("image/png")
        expect(image.body.b).to eq(BuiltRails::PNG)

        data = Random.new(3).bytes(20_000)
        form = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n" \
               "Content-Type: application/octet-stream\r\n\r\n".b + data + "\r\n--b--\r\n".b
        uploaded = client.post("#{prefix}/uploads", form, "Content-Type" => "multipart/form-data; boundary=b")
        expect(JSON.parse(uploaded.body)).to eq("name" => "a.bin", "size" => 20_000, "sha256" => Digest::SHA256.hexdigest(data))

        expect(client.get("#{prefix}/nothing-here").code).to eq("404")
        expect(client.get("#{prefix}/boom").code).to eq("500")
        expect(@gateway.wait_for_log("boom: a Sinatra error on purpose")).to include("boom: a Sinatra error on purpose")
      end
    end
  end
end
