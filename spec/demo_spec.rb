# frozen_string_literal: true

require "spec_helper"
require "open3"

# README's first command runs examples/demo.rb (after installing and compiling): it must keep working.
RSpec.describe "the demo" do
  it "packages the example Rails app, answers its events from the package and shows the cold start" do
    out, status = Open3.capture2e(RbConfig.ruby, File.join(SpecHelpers::ROOT, "examples", "demo.rb"))

    expect(status).to be_success, out
    expect(out).to include("megamode build: building", "(a Rails app (Rails ", "START RequestId:", "Rails: ")
    expect(out).to match(%r{POST /dev/notes \(the form\) +303 .*-> https://abc123\.execute-api\.us-east-1\.amazonaws\.com/dev/notes/1})
    expect(out).to match(%r{GET /dev/notes\.json +200 application/json.*"text":"Hello from Lambda"})
    expect(out).to match(%r{GET /dev/megamode\.png +200 image/png 3143 bytes \(base64\)})
    expect(out).to match(/cold start: stage \d+ ms, lazy-load \d+ ms, spawn to ready \d+ ms/)
  end
end
