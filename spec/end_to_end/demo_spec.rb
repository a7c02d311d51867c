# frozen_string_literal: true

require "spec_helper"
require "open3"

# README's first command, bin/demo, runs examples/demo.rb (after installing and compiling): it must keep
# working.
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
    # Its image is bin/demo's part (the example below): here the package is for local runs (this
    # host's Ruby), or no engine runs (the Lambda stand-in), and the demo says why it goes without.
    expect(out).to match(/^== The same package as a container image.*\nSkipped: /)
  end

  # README's first command, bin/demo, whole: the package built and run in the Lambda stand-in, then
  # its image FROM the stand-in's public.ecr.aws/lambda/ruby:3.4, built and run on this machine.
  # Skipped, saying why, without root, without an engine that runs, or without the stand-in's roots
  # (which bin/demo would spend about 12 minutes making).
  it "as bin/demo, also builds the package as an image and answers the same events from it, both ways and with SnapStart", :image do
    skip "bin/demo needs root (bin/lambda-root, bin/lambda-image)" unless Process.euid.zero?
    require "megamode/build"
    engine = begin
      Megamode::Build::Engine.runnable(instead: "run bin/demo where one runs")
    rescue Megamode::BuildError => e
      skip "no container engine runs here: #{e.message}"
    end
    roots = ENV.fetch("MEGAMODE_LAMBDA_ROOTS", "/dev/shm/megamode-lambda")
    missing = %w[runtime build baselibs gemdev ruby3.4 gems-ruby3.4].reject { |l| File.file?(File.join(roots, "#{l}.stamp")) }
    unless missing.empty?
      skip "the Lambda stand-in's #{missing.join(", ")} layers are not in #{roots} " \
           "(bin/lambda-root ruby3.4 build -- true makes them)"
    end

    out, status = Open3.capture2e({ "MEGAMODE_CONTAINER_ENGINE" => engine }, File.join(SpecHelpers::ROOT, "bin", "demo"))

    expect(status).to be_success, out
    expect(out).to include("megamode build: verified for ruby3.4", "START RequestId:")
    image = out[/^== The same package as a container image.*/m]
    expect(image).to match(%r{^\w+ build: megamode-notes:latest \(\d+ MB\) FROM public\.ecr\.aws/lambda/ruby:3\.4}), out
    %w[handler native].each do |mode|
      run = image[/^== megamode invoke --image megamode-notes:latest --mode #{mode}: .*?(?=^== |^Serve the image)/m]
      expect(run).to match(%r{POST /dev/notes \(the form\) +303 .*-> https://abc123\.execute-api\.us-east-1\.amazonaws\.com/dev/notes/1}),
                     out
      expect(run).to match(%r{GET /dev/notes\.json +200 application/json.*"text":"Hello from Lambda"})
      expect(run).to match(%r{GET /dev/megamode\.png +200 image/png 3143 bytes \(base64\)})
      expect(run).to match(/cold start: copy \d+ ms, lazy-load \d+ ms, spawn to ready \d+ ms/)
    end
    snap = image[/^== megamode invoke --image megamode-notes:latest --snapstart .*?(?=^Serve the image)/m]
    expect(snap).to match(%r{POST /dev/notes \(the form\) +303 .*-> https://abc123\.execute-api\.us-east-1\.amazonaws\.com/dev/notes/1}),
                    out
    expect(snap).to include("restoring it after a freeze of 3 s").and include("SnapStart: restored after a")
    expect(snap).to match(/REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tRestore Duration: [\d.]+ ms\tBilled Restore Duration: \d+ ms/)
    expect(Open3.capture2(engine, "ps", "-a", "-q", "--filter", "ancestor=megamode-notes:latest").first).to be_empty
  end
end
