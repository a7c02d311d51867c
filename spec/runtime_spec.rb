# frozen_string_literal: true

require "spec_helper"
require "megamode/gateway"

# megamode's two ways of running on Lambda, driven through the same Runtime API emulator with the
# same events: the Ruby handler under a Ruby runtime client (what AWS's does), and the native
# Runtime API loop (Megamode::Runtime.start). Their results must be the same bytes.
RSpec.describe "Megamode::Runtime.start, the native Runtime API loop" do
  LIB = File.join(SpecHelpers::ROOT, "lib")
  RUBY_CLIENT = File.join(SpecHelpers::ROOT, "spec", "fixtures", "runtime", "ruby_runtime_client.rb")

  def event(format, target)
    request = Megamode::Gateway::Request.new(method: "GET", target: target, peer: "203.0.113.9", body: "".b,
                                             headers: [["Host", "api.example.com"], ["Accept", "*/*"]])
    JSON.generate(Megamode::Gateway.new(format: format).event(request))
  end

  # Starts one way of running against a new emulator; yields the emulator, then stops both.
  def with_mode(mode, app: fixture_app("echo"))
    emulator = RuntimeApiEmulator.new
    env = { "AWS_LAMBDA_RUNTIME_API" => emulator.address, "MEGAMODE_APP_ROOT" => app,
            "MEGAMODE_TMP" => Dir.mktmpdir("megamode-runtime-", ENV.fetch("MEGAMODE_TMP")) }
    command =
      if mode == :native
        [RbConfig.ruby, "-I", LIB, "-e", 'require "megamode/runtime"; Megamode::Runtime.start']
      else
        handler = File.join(env["MEGAMODE_TMP"], "handler.rb")
        File.write(handler, <<~RUBY)
          require "megamode"
          Megamode.boot
          def handler(event:, context:) = Megamode.handler(event: event, context: context)
        RUBY
        [RbConfig.ruby, "-I", LIB, RUBY_CLIENT, handler]
      end
    pid = Process.spawn(env, *command, out: File::NULL, err: File::NULL, pgroup: true)
    yield emulator, pid
  ensure
    stop(pid) if pid
    emulator&.close
  end

  def stop(pid)
    Process.kill("TERM", -pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil # it had exited, and was reaped by the example
  end

  let(:events) do
    {
      "v2-png" => event("v2", "/respond?body=png&type=image/png"),
      "v1-cookies" => event("v1", "/respond?cookies=2&repeat=2&type=text/plain"),
      "alb-404" => event("alb", "/respond?status=404&type=text/plain"),
      "url-bytes" => event("url", "/respond?body=bytes&type=application/octet-stream"),
      "not-an-event" => JSON.generate("just a string")
    }
  end

  def run_all(mode)
    with_mode(mode) do |emulator|
      events.to_h { |name, body| [name, emulator.invoke(body, request_id: "req-#{name}")] }
    end
  end

  it "answers every HTTP source with the same bytes as the Ruby handler, and errors in Lambda's shape" do
    ruby = run_all(:ruby)
    native = run_all(:native)

    events.each_key.reject { |n| n == "not-an-event" }.each do |name|
      expect(native[name].kind).to eq(:response), "#{name}: #{native[name].inspect}"
      expect(native[name].body).to eq(ruby[name].body), name
    end
    expect(JSON.parse(native["v2-png"].body)).to include("statusCode" => 200, "isBase64Encoded" => true)

    error = native["not-an-event"]
    expect([error.kind, error.error_type]).to eq([:error, "Megamode::EventError"])
    expect(JSON.parse(error.body).slice("errorType", "errorMessage"))
      .to eq(JSON.parse(ruby["not-an-event"].body).slice("errorType", "errorMessage"))
  end

  it "passes the trace id and the deadline from the Runtime API's headers to the app" do
    with_mode(:native) do |emulator|
      trace = "Root=1-5f84c7a3-1234567890abcdef12345678;Parent=1234567890abcdef;Sampled=1"
      result = emulator.invoke(event("v2", "/anything"), request_id: "req-trace", trace_id: trace, timeout_ms: 12_000)
      seen = JSON.parse(JSON.parse(result.body).fetch("body"))

      expect(seen["headers"]).to include("HTTP_X_AMZN_TRACE_ID" => trace, "HTTP_X_REQUEST_ID" => "req-trace")
      context = JSON.parse(seen["headers"].fetch("HTTP_X_AMZN_LAMBDA_CONTEXT"))
      expect(context["deadline"] - (Time.now.to_f * 1000)).to be_between(0, 12_000)
    end
  end

  it "reports a boot failure as Lambda's init error, before asking for an event" do
    with_mode(:native, app: "/nonexistent/app") do |emulator, pid|
      _, status = Process.wait2(pid)
      expect(status.success?).to be(false)
      expect(emulator.init_errors.size).to eq(1)
      expect(emulator.init_errors.first.error_type).to match(/\AMegamode::(Boot|Config)Error\z/)
      expect(JSON.parse(emulator.init_errors.first.body)["errorMessage"]).to include("/nonexistent/app")
      expect(emulator.next_calls).to eq(0)
    end
  end
end
