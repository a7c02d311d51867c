# frozen_string_literal: true

require "spec_helper"
require "digest"
require "open3"
require "yaml"
require "megamode/local/gateway"
require "megamode/local/runtime_api_emulator"

# Response streaming through the native loop (MEGAMODE_INVOKE_MODE=response_stream), against the
# Runtime API emulator, which reads a streamed response as Lambda does: the prelude, the body as it
# arrives, the trailers. The app (spec/fixtures/apps/streaming) waits for files the test writes as
# chunks arrive, so ordering is asserted, never time.
RSpec.describe "Response streaming through the native loop" do
  LOOP_LIB = File.join(SpecHelpers::ROOT, "lib")

  def event(format, target, headers: [])
    FunctionProcess.event(format, target, headers: headers)
  end

  # The native loop on the streaming app against a new emulator; yields the emulator and a proc that
  # reads the loop's log so far, then stops both.
  def with_loop(mode: "response_stream", app: fixture_app("streaming"))
    tmp = Dir.mktmpdir("megamode-stream-", ENV.fetch("MEGAMODE_TMP"))
    log = File.join(tmp, "loop.log")
    env = { "MEGAMODE_APP_ROOT" => app, "MEGAMODE_TMP" => tmp, "MEGAMODE_INVOKE_MODE" => mode }
    command = [RbConfig.ruby, "-I", LOOP_LIB, "-e", 'require "megamode/runtime"; Megamode::Runtime.start']
    FunctionProcess.run(command, env, log: log) { |emulator, pid| yield emulator, -> { File.read(log) }, pid }
  end

  # The app writes and reads it: open to every user, as the app of a package runs as one that owns
  # nothing (nobody) where megamode can make it so.
  let(:gate) { PackageBuild.scratch("megamode-gate-").tap { |dir| File.chmod(0o1777, dir) } }
  after { FileUtils.rm_rf(gate) }

  it "streams Server-Sent Events one by one, each before the app writes the next, with the prelude first" do
    with_loop do |emulator|
      received = []
      on_chunk = lambda do |data|
        received << data
        # Event i has reached Lambda: only now may the app write event i+1.
        data.scan(/^id: (\d+)$/).each { |(i)| File.write(File.join(gate, "got-#{i}"), "") }
        # The first event arrived while the app was still at work.
        received << :app_not_done unless File.exist?(File.join(gate, "done"))
      end
      result = emulator.invoke(event("url", "/sse?n=4&gate=#{gate}"), request_id: "req-sse", on_chunk: on_chunk)

      expect(result.kind).to eq(:response)
      expect(result.streamed).to be(true)
      expect(result.content_type).to eq("application/vnd.awslambda.http-integration-response")
      expect(result.prelude).to include("statusCode" => 200)
      expect(result.prelude["headers"]).to include("content-type" => "text/event-stream")
      expect(result.body).to eq((0..3).map { |i| "id: #{i}\ndata: event #{i}\n\n" }.join)
      expect(result.body).not_to include("never got")
      expect(received.first(2)).to eq(["id: 0\ndata: event 0\n\n", :app_not_done])
      expect(result.chunks.size).to be >= 4
      expect(result.error_type).to be_nil
      expect(File.exist?(File.join(gate, "done"))).to be(true)
    end
  end

  it "posts the invocation's error when the streamed POST to Lambda breaks, and serves the next event" do
    with_loop do |emulator, log, pid|
      broken = emulator.invoke(event("url", "/download?mb=4"), request_id: "req-broken", cut_after: 64 * 1024)
      expect(broken.kind).to eq(:error), broken.inspect
      expect(log.call).to include("the streamed response could not be posted")

      after = emulator.invoke(event("url", "/download?mb=1"), request_id: "req-after")
      expect(after.kind).to eq(:response)
      expect(after.body.bytesize).to eq(1024 * 1024)
      expect(Process.waitpid(pid, Process::WNOHANG)).to be_nil, "the loop goes on"
    end
  end

  # 64 MB: holding the response would add at least that much at the peak, and what streaming adds
  # (buffers, a busy machine's allocator arenas: up to about 9 MB seen) stays far below a quarter.
  it "streams a 64 MB download whole, in many chunks, without holding it in memory" do
    with_loop do |emulator, _log, pid|
      loop_pid = pid
      warm = emulator.invoke(event("url", "/download?mb=1"), request_id: "req-warm")
      expect(warm.body.bytesize).to eq(1024 * 1024)
      before = peak_rss_kb(loop_pid)

      size = 64 * 1024 * 1024
      result = emulator.invoke(event("url", "/download?mb=64"), request_id: "req-64mb")

      expect(result.kind).to eq(:response)
      expect(result.error_type).to be_nil
      expect(result.body.bytesize).to eq(size)
      expect(Digest::SHA256.hexdigest(result.body)).to eq(result.prelude["headers"]["x-body-sha256"])
      expect(result.prelude["headers"]).to include("content-length" => size.to_s)
      expect(result.chunks.size).to be > 64
      expect(peak_rss_kb(loop_pid) - before).to be < size / 1024 / 4
    end
  end

  def peak_rss_kb(pid)
    File.read("/proc/#{pid}/status")[/^VmHWM:\s+(\d+)/, 1].to_i
  end

  it "ends a response whose server dies mid-stream with Lambda's error trailers, logs it, and serves on" do
    with_loop do |emulator, log|
      on_chunk = ->(_) { File.write(File.join(gate, "got-0"), "") }
      result = emulator.invoke(event("url", "/crash?gate=#{gate}"), request_id: "req-crash", on_chunk: on_chunk)

      expect(result.kind).to eq(:response)
      expect(result.prelude).to include("statusCode" => 200)
      expect(result.body).to eq("first part\n")
      expect(result.error_type).to eq("Megamode::ProxyError")
      expect(result.error).to include("errorType" => "Megamode::ProxyError")
      expect(result.error["errorMessage"]).to match(/server/)
      expect(log.call).to include("megamode: the streamed response to GET /crash broke off after 11 bytes")

      again = emulator.invoke(event("url", "/cookies"), request_id: "req-after-crash")
      expect(again.prelude).to include("statusCode" => 201, "cookies" => ["a=1; path=/", "b=2; path=/"])
      expect(again.body).to eq("two cookies\n")
    end
  end

  it "ends a response still streaming at the deadline with a TimeoutError in the trailers" do
    with_loop do |emulator|
      result = emulator.invoke(event("url", "/stall"), request_id: "req-stall", timeout_ms: 1500)

      expect(result.body).to eq("first part\n")
      expect(result.error_type).to eq("Megamode::TimeoutError")
      expect(result.error["errorMessage"]).to include("the app's response was still arriving at the invocation's deadline")
    end
  end

  it "answers a body declared past 200 MB with megamode's own 502, streamed, before reading it" do
    with_loop do |emulator|
      result = emulator.invoke(event("v1", "/declared?bytes=#{(200 * 1024 * 1024) + 1}"), request_id: "req-big")

      expect(result.streamed).to be(true)
      expect(result.prelude).to include("statusCode" => 502)
      expect(JSON.parse(result.body)["message"]).to include("200 MB")
    end
  end

  it "echoes the invocation id, and passes the tenant id as X-Amz-Tenant-Id, never the client's" do
    with_loop(app: fixture_app("echo")) do |emulator|
      forged = [["X-Amz-Tenant-Id", "forged"]]
      result = emulator.invoke(event("url", "/anything", headers: forged), request_id: "req-tenant",
                                                                            invocation_id: "inv-1", tenant_id: "tenant-7")
      expect(result.invocation_id).to eq("inv-1")
      seen = JSON.parse(result.body)
      expect(seen["headers"]).to include("HTTP_X_AMZ_TENANT_ID" => "tenant-7")

      bad = emulator.invoke("not json", request_id: "req-bad", invocation_id: "inv-2")
      expect([bad.kind, bad.invocation_id]).to eq([:error, "inv-2"])
    end
  end

  it "keeps HTTP API responses buffered in streaming mode, and says why once" do
    with_loop do |emulator, log|
      2.times do |i|
        result = emulator.invoke(event("v2", "/cookies"), request_id: "req-v2-#{i}")
        expect(result.streamed).to be_nil
        expect(JSON.parse(result.body)).to include("statusCode" => 201, "body" => "two cookies\n")
      end
      expect(log.call.scan("which cannot stream").size).to eq(1)
      expect(log.call).to include("API Gateway HTTP API (payload 2.0), which cannot stream")
    end
  end

  it "buffers with the Ruby handler, streaming asked for by configure, and says why once" do
    script = <<~RUBY
      require "megamode"
      require "megamode/local/identity"
      Megamode.configure do |c|
        c.app_root = #{fixture_app("streaming").inspect}
        c.invoke_mode = "response_stream"
      end
      event = JSON.parse(ARGV.fetch(0))
      2.times do
        result = Megamode.handler(event: event, context: Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: 30)))
        $stderr.puts JSON.generate(result)
      end
    RUBY
    out, results, status = Open3.capture3({ "MEGAMODE_TMP" => Dir.mktmpdir("megamode-stream-", ENV.fetch("MEGAMODE_TMP")) },
                                          RbConfig.ruby, "-I", LOOP_LIB, "-e", script, event("url", "/cookies"))
    expect(status).to be_success, results
    expect(results.lines.map { |l| JSON.parse(l) }).to all(include("statusCode" => 201, "body" => "two cookies\n"))
    expect(out.scan("MEGAMODE_INVOKE_MODE is response_stream, but the Ruby handler is in use").size).to eq(1)
    expect(out).to include("the Ruby handler is in use (Lambda's Ruby runtime client cannot stream; streaming needs " \
                           "the native loop, AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime), so responses are buffered")
  end

  it "keeps every response buffered in the default mode, Function URLs included" do
    with_loop(mode: "buffered") do |emulator, log|
      result = emulator.invoke(event("url", "/cookies"), request_id: "req-buffered")

      expect(result.streamed).to be_nil
      expect(JSON.parse(result.body)).to include("statusCode" => 201, "cookies" => ["a=1; path=/", "b=2; path=/"],
                                                 "body" => "two cookies\n")
      expect(log.call).not_to include("MEGAMODE_INVOKE_MODE")
    end
  end

  it "logs a 410 for a result that came after the deadline, and goes on" do
    with_loop do |emulator, log|
      late = emulator.invoke(event("url", "/cookies"), request_id: "req-late", timeout_ms: -1000)
      expect(late.kind).to eq(:gone)

      result = emulator.invoke(event("url", "/cookies"), request_id: "req-next")
      expect(result.body).to eq("two cookies\n")
      expect(log.call).to include("Lambda answered 410 Gone to the result of invocation req-late")
    end
  end

  it "refuses `serve --stream` for sources that cannot stream, and a package without the native loop" do
    _, log, status = Open3.capture3(RbConfig.ruby, LocalGateway::EXE, "serve", "--app", fixture_app("streaming"),
                                    "--format", "v2", "--stream")
    expect([status.exitstatus, log]).to match([2, /--stream needs --format url or v1: HTTP APIs and ALBs cannot stream/])

    package = Dir.mktmpdir("megamode-stream-package-", ENV.fetch("MEGAMODE_TMP"))
    File.write(File.join(package, "handler.rb"), "")
    _, log, status = Open3.capture3(RbConfig.ruby, LocalGateway::EXE, "serve", "--package", package,
                                    "--format", "url", "--stream")
    expect([status.exitstatus, log]).to match([2, /--stream needs the native loop: add --mode native/])
  end

  context "with `megamode serve --format url --stream`" do
    before(:all) { @server = LocalGateway.new("--app", fixture_app("streaming"), "--format", "url", "--stream") }
    after(:all) { @server.stop }

    # The response as the client reads it off the socket: its head, then each event as it comes.
    it "shows each Server-Sent Event to the client as it is sent, before the app writes the next" do
      socket = TCPSocket.new("127.0.0.1", @server.port)
      socket.write("GET /sse?n=3&gate=#{gate} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
      head = +""
      head << socket.readpartial(4096) until head.include?("event 0\n\n")
      expect(head).to start_with("HTTP/1.1 200 ")
      expect(head).to match(/^transfer-encoding: chunked\r$/).and match(%r{^content-type: text/event-stream\r$})
      expect(File.exist?(File.join(gate, "done"))).to be(false)
      File.write(File.join(gate, "got-0"), "")
      File.write(File.join(gate, "got-1"), "")
      rest = +""
      rest << socket.readpartial(4096) until rest.end_with?("0\r\n\r\n")
      expect(rest).to include("data: event 1\n\n", "data: event 2\n\n")
      expect(rest).not_to include("never got")
    ensure
      socket&.close
    end

    it "streams a download whole, cuts off a response that broke, and keeps buffered answers as they were" do
      Net::HTTP.start("127.0.0.1", @server.port) do |http|
        download = http.get("/download?mb=3")
        expect(download.body.bytesize).to eq(3 * 1024 * 1024)
        expect(Digest::SHA256.hexdigest(download.body)).to eq(download["x-body-sha256"])

        cookies = http.get("/cookies")
        expect([cookies.code, cookies.body]).to eq(["201", "two cookies\n"])
        expect(cookies.get_fields("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
      end

      File.write(File.join(gate, "got-0"), "")
      crash = Net::HTTP.start("127.0.0.1", @server.port) do |http|
        http.get("/crash?gate=#{gate}")
      rescue EOFError, Net::HTTPBadResponse, Errno::ECONNRESET => e
        e
      end
      expect(crash).to be_a(Exception)
      expect(@server.wait_for_log("broke off")).to include("the streamed response to GET /crash broke off")
    end
  end

  context "with `megamode serve --stream` and a client that stops reading" do
    # A client may leave the response untaken for the read timeout at a time: 1 s here.
    before(:all) do
      @server = LocalGateway.new("--app", fixture_app("streaming"), "--format", "url", "--stream", "--read-timeout", "1")
    end
    after(:all) { @server.stop }

    it "drops that client and answers the next one" do
      stalled = TCPSocket.new("127.0.0.1", @server.port)
      stalled.write("GET /download?mb=40 HTTP/1.1\r\nHost: localhost\r\n\r\n")
      # Its response has begun (the invocation holds the handler process); then it reads no more,
      # with 40 MiB to come, far past what the sockets' buffers hold.
      head = +""
      head << stalled.readpartial(4096) until head.include?("\r\n\r\n")
      expect(head).to start_with("HTTP/1.1 200 ")

      # A hang guard, not a speed bound: before the fix this client waited for as long as the
      # other one did not read.
      answer = Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 60) { |http| http.get("/cookies") }
      expect([answer.code, answer.body]).to eq(["201", "two cookies\n"])
      expect(@server.wait_for_log("the client is dropped")).to include("the client took nothing of the response for 1.0 s")

      # The dropped client gets what was on its way, then the end of the connection, not the whole body.
      rest = 0
      loop do
        raise "the dropped client's connection stayed open" unless stalled.wait_readable(30)

        rest += stalled.readpartial(1024 * 1024).bytesize
      rescue EOFError, Errno::ECONNRESET
        break
      end
      expect(rest).to be < 40 * 1024 * 1024
    ensure
      stalled&.close
    end
  end

  context "from a package built with `megamode build --stream`" do
    before(:all) do
      @dir = PackageBuild.scratch("megamode-stream-package-")
      app = PackageBuild.app("streaming", @dir, ruby_line: nil)
      @package = File.join(@dir, "out", "streaming")
      status, log = PackageBuild.build(app, @package, "--stream")
      raise "megamode build --stream failed:\n#{log}" unless status.success?
    end
    after(:all) { FileUtils.rm_rf(@dir) }

    it "writes a template with the native loop, a streaming Function URL and a streaming REST API" do
      template = File.read(File.join(@dir, "out", "template.yaml"))

      expect(template).to include("AWS_LAMBDA_EXEC_WRAPPER: /var/task/megamode/runtime\n",
                                  "MEGAMODE_INVOKE_MODE: response_stream\n", "InvokeMode: RESPONSE_STREAM\n",
                                  "responseTransferMode: STREAM\n", "/response-streaming-invocations")
      # HTTP APIs cannot stream: the template has none, and no switch back to the Ruby handler.
      expect(template).not_to include("HttpApi", "MegamodeMode")
      tags = Class.new(Psych::Visitors::ToRuby) { def deserialize(node) = node.tag&.start_with?("!") ? node.value : super }
      parsed = YAML.parse(template).then { |doc| tags.create.accept(doc) }
      paths = parsed.dig("Resources", "RestApi", "Properties", "DefinitionBody", "paths")
      expect(paths.keys).to eq(["/", "/{proxy+}"])
      expect(paths["/{proxy+}"]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"])
        .to include("type" => "aws_proxy", "responseTransferMode" => "STREAM")
    end

    it "shows a streamed response whole with `megamode invoke --package --mode native`, its break-off as the error" do
      events = [event("url", "/cookies"), event("url", "/stall")].each_with_index.map do |e, i|
        File.join(@dir, "invoke-#{i}.json").tap { |f| File.write(f, e) }
      end
      env = { "MEGAMODE_INVOKE_MODE" => "response_stream", "MEGAMODE_TMP" => File.join(@dir, "invoke-tmp") }
      out, log, status = Open3.capture3(env, RbConfig.ruby, LocalGateway::EXE, "invoke", "--package", @package,
                                        "--mode", "native", "--timeout", "2", *events.flat_map { |f| ["--event", f] })
      # The break-off is a failed invocation: its exit status says so, after both results.
      expect(status.exitstatus).to eq(1), log
      expect(log).to include("megamode invoke: 1 of 2 invocations failed:", "Megamode::TimeoutError")
      cookies, stall = out.lines.map { |l| JSON.parse(l) }
      expect(cookies).to include("statusCode" => 201, "cookies" => ["a=1; path=/", "b=2; path=/"],
                                 "body" => "two cookies\n", "isBase64Encoded" => false)
      expect(stall).to include("errorType" => "Megamode::TimeoutError")
      expect(log).to include("the streamed response to GET /stall broke off after 11 bytes")
    end

    it "streams through the package's native loop with `megamode serve --package --mode native --stream`" do
      server = LocalGateway.new("--package", @package, "--mode", "native", "--format", "url", "--stream",
                                env: { "MEGAMODE_TMP" => File.join(@dir, "lambda-tmp") })
      Net::HTTP.start("127.0.0.1", server.port) do |http|
        first_event = nil
        http.request(Net::HTTP::Get.new("/sse?n=2&gate=#{gate}")) do |response|
          expect(response["transfer-encoding"]).to eq("chunked")
          response.read_body do |piece|
            first_event ||= [piece, File.exist?(File.join(gate, "done"))]
            File.write(File.join(gate, "got-0"), "")
          end
        end
        expect(first_event).to eq(["id: 0\ndata: event 0\n\n", false])
      end
    ensure
      server&.stop
    end
  end

  context "with a Rails app's package (ActionController::Live, send_file)" do
    before(:all) do
      @tmp = Dir.mktmpdir("megamode-stream-rails-", ENV.fetch("MEGAMODE_TMP"))
      env = { "SECRET_KEY_BASE" => "stream#{"0" * 64}", "FORCE_SSL" => "0", "MEGAMODE_TMP" => @tmp }
      @server = LocalGateway.new("--package", BuiltRails.package, "--mode", "native", "--format", "url", "--stream",
                                 env: env)
    end
    after(:all) do
      @server&.stop
      FileUtils.rm_rf(@tmp)
    end

    it "streams Server-Sent Events from ActionController::Live, each before the action writes the next" do
      body = +""
      done_at_first_event = nil
      Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 30) do |http|
        http.request(Net::HTTP::Get.new("/streams/events?n=3&gate=#{gate}", "Accept" => "text/event-stream")) do |response|
          expect(response.code).to eq("200")
          expect(response["content-type"]).to start_with("text/event-stream")
          response.read_body do |piece|
            body << piece
            # The first event is whole: was the action done by then?
            done_at_first_event = File.exist?(File.join(gate, "done")) if done_at_first_event.nil? && body.include?("\n\n")
            body.scan(/^id: (\d+)$/).each { |(i)| File.write(File.join(gate, "got-#{i}"), "") }
          end
        end
      end
      expect(body.scan(/^data: (.*)$/).flatten.map { |d| JSON.parse(d) }).to eq([{ "n" => 0 }, { "n" => 1 }, { "n" => 2 }])
      expect(done_at_first_event).to be(false)
    end

    it "streams a 20 MB send_file whole, past the 6 MB a buffered response may have" do
      Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 60) do |http|
        response = http.get("/streams/download?mb=20")
        expect(response.code).to eq("200")
        expect(response.body.bytesize).to eq(20 * 1024 * 1024)
        expect(Digest::SHA256.hexdigest(response.body)).to eq(response["x-body-sha256"])
      end
    end
  end
end
