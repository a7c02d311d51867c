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
