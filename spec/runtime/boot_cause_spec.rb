# frozen_string_literal: true

require "spec_helper"
require "megamode/local/runtime_api_emulator"

# A Rails app that cannot boot, as a developer's typo or a variable missing on Lambda makes it: every
# error megamode gives for it (a BootError's message, what Lambda's console shows) leads with the
# app's own failure line, then the context, on the first invocation and on the next (each starts the
# server again), through the Ruby handler and through the native loop, at init too.
RSpec.describe "a boot failure's error, which leads with the app's cause" do
  SECRET = { "SECRET_KEY_BASE" => "boot-cause-#{"0" * 64}" }.freeze
  UNSET = "UNSET_PAYMENTS_API_KEY"
  ROUTES_TYPO = <<~RUBY
    Rails.application.routes.draw do
      resources :posts
      get "/about", to: "posts#index", as: :about,
      resourcs :comments
    end
  RUBY

  around do |example|
    Dir.mktmpdir("megamode-boot-cause-") do |dir|
      @app = File.join(dir, RailsApp::NAME)
      FileUtils.cp_r(RailsApp.path, @app)
      example.run
    end
  end

  before { expect(ENV).not_to include(UNSET) }

  def break_routes
    File.write(File.join(@app, "config", "routes.rb"), ROUTES_TYPO)
  end

  def read_unset_variable
    File.write(File.join(@app, "config", "initializers", "megamode_test.rb"), %(ENV.fetch("#{UNSET}")\n))
  end

  # Ruby 3.1's parser and 3.4's (prism) word a syntax error differently; both give the file, the
  # line and the code.
  def expect_routes_typo_first(message)
    expect(message).to start_with("SyntaxError: config/routes.rb:4: syntax error")
    cause, context = message.split("\n(the app's server ", 2)
    expect(cause).to include("resourcs :comments")
    expect(context).to start_with("exited with status 1 while booting")
  end

  UNSET_CAUSE = %(KeyError: key not found: "#{UNSET}" (config/initializers/megamode_test.rb:1)\n) +
                "On Lambda: set #{UNSET} in the function's environment (the template's Environment: Variables).\n" \
                "(the app's server exited with status 1 while booting; command `exec bundle exec puma"

  # The handler's BootError messages for two events in a row.
  def handler_errors
    ENV["SECRET_KEY_BASE"] ||= SECRET["SECRET_KEY_BASE"]
    Megamode.configure { |c| c.app_root = @app }
    2.times.map do
      Megamode.handler(event: v2_event("/posts"), context: context)
      raise "the app booted"
    rescue Megamode::BootError => e
      e.message
    end
  end

  # The native loop's invocation errors for two events in a row, or its init error (`init_waits`:
  # as with provisioned concurrency, when init waits for the server).
  def native_errors(init_waits: false)
    env = SECRET.merge("MEGAMODE_APP_ROOT" => @app, "MEGAMODE_TMP" => Dir.mktmpdir("boot-cause-", ENV.fetch("MEGAMODE_TMP")))
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "provisioned-concurrency" if init_waits
    command = [RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e", 'require "megamode/runtime"; Megamode::Runtime.start']
    FunctionProcess.run(command, env) do |emulator, pid|
      if init_waits
        Process.wait(pid)
        next emulator.init_errors.map { |e| [e.error_type, JSON.parse(e.body)["errorMessage"]] }
      end
      2.times.map do |i|
        result = emulator.invoke(FunctionProcess.event("v2", "/posts"), request_id: "req-#{i}")
        expect(result.kind).to eq(:error), result.body
        [result.error_type, JSON.parse(result.body)["errorMessage"]]
      end
    end
  end

  it "names a typo in config/routes.rb first, on every invocation, from the handler" do
    break_routes
    errors = handler_errors

    expect(errors.size).to eq(2)
    errors.each { |message| expect_routes_typo_first(message) }
  end

  it "names the variable an initializer's ENV.fetch missed, and where to set it on Lambda, on every invocation" do
    read_unset_variable
    errors = handler_errors

    expect(errors).to all(start_with(UNSET_CAUSE))
  end

  it "gives the native loop's invocation errors the same lead" do
    break_routes
    errors = native_errors

    expect(errors.map(&:first)).to eq(["Megamode::BootError"] * 2)
    errors.each { |_, message| expect_routes_typo_first(message) }
  end

  it "gives the native loop's init error the same lead when init waits for the server" do
    read_unset_variable
    errors = native_errors(init_waits: true)

    expect(errors.size).to eq(1)
    expect(errors.first.first).to eq("Megamode::BootError")
    expect(errors.first.last).to start_with(UNSET_CAUSE)
  end
end
