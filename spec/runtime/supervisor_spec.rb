# frozen_string_literal: true

# The app's server under megamode: crashes, hangs, restarts, stale connections, the special events,
# and no process left behind.
RSpec.describe "the server supervisor" do
  def configure(app: "rack_hello", **settings)
    Megamode.configure do |c|
      c.app_root = fixture_app(app)
      settings.each { |name, value| c.public_send("#{name}=", value) }
    end
  end

  def handle(event, timeout: 30)
    Megamode.handler(event: event, context: context(timeout: timeout))
  end

  def pid_of_server
    JSON.parse(handle(v2_event("/whoami"))["body"])["pid"]
  end

  it "answers 502 when the server dies mid-request, and starts a new one for the next request" do
    configure
    first = pid_of_server
    result = nil
    log = capture_stdout_fd { result = handle(v2_event("/crash")) }

    expect(result["statusCode"]).to eq(502)
    expect(JSON.parse(result["body"])["message"]).to eq("the app's server was killed by signal 9 while handling the request")
    expect(log).to include("megamode: 502 Bad Gateway", "was killed by signal 9", "it will be started again")
    expect(pid_of_server).not_to eq(first)
  end

  it "stops restarting a server that keeps failing, with the reason" do
    configure(app: "broken")
    errors = 6.times.map do
      handle(v2_event("/"))
    rescue Megamode::BootError => e
      e.message
    end

    cause = "LoadError: cannot load such file -- a_gem_that_is_not_installed\n"
    expect(errors.first(5)).to all(start_with(cause).and(include("exited with status 1")))
    expect(errors.last).to start_with("#{cause}(the app's server failed 5 times in a row")
  end

  it "answers 504, with a log line, when the app does not answer within the invocation's time" do
    configure
    Megamode.wait_ready
    result = nil
    log = capture_stdout_fd { result = handle(v2_event("/sleep", query: "seconds=5"), timeout: 1) }

    expect(result["statusCode"]).to eq(504)
    expect(log).to include("megamode: 504 Gateway Timeout")
    expect(handle(v2_event("/"))["body"]).to eq("Hello from Rack"), "the next request is served"
  end

  it "replaces a server that stays hung: two timeouts in a row" do
    configure
    first = pid_of_server
    log = capture_stdout_fd do
      2.times { expect(handle(v2_event("/sleep", query: "seconds=5"), timeout: 1)["statusCode"]).to eq(504) }
    end

    expect(log).to include("did not answer 2 requests in a row: killing it")
    expect(process_alive?(first)).to be(false)
    expect(pid_of_server).not_to eq(first)
  end

  it "does not take a response still arriving at the deadline for a hung server" do
    configure
    first = pid_of_server
    results = nil
    log = capture_stdout_fd do
      results = Array.new(2) { handle(v2_event("/drip", query: "seconds=5"), timeout: 1) }
    end

    expect(results.map { |r| r["statusCode"] }).to eq([504, 504])
    expect(log).to include("still arriving at the invocation's deadline")
    expect(log).not_to include("killing it")
    expect(pid_of_server).to eq(first)
    expect(handle(v2_event("/"))["body"]).to eq("Hello from Rack"), "the same server serves the next request"
  end

  it "replaces a kept-alive connection the server closed while idle, without failing a POST" do
    configure(command: "exec puma -C short_keepalive.rb --bind tcp://127.0.0.1:$PORT config.ru")
    expect(handle(v2_event("/"))["statusCode"]).to eq(200)
    sleep 1.5 # idle past puma's persistent_timeout, as in a frozen environment
    post = v2_event("/echo", method: "POST").merge("body" => "a=1")

    expect(JSON.parse(handle(post)["body"])["body"]).to eq("a=1")
    expect(Megamode.status["connections_opened"]).to eq(2)
  end

  it "gets every line the app printed for a request into the log before the handler returns" do
    configure
    Megamode.wait_ready
    log = capture_stdout_fd { handle(v2_event("/chatty")) }
    chatty = log.lines.grep(/\ARack: chatty line/).map(&:chomp)
    long = log.lines.find { |l| l.start_with?("Rack: xxx") }

    expect(chatty).to eq(10_000.times.map { |i| "Rack: chatty line #{i}" })
    expect(long.chomp).to eq("Rack: #{"x" * 262_144} [megamode: line cut at 256 KB]")
  end

  it "serves the next request after the whole environment was frozen (SIGSTOP) and thawed" do
    handler = HandlerProcess.new(fixture_app("rack_hello"))
    first = handler.handle(v2_event("/whoami"))
    server = JSON.parse(first["result"]["body"])["pid"]
    [handler.pid, server].each { |pid| Process.kill("STOP", pid) }
    sleep 2.5 # frozen: longer than megamode keeps an idle connection for reuse
    [handler.pid, server].each { |pid| Process.kill("CONT", pid) }
    post = v2_event("/echo", method: "POST").merge("body" => "after the thaw")
    second = handler.handle(post)

    expect(JSON.parse(second["result"]["body"])["body"]).to eq("after the thaw")
    expect(second["status"]).to include("pid" => server, "connections_opened" => 2)
  ensure
    handler&.stop
  end

  describe "prewarm, pass-through and command events" do
    it "boots on a prewarm event without sending the app a request" do
      configure
      result = nil
      log = capture_stdout_fd { result = handle({ "_prewarm" => true }) }

      expect(result["prewarmed_at"]).to match(/\A\d{4}-\d\d-\d\dT/)
      expect(result["boot_ms"]).to be_a(Integer)
      expect(log).to include("Puma starting")
      expect(log).not_to include("handling")
    end

    it "reports the server's own boot time, not the idle time before the first event" do
      configure
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Megamode.boot
      # The idle time starts only once the server listens, however long its boot takes here.
      socket = Megamode.status["socket"]
      listening = lambda do
        UNIXSocket.new(socket).close
        true
      rescue SystemCallError
        false
      end
      sleep 0.01 until listening.call
      idle = 1.5
      sleep idle # as between Lambda's init phase and the first event
      result = handle({ "_prewarm" => true })
      elapsed_ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000

      # Counting the idle time would make boot_ms at least elapsed_ms - the time after the idle.
      expect(result["boot_ms"]).to be < elapsed_ms - (idle * 1000 / 2)
    end

    it "POSTs an event that is not HTTP to the pass-through path and returns the app's JSON" do
      configure
      sqs = { "Records" => [{ "eventSource" => "aws:sqs", "body" => "one" }, { "eventSource" => "aws:sqs", "body" => "two" }] }

      expect(handle(sqs)).to eq("received" => 2)
    end

    it "runs an allowed command event in the app's directory and returns its status and output" do
      configure(commands_allowed: "ls( -1)?|echo .*")
      result = handle({ "megamode" => { "command" => "ls -1" } })

      expect(result["status"]).to eq(0)
      expect(result["output"].lines.map(&:chomp)).to include("config.ru")
    end

    it "refuses a command event MEGAMODE_COMMANDS_ALLOWED does not allow" do
      configure(commands_allowed: "ls")

      expect { handle({ "megamode" => { "command" => "ls; touch pwned" } }) }
        .to raise_error(Megamode::EventError, /does not match MEGAMODE_COMMANDS_ALLOWED/)
      expect(File.exist?(File.join(fixture_app("rack_hello"), "pwned"))).to be(false)
    end
  end

  describe "no process left behind" do
    # A handler process of its own that has served one request: its pid, its server's pid, and it.
    def start_handler_process
      handler = HandlerProcess.new(fixture_app("rack_hello"))
      server = JSON.parse(handler.handle(v2_event("/whoami"))["result"]["body"])["pid"]
      [handler.pid, server, handler]
    end

    def wait_gone(pid)
      100.times do
        return true unless process_alive?(pid) && !zombie?(pid)

        sleep 0.05
      end
      false
    end

    def zombie?(pid)
      File.read("/proc/#{pid}/stat").split(") ").last.start_with?("Z")
    rescue Errno::ENOENT
      true
    end

    it "stops the server when the handler process gets SIGTERM" do
      handler, server, process = start_handler_process
      expect(process_alive?(server)).to be(true)
      Process.kill("TERM", handler)
      process.wait

      expect(wait_gone(server)).to be(true)
    end

    it "stops the server when the handler process is killed outright" do
      handler, server, process = start_handler_process
      Process.kill("KILL", handler)
      process.wait

      expect(wait_gone(server)).to be(true)
    end

    # The processes of a process group that are not zombies.
    def group_members(pgid)
      Dir.glob("/proc/[0-9]*/stat").filter_map do |stat|
        state, _ppid, group = File.read(stat).split(") ").last.split.first(3)
        Integer(File.basename(File.dirname(stat))) if Integer(group) == pgid && state != "Z"
      rescue Errno::ENOENT, Errno::ESRCH
        nil
      end
    end

    # The members of the group still there after `seconds` at most (SIGTERM, then SIGKILL, takes a
    # couple of seconds for a server that ignores SIGTERM).
    def group_left(pgid, seconds: 15)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      sleep 0.05 until group_members(pgid).empty? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      group_members(pgid)
    end

    # An app whose server has a child process of its own, started as the app loads.
    def app_with_a_child(dir)
      File.write(File.join(dir, "config.ru"), <<~RUBY)
        Process.detach(Process.spawn("sleep", "300"))
        run ->(_env) { [200, { "content-type" => "text/plain" }, ["has a child"]] }
      RUBY
      dir
    end

    ignores_term = %q(exec ruby -rsocket -e 'trap("TERM", "IGNORE"); ) +
                   %q(server = TCPServer.new("127.0.0.1", Integer(ENV["PORT"])); loop { server.accept.close }')
    {
      "a server the command's shell runs without exec" =>
        [:rack_hello, "cd . && puma --bind tcp://127.0.0.1:$PORT config.ru"],
      "a server that ignores SIGTERM" => [:rack_hello, ignores_term],
      "a server with a child process" => [:with_a_child, "exec puma --bind tcp://127.0.0.1:$PORT config.ru"]
    }.each do |what, (app, command)|
      it "stops #{what}, with its whole process group, when the handler process is killed outright" do
        dir = Dir.mktmpdir("megamode-group-")
        app_dir = app == :with_a_child ? app_with_a_child(dir) : fixture_app(app.to_s)
        handler = HandlerProcess.new(app_dir, command: command)
        pgid = handler.handle({ "_prewarm" => true }).fetch("status").fetch("pid")
        expect(group_members(pgid)).to include(pgid)
        Process.kill("KILL", handler.pid)
        handler.wait
        left = group_left(pgid)
        left.each { |pid| Process.kill("KILL", pid) } # nothing left behind, even when this fails

        expect(left).to eq([])
      ensure
        FileUtils.rm_rf(dir)
      end
    end
  end
end
