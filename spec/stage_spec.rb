# frozen_string_literal: true

# Staging: the server runs from a writable copy of the app under MEGAMODE_TMP.
RSpec.describe "staging the app" do
  def whoami
    JSON.parse(Megamode.handler(event: v2_event("/"), context: context)["body"])
  end

  it "runs an app that writes to tmp/ and log/ from its staged copy, and leaves the original alone" do
    app = fixture_app("writer")
    Megamode.configure do |c|
      c.app_root = app
      c.stage = "always"
    end
    log = nil
    first = nil
    log = capture_stdout_fd { first = whoami }
    second = whoami

    expect(first["pwd"]).to start_with(File.join(ENV.fetch("MEGAMODE_TMP"), "app-"))
    expect(first["dir"]).to eq(first["pwd"]), "__dir__ is the staged copy, not the package"
    expect(second["log_lines"]).to eq(2)
    expect(log).to match(/megamode: staged the app into .* in \d+ ms/)
    expect(log).to match(/megamode: cold start: stage \d+ ms, lazy-load \d+ ms, spawn to ready/)
    expect(Dir.exist?(File.join(app, "tmp"))).to be(false)
    expect(Dir.exist?(File.join(app, "log"))).to be(false)
  end

  it "stages once: a second boot in the same environment copies nothing" do
    Megamode.configure do |c|
      c.app_root = fixture_app("writer")
      c.stage = "always"
    end
    first = whoami["pwd"]
    Megamode.shutdown
    log = capture_stdout_fd { expect(whoami["pwd"]).to eq(first) }

    expect(log).not_to include("staged the app")
  end

  it "boots a Rails app from its staged copy" do
    ENV["SECRET_KEY_BASE"] ||= "megamode-test-#{"0" * 64}"
    Megamode.configure do |c|
      c.app_root = RailsApp.path
      c.stage = "always"
    end
    result = nil
    log = capture_stdout_fd { result = Megamode.handler(event: v2_event("/posts"), context: context) }

    expect(result["statusCode"]).to eq(200)
    expect(log).to include("staged the app into")
    expect(log).to match(/^Rails: .*Completed 200 OK/)
  end
end

RSpec.describe "staging in a filesystem like Lambda's (read-only package, tmpfs /tmp)" do
  # Outside /tmp, which the Lambda-like filesystem replaces, as /var/task is.
  let(:package) { Dir.mktmpdir("megamode-package-", File.directory?("/dev/shm") ? "/dev/shm" : "/var/tmp") }

  before { FileUtils.cp_r(File.join(fixture_app("writer"), "."), package) }
  after { FileUtils.rm_rf(package) }

  it "stages a read-only package by itself and runs it from /tmp" do
    result, log = LambdaFs.invoke(package: package, event: v2_event("/"))
    body = JSON.parse(result.fetch("body"))

    expect(body["pwd"]).to start_with("/tmp/megamode/app-")
    expect(log).to include("megamode: staged the app into /tmp/megamode/app-")
    expect(Dir.children(package)).to eq(["config.ru"]), "the package is untouched"
  end

  it "refuses, naming both sizes and the setting to raise, when /tmp is too small for the app" do
    File.binwrite(File.join(package, "big.bin"), Random.new(1).bytes(3 * 1024 * 1024))
    result, = LambdaFs.invoke(package: package, event: v2_event("/"), tmp_size: "2m")

    expect(result["errorType"]).to eq("Megamode::BootError")
    expect(result["errorMessage"]).to match(%r{staging the app needs 4 MB in /tmp/megamode but only [12] MB are free})
    expect(result["errorMessage"]).to include("EphemeralStorage")
  end
end
