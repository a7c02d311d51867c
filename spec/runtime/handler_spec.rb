# frozen_string_literal: true

# Megamode.handler against a real puma serving a real Rack app.
RSpec.describe "Megamode.handler" do
  before { Megamode.configure { |c| c.app_root = fixture_app("rack_hello") } }

  # Whether the thread has got as far as waiting (inside the handler, for the app) or ended.
  def waiting_or_done?(thread)
    sleep 0.05
    thread.status == "sleep" || !thread.alive?
  end

  def whoami(event)
    JSON.parse(Megamode.handler(event: event, context: context).fetch("body"))
  end

  it "answers an HTTP API 2.0 event in the 2.0 shape, with the app's output prefixed on stdout" do
    result = nil
    log = capture_stdout_fd { result = Megamode.handler(event: v2_event("/"), context: context) }

    expect(result["statusCode"]).to eq(200)
    expect(result["body"]).to eq("Hello from Rack")
    expect(result["isBase64Encoded"]).to be(false)
    expect(result["headers"]).to include("x-served-by" => "rack_hello", "content-type" => "text/plain")
    expect(result["cookies"]).to eq(["visited=yes; path=/"])
    expect(result["headers"].keys).not_to include("set-cookie")
    expect(log.lines).to include("Rack: handling GET /\n")
  end

  it "logs one JSON object per line, with the request id, when AWS_LAMBDA_LOG_FORMAT is JSON" do
    ENV["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    Megamode.configure { |c| c.app_root = fixture_app("rack_hello") }
    ctx = context
    log = capture_stdout_fd { Megamode.handler(event: v2_event("/"), context: ctx) }
    lines = log.lines.map { |l| JSON.parse(l) }
    request_line = lines.find { |l| l["message"] == "handling GET /" }

    expect(request_line).to include("requestId" => ctx.aws_request_id, "source" => "Rack")
    expect(request_line["timestamp"]).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/)
  ensure
    ENV.delete("AWS_LAMBDA_LOG_FORMAT")
  end

  it "answers a REST API event in the REST shape" do
    result = Megamode.handler(event: rest_event("/"), context: context)

    expect(result["statusCode"]).to eq(200)
    expect(result["body"]).to eq("Hello from Rack")
    expect(result["multiValueHeaders"]).to include("x-served-by" => ["rack_hello"],
                                                   "set-cookie" => ["visited=yes; path=/"])
    expect(result).not_to have_key("cookies")
  end

  it "delivers the method, query and body of the event to the app" do
    event = rest_event("/echo", method: "POST", query: { "q" => ["a b"], "tag" => %w[x y] }, body: "name=megamode")
    event["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    event["multiValueHeaders"]["Content-Type"] = ["application/x-www-form-urlencoded"]
    echo = JSON.parse(Megamode.handler(event: event, context: context)["body"])

    expect(echo["method"]).to eq("POST")
    expect(echo["path"]).to eq("/echo")
    expect(echo["body"]).to eq("name=megamode")
    expect(URI.decode_www_form(echo["query"])).to eq([["q", "a b"], ["tag", "x"], ["tag", "y"]])
    expect(echo["headers"]).to include("CONTENT_TYPE" => "application/x-www-form-urlencoded")
  end

  it "serves every event from one server over one kept-alive connection" do
    answers = [v2_event("/whoami"), rest_event("/whoami"), v2_event("/whoami")].map { |e| whoami(e) }

    expect(answers.map { |a| a["pid"] }.uniq.size).to eq(1)
    expect(answers.map { |a| a["connection"] }.uniq.size).to eq(1)
    expect(answers.first["connection"]).to be_a(Integer)
    expect(Megamode.status).to include("ready" => true, "connections_opened" => 1, "pid" => answers.first["pid"])
  end

  it "reaches puma over a Unix socket by default, and over TCP with MEGAMODE_TRANSPORT=tcp" do
    unix = whoami(v2_event("/whoami"))
    expect(unix["unix"]).to be(true)
    expect(Megamode.status["socket"]).to end_with(".sock")
    expect(File.socket?(Megamode.status["socket"])).to be(true)

    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      c.transport = "tcp"
    end
    expect(whoami(v2_event("/whoami"))["unix"]).to be(false)
    expect(Megamode.status["port"]).to be_a(Integer)
  end

  it "runs the command MEGAMODE_COMMAND gives instead of the default" do
    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      c.command = "MEGAMODE_TEST_MARKER=custom exec puma --bind tcp://127.0.0.1:$PORT config.ru"
    end

    expect(whoami(v2_event("/whoami"))["marker"]).to eq("custom")
  end

  it "waits for MEGAMODE_READINESS_PATH to answer healthy before the first request" do
    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      c.readiness_path = "/warming"
    end

    expect(Megamode.handler(event: v2_event("/warming"), context: context)["body"]).to eq("warm")
  end

  it "counts the statuses MEGAMODE_READINESS_STATUS lists as healthy" do
    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      c.readiness_path = "/unhealthy"
      c.readiness_status = "200-399,503"
      c.boot_timeout = 5
    end

    expect(Megamode.handler(event: v2_event("/"), context: context)["body"]).to eq("Hello from Rack")
  end

  it "releases the GVL while it waits for the app" do
    Megamode.wait_ready
    ticks = 0
    counting = true
    counter = Thread.new { ticks += 1 while counting }
    result = Megamode.handler(event: v2_event("/slow"), context: context)
    counting = false
    counter.join

    expect(result["body"]).to eq("slow")
    # /slow sleeps half a second in the app; with the GVL held, the counter could not have run.
    expect(ticks).to be > 1000
  end

  it "keeps waiting for the same request when a signal handler runs meanwhile" do
    Megamode.wait_ready
    trapped = 0
    previous = trap("USR1") { trapped += 1 }
    result = nil
    log = capture_stdout_fd do
      signaller = Thread.new do
        sleep 0.1
        Process.kill("USR1", Process.pid)
      end
      result = Megamode.handler(event: v2_event("/slow"), context: context)
      signaller.join
    end

    expect(result["body"]).to eq("slow")
    expect(trapped).to eq(1)
    expect(log.scan("handling GET /slow").size).to eq(1), "the request is sent once"
  ensure
    trap("USR1", previous || "DEFAULT")
  end

  it "stops waiting when the calling thread is sent an exception, and serves the next request" do
    stop = Class.new(StandardError)
    Megamode.wait_ready
    log = capture_stdout_fd do
      caller = Thread.new { Megamode.handler(event: v2_event("/sleep", query: "seconds=20"), context: context) }
      caller.report_on_exception = false
      Thread.pass until waiting_or_done?(caller)
      caller.raise(stop)
      expect { caller.value }.to raise_error(stop)
    end

    expect(log).to include("handling GET /sleep")
    expect(log).not_to include("slept"), "the exception arrived while the app was still sleeping"
    expect(Megamode.handler(event: v2_event("/"), context: context)["body"]).to eq("Hello from Rack")
  end

  it "leaves the parent's server alone in a forked child, and serves the child with its own" do
    parent = whoami(v2_event("/whoami"))["pid"]
    reader, writer = IO.pipe
    child = fork do
      reader.close
      Megamode.shutdown # what at_exit does in a child: must not stop the parent's server
      writer.puts JSON.generate(whoami(v2_event("/whoami")))
      Megamode.shutdown
      exit!(0)
    end
    writer.close
    in_child = JSON.parse(reader.read)
    Process.wait(child)

    expect(in_child["pid"]).not_to eq(parent)
    expect(process_alive?(parent)).to be(true)
    expect(whoami(v2_event("/whoami"))["pid"]).to eq(parent)
  end

  it "stops the server on shutdown" do
    pid = whoami(v2_event("/whoami"))["pid"]
    Megamode.shutdown

    expect(process_alive?(pid)).to be(false)
  end

  describe "remaining times a context may answer" do
    def context_answering(remaining)
      context.tap { |c| c.define_singleton_method(:get_remaining_time_in_millis) { remaining } }
    end

    it "serves the request when the remaining time is infinite or beyond any clock" do
      [Float::INFINITY, 1e300, 10**400].each do |remaining|
        result = Megamode.handler(event: v2_event("/"), context: context_answering(remaining))
        expect(result["statusCode"]).to eq(200), remaining.to_s
      end
    end

    it "raises EventError naming a remaining time that is not a number" do
      expect { Megamode.handler(event: v2_event("/"), context: context_answering(Float::NAN)) }
        .to raise_error(Megamode::EventError, /get_remaining_time_in_millis.*NaN/)
    end

    it "takes a negative remaining time as none left: an answer given at once, or a TimeoutError" do
      Megamode.boot.wait_ready
      [-1, -Float::INFINITY].each do |remaining|
        outcome = begin
          Megamode.handler(event: v2_event("/"), context: context_answering(remaining))
        rescue Megamode::TimeoutError => e
          e
        end
        expect(outcome).to be_a(Hash).or(be_a(Megamode::TimeoutError)), remaining.to_s
      end
    end

    it "boots with a MEGAMODE_BOOT_TIMEOUT beyond any clock" do
      Megamode.configure do |c|
        c.app_root = fixture_app("rack_hello")
        c.boot_timeout = 1e300
      end

      expect(Megamode.handler(event: v2_event("/"), context: context)["statusCode"]).to eq(200)
    end
  end

  describe "errors" do
    it "raises EventError for an event that is not a Hash" do
      expect { Megamode.handler(event: [1, 2], context: context) }
        .to raise_error(Megamode::EventError, /must be a JSON object/)
    end

    it "raises EventError naming the field an HTTP event lacks" do
      event = rest_event("/")
      event.delete("httpMethod")
      event["version"] = "1.0"

      expect { Megamode.handler(event: event, context: context) }
        .to raise_error(Megamode::EventError, /httpMethod/)
    end

    it "raises EventError for a value JSON cannot hold, naming where it is" do
      event = v2_event("/")
      event["headers"]["x-object"] = Object.new

      expect { Megamode.handler(event: event, context: context) }
        .to raise_error(Megamode::EventError, /event\.headers\.x-object is a Object/)
    end

    describe "a context that is not Lambda's" do
      contract = /context must answer aws_request_id \(a string\) and get_remaining_time_in_millis \(a number\)/

      it "raises EventError naming the method a context lacks" do
        [[nil, "(nil)"], [Object.new, "(a Object)"]].each do |bad, shown|
          expect { Megamode.handler(event: v2_event("/"), context: bad) }
            .to raise_error(Megamode::EventError, /\Athe context #{Regexp.escape(shown)} has no aws_request_id method: .*#{contract}/)
        end
      end

      it "raises EventError naming the method that raised, or answered what is not a number or text" do
        failing = context.tap { |c| c.define_singleton_method(:aws_request_id) { raise "no id here" } }
        expect { Megamode.handler(event: v2_event("/"), context: failing) }
          .to raise_error(Megamode::EventError, /aws_request_id failed \(RuntimeError: no id here\): .*#{contract}/)

        wordy = context.tap { |c| c.define_singleton_method(:get_remaining_time_in_millis) { Object.new } }
        expect { Megamode.handler(event: v2_event("/"), context: wordy) }
          .to raise_error(Megamode::EventError, /get_remaining_time_in_millis answered a Object, which is not a number/)

        nameless = context.tap { |c| c.define_singleton_method(:function_name) { BasicObject.new } }
        expect { Megamode.handler(event: v2_event("/"), context: nameless) }
          .to raise_error(Megamode::EventError, /function_name failed \(NoMethodError: .*to_s/)

        binary = context.tap { |c| c.define_singleton_method(:aws_request_id) { "\xff".b.force_encoding(Encoding::UTF_8) } }
        expect { Megamode.handler(event: v2_event("/"), context: binary) }
          .to raise_error(Megamode::EventError, /aws_request_id failed/)
      end

      it "lets an interrupt raised in a context method go on as it is" do
        interrupted = context.tap { |c| c.define_singleton_method(:aws_request_id) { raise Interrupt } }
        expect { Megamode.handler(event: v2_event("/"), context: interrupted) }.to raise_error(Interrupt)
      end
    end

    it "raises BootError with the app's cause first, then the exit status and the last output lines of a server that cannot boot" do
      Megamode.configure { |c| c.app_root = fixture_app("broken") }

      expect { Megamode.handler(event: v2_event("/"), context: context) }
        .to raise_error(Megamode::BootError) { |e|
          expect(e.message).to start_with("LoadError: cannot load such file -- a_gem_that_is_not_installed\n(the app's server exited with status 1 while booting")
          # The server's last lines, indented under the status. Not its first stderr line ("loading the
          # broken app"): stdout and stderr are two pipes, and under load puma's banner on stdout can be
          # read after it and push it out of the last 20.
          expect(e.message).to include("\n  ! Unable to load application: LoadError")
          expect(e.message).to match(/^  \s*from config\.ru:3/)
        }
    end

    it "raises BootError with advice when the app has no config.ru" do
      Dir.mktmpdir do |empty|
        Megamode.configure { |c| c.app_root = empty }

        expect { Megamode.boot }.to raise_error(Megamode::BootError, /no config\.ru.*MEGAMODE_APP_ROOT/)
      end
    end

    it "raises BootError when the readiness path never answers healthy" do
      Megamode.configure do |c|
        c.app_root = fixture_app("rack_hello")
        c.readiness_path = "/unhealthy"
        c.boot_timeout = 1
      end

      expect { Megamode.handler(event: v2_event("/"), context: context) }
        .to raise_error(Megamode::BootError, %r{/unhealthy \(MEGAMODE_READINESS_PATH\) was not healthy.*503})
    end

    it "raises ConfigError naming a bad setting" do
      Megamode.configure do |c|
        c.app_root = fixture_app("rack_hello")
        c.boot_timeout = "soon"
      end

      expect { Megamode.boot }.to raise_error(Megamode::ConfigError, /MEGAMODE_BOOT_TIMEOUT/)
    end
  end
end
