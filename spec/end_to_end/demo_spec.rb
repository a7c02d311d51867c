# frozen_string_literal: true

require "spec_helper"
require "open3"

# README's first command runs examples/demo.rb (after installing and compiling): it must keep working.
RSpec.describe "the demo" do
  it "packages the example Rails app, answers its events from the package and shows the cold start" do
    # As a user runs it: the app copied where it is on Lambda (the specs' own MEGAMODE_TMP would not
    # fit the bootsnap cache the build ships; as root each run has a fresh tmpfs there).
    out, status = Open3.capture2e({ "MEGAMODE_TMP" => nil }, RbConfig.ruby, File.join(SpecHelpers::ROOT, "examples", "demo.rb"))

    expect(status).to be_success, out
    expect(out).to include("megamode build: building", "(a Rails app (Rails ", "START RequestId:", "Rails: ")
    expect(out).to match(%r{POST /dev/notes \(the form\) +303 .*-> https://abc123\.execute-api\.us-east-1\.amazonaws\.com/dev/notes/1})
    expect(out).to match(%r{GET /dev/notes\.json +200 application/json.*"text":"Hello from Lambda"})
    expect(out).to match(%r{GET /dev/megamode\.png +200 image/png 3143 bytes \(base64\)})
    expect(out).to match(/cold start: copy \d+ ms, lazy-load \d+ ms, spawn to ready \d+ ms/)
    if Gem::Specification.find_all_by_name("bootsnap").empty?
      # The Lambda stand-in has no bootsnap (see bin/lambda-root): the demo says it goes without.
      expect(out).to include("(without bootsnap, which this Ruby has not)")
    else
      # The app, like every app `rails new` makes, uses bootsnap: the build ships its cache.
      expect(out).to match(/spawn to ready \d+ ms \(bootsnap: the package's cache, \d+ of its \d+ entries written while booting\)/)
      expect(out).to include("megamode build: bootsnap: made its cache for /tmp/megamode/app-")
    end
    # puma's last boot line belongs to the prewarm, which waited for the boot, not to the next event.
    prewarm = out[/^START RequestId: .*?^END RequestId: /m]
    expect(prewarm).to include("Use Ctrl-C to stop")
  end
end
