# frozen_string_literal: true

require "spec_helper"

# A Sinatra app built with `megamode build` and served from its package by `megamode serve
# --package`, through every event source, by a cookie-keeping HTTP client (the checks:
# spec/support/sinatra_shop_examples.rb, which image_package_spec runs on the app's image too).
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

      include_examples "the Sinatra shop behind a gateway"
    end
  end
end
