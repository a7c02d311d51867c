# frozen_string_literal: true

require "spec_helper"
require "megamode/local/gateway"
require "megamode/local/runtime_api_emulator"
require "net/http"

# megamode's two ways of running on Lambda, driven through the same Runtime API emulator with the
# same events: the Ruby handler under a Ruby runtime client (what AWS's does), and the native
# Runtime API loop (Megamode::Runtime.start). Their results must be the same bytes.
RSpec.describe "Megamode::Runtime.start, the native Runtime API loop" do
  LIB = File.join(SpecHelpers::ROOT, "lib")
  RUBY_CLIENT = File.join(SpecHelpers::ROOT, "spec", "fixtures", "runtime", "ruby_runtime_client.rb")

  def event(format, target)
    FunctionProcess.event(format, target)
  end

  # Starts one way of running against a new emulator; yields the emulator, then stops both.
  def with_mode(mode, app: fixture_app("echo"), command: nil, env: {}, log: File::NULL)
    env = env.merge("MEGAMODE_APP_ROOT" => app, "MEGAMODE_TMP" => Dir.mktmpdir("megamode-runtime-", ENV.fetch("MEGAMODE_TMP")))
    command ||=
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
    FunctionProcess.run(command, env, log: log) { |emulator, pid| yield emulator, pid }
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

  it "keeps a client's owned headers spelled with _ from the app: no source's redirect carries a forged prefix" do
    with_mode(:native, app: fixture_app("prefixed"), env: ForgedHeaders::SERVER_ENV) do |emulator|
      %w[url alb v1 v2].each do |format|
        result = JSON.parse(emulator.invoke(FunctionProcess.event(format, "/login", headers: ForgedHeaders::HEADERS)).body)
        seen = JSON.parse(result.fetch("body"))

        expect(result["statusCode"]).to eq(302), format
        location = result["headers"]&.fetch("location") || result["multiValueHeaders"]["location"].first
        expect([seen["script_name"], location]).to eq(["", "/signed-in"]), format
        expect(ForgedHeaders.leaked(seen["headers"])).to eq([]), format
        expect(seen["headers"]).not_to include("HTTP_X_AMZ_TENANT_ID")
      end
    end
  end

  it "hands events that are not HTTP to a Ruby handler when one is given, and HTTP events to the app" do
    script = <<~'RUBY'
      require "megamode/runtime"
      Megamode::Runtime.start(events: lambda do |event:, context:|
        raise ArgumentError, "no records" if event["Records"].empty?

        # The binding holds the handler: it survives a collection and a compaction mid-loop.
        GC.start
        GC.compact if GC.respond_to?(:compact)
        { "handled" => event["Records"].size, "by" => "ruby", "request" => context.aws_request_id,
          "time_left" => context.get_remaining_time_in_millis.positive?, "trace" => ENV["_X_AMZN_TRACE_ID"],
          "context" => [context.class.name, context.trace_id, context.tenant_id, context.invoked_function_arn] }
      end)
    RUBY
    log = Tempfile.new("megamode-events-log")
    trace = "Root=1-5f84c7a3-1234567890abcdef12345678;Parent=1234567890abcdef;Sampled=1"
    with_mode(:native, command: [RbConfig.ruby, "-I", LIB, "-e", script], log: log.path) do |emulator|
      sqs = emulator.invoke({ "Records" => [{ "eventSource" => "aws:sqs", "body" => "hi" }] }, request_id: "req-sqs",
                                                                                              trace_id: trace, tenant_id: "t-1")
      expect(sqs.kind).to eq(:response)
      expect(JSON.parse(sqs.body)).to eq("handled" => 1, "by" => "ruby", "request" => "req-sqs", "time_left" => true,
                                         "trace" => trace, "context" => ["Megamode::Context", trace, "t-1",
                                                                         Megamode::Local::Identity.function_arn])

      failed = emulator.invoke({ "Records" => [] }, request_id: "req-empty")
      expect([failed.kind, failed.error_type]).to eq([:error, "ArgumentError"])
      expect(JSON.parse(failed.body)).to include("errorType" => "ArgumentError", "errorMessage" => "no records")
      expect(File.read(log.path)).to include("megamode: ArgumentError: no records")

      http = emulator.invoke(event("v2", "/respond?type=text/plain"), request_id: "req-http")
      expect(JSON.parse(http.body)).to include("statusCode" => 200)
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

  context "from a built package, with the local tools" do
    before(:all) do
      @dir = PackageBuild.scratch("megamode-native-package-")
      @package = PackageBuild.built("rack_hello", @dir, package: "hello")
    end
    after(:all) { FileUtils.rm_rf(@dir) }

    it "carries the exec wrapper, and the template can turn it on" do
      wrapper = File.join(@package, "megamode", "runtime")
      expect(File.stat(wrapper).mode & 0o111).not_to eq(0)
      expect(File.read(wrapper)).to include("Megamode::Runtime.start")
      expect(File.read(File.join(@dir, "out", "template.yaml")))
        .to include("AWS_LAMBDA_EXEC_WRAPPER: !If [NativeLoop, /var/task/megamode/runtime, !Ref AWS::NoValue]")
    end

    it "gives `megamode invoke --package --mode native` the same results as the handler" do
      events = [PackageBuild.staged_event("/"), PackageBuild.staged_event("/status?code=418"), "not an event"]
      files = events.each_with_index.map do |e, i|
        File.join(@dir, "native-#{i}.json").tap { |f| File.write(f, JSON.generate(e)) }
      end
      args = files.flat_map { |f| ["--event", f] }
      outputs = %w[handler native].map do |mode|
        out, log, status = Open3.capture3({ "MEGAMODE_TMP" => File.join(@dir, "tmp-#{mode}") }, RbConfig.ruby,
                                          LocalGateway::EXE, "invoke", "--package", @package, "--mode", mode, *args)
        # The third event is refused: every result is printed, and the exit status says one failed.
        expect(status.exitstatus).to eq(1), log
        expect(log).to include("START RequestId:", "REPORT RequestId:", "Rack: handling GET /")
        expect(log).to include("megamode invoke: 1 of 3 invocations failed:", "event 3 (#{files[2]}): Megamode::EventError")
        out.lines.map { |l| JSON.parse(l) }
      end

      expect(outputs[1]).to eq(outputs[0])
      expect(outputs[1][0]).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(outputs[1][2]["errorType"]).to eq("Megamode::EventError")
    end

    it "runs --post PATH --data and a sample event by its name against the package, in both modes" do
      %w[handler native].each do |mode|
        out, log, status = Open3.capture3({ "MEGAMODE_TMP" => File.join(@dir, "tmp-request-#{mode}") }, RbConfig.ruby,
                                          LocalGateway::EXE, "invoke", "--package", @package, "--mode", mode,
                                          "--format", "url", "--post", "/echo", "--data", "a=1", "--event", "sqs")
        expect(status.exitstatus).to eq(0), "#{mode}: #{log}"
        posted, queued = out.lines.map { |l| JSON.parse(l) }
        seen = JSON.parse(posted.fetch("body"))
        expect(seen).to include("method" => "POST", "path" => "/echo", "body" => "a=1")
        expect(seen["headers"]).to include("CONTENT_TYPE" => "application/x-www-form-urlencoded",
                                           "HTTP_HOST" => "local1234.lambda-url.us-east-1.on.aws")
        expect(queued).to eq("received" => 1)
      end
    end

    it "serves HTTP through the native loop with `megamode serve --package --mode native`" do
      gateway = LocalGateway.new("--package", @package, "--mode", "native")
      response = Net::HTTP.get_response(URI("http://127.0.0.1:#{gateway.port}/"))

      expect(response.code).to eq("200")
      expect(response.body).to eq("Hello from Rack")
    ensure
      gateway&.stop
    end

    it "still takes the old `--runtime handler|native`, with a warning, and no other --runtime" do
      event = File.join(@dir, "old-name.json").tap { |f| File.write(f, JSON.generate(PackageBuild.staged_event("/"))) }
      out, log, status = Open3.capture3({ "MEGAMODE_TMP" => File.join(@dir, "tmp-old-name") }, RbConfig.ruby,
                                        LocalGateway::EXE, "invoke", "--package", @package, "--runtime", "native",
                                        "--event", event)
      expect(status).to be_success, log
      expect(log).to include("--runtime native is deprecated: use --mode native")
      expect(JSON.parse(out)).to include("statusCode" => 200, "body" => "Hello from Rack")

      _, log, status = Open3.capture3(RbConfig.ruby, LocalGateway::EXE, "serve", "--package", @package,
                                      "--runtime", "ruby3.4")
      expect(status.exitstatus).to eq(2)
      expect(log).to include("invalid argument: --runtime ruby3.4")
    end
  end
end
