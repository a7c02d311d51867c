# frozen_string_literal: true

require "spec_helper"
require "megamode/local/runtime_api_emulator"
require "megamode/local/invoke/native_loop"
require "megamode/build/files"
require "open3"

# SnapStart through the native loop, against the Runtime API emulator in snap-start mode: init ends
# with the server ready and its before-snapshot hooks run, the loop waits on restore/next while the
# harness freezes every process longer than puma's keep-alive timeout (a snapshot restored later),
# then the after-restore hooks run and the first event is served. The app
# (spec/fixtures/apps/snapstart) answers megamode's lifecycle requests itself and records them.
RSpec.describe "SnapStart through the native loop" do
  include SnapshotHarness

  SNAP_LIB = File.join(SpecHelpers::ROOT, "lib")
  FORGED = [["X-Megamode-Lifecycle", "after-restore"], ["X-Megamode-Lifecycle-Token", "0" * 32],
            ["X_Megamode_Lifecycle", "before-snapshot"]].freeze

  # The app writes its record there: open to every user, as the app of a package runs as one that
  # owns nothing where megamode can make it so.
  let(:dir) { PackageBuild.scratch("megamode-snapstart-").tap { |d| File.chmod(0o1777, d) } }
  let(:record) { File.join(dir, "record.jsonl") }
  after { FileUtils.rm_rf(dir) }

  def with_loop(env: {})
    tmp = Dir.mktmpdir("megamode-snapstart-", ENV.fetch("MEGAMODE_TMP"))
    log = File.join(tmp, "loop.log")
    env = { "MEGAMODE_APP_ROOT" => fixture_app("snapstart"), "MEGAMODE_TMP" => tmp, "SNAPSTART_RECORD" => record }
          .merge(env)
    command = [RbConfig.ruby, "-I", SNAP_LIB, "-e", 'require "megamode/runtime"; Megamode::Runtime.start']
    FunctionProcess.run(command, env, log: log, snap_start: true) do |emulator, pid|
      yield emulator, pid, -> { File.read(log) }, tmp
    end
  end

  it "runs the before-snapshot hooks once the server is ready, waits for the restore, then the after-restore hooks, then serves" do
    with_loop do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      expect(emulator.restore_asked?).to be(true)
      expect(emulator.next_calls).to eq(0)
      before = received
      expect(before.map { |r| r["phase"] }).to eq(["before-snapshot"]), log.call
      expect(before.first["token"]).to match(/\A\h{32}\z/)
      expect(before.first["token"]).to eq(before.first["server_token"])
      expect(log.call).to include("SnapStart: before-snapshot").and include("waiting for the snapshot")
      expect(log.call).to include("Rack: snapstart fixture: persistent_timeout 2")

      freeze_and_restore(emulator, pid)
      wait_until { received.size == 2 }
      expect(received.last).to include("phase" => "after-restore", "token" => before.first["token"])

      result = emulator.invoke(FunctionProcess.event("v2", "/after", headers: FORGED), request_id: "req-first")
      expect(result.kind).to eq(:response), result.inspect
      answer = JSON.parse(result.body)
      expect(answer["statusCode"]).to eq(200), answer.inspect
      seen = JSON.parse(answer["body"])
      expect(seen["pid"]).to eq(before.first["pid"]), "the server from before the snapshot serves"
      expect(seen["headers"].keys.grep(/LIFECYCLE/)).to eq([]), "a client's lifecycle headers never reach the app"
      expect(received.size).to eq(2), "and no client's request ran the hooks"
      expect(emulator.restore_errors).to eq([])
      expect(log.call).to match(/SnapStart: restored after a \d+ ms wait; after-restore \d+ ms/)
      # The cold start is the init's, said once, before the snapshot.
      cold = log.call.lines.grep(/cold start:/)
      expect(cold.size).to eq(1)
      expect(log.call.index(cold.first)).to be < log.call.index("waiting for the snapshot")
    end
  end

  it "runs the app's hooks through megamode's own adapter, in order, with a new Random seed after the restore" do
    with_loop(env: { "MEGAMODE_APP_ROOT" => fixture_app("snapstart_hooks") }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      expect(received.map { |r| r["phase"] }).to eq(["before-snapshot"]), log.call
      expect(log.call).not_to include("runs no megamode hooks")

      freeze_and_restore(emulator, pid)
      wait_until { received.size == 2 }
      before, after = received
      expect(after).to include("phase" => "after-restore", "pid" => before["pid"])
      expect(after["seed"]).not_to eq(before["seed"]), "the server's Random was reseeded after the restore"

      result = emulator.invoke(FunctionProcess.event("v2", "/"), request_id: "req-first")
      expect(result.kind).to eq(:response), result.inspect
      answer = JSON.parse(JSON.parse(result.body)["body"])
      expect(answer).to eq("pid" => before["pid"], "seed" => after["seed"])
      expect(emulator.restore_errors).to eq([])
    end
  end

  # A request of its own connection straight to the server's socket (megamode keeps one connection,
  # which reaches one worker): its answer, parsed.
  def server_get(socket, path)
    UNIXSocket.open(socket) do |s|
      s.write("GET #{path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
      head, body = s.read.split("\r\n\r\n", 2)
      raise "GET #{path}: #{head}" unless head.match?(%r{\AHTTP/1\.\d 200 })

      JSON.parse(body)
    end
  end

  # Every worker's answer, by pid: rounds of two requests at once, each holding its worker (one
  # thread each) so that the other goes to the other worker, until both answered.
  def every_worker(socket, workers)
    answers = {}
    20.times do
      [0, 1].map { Thread.new { server_get(socket, "/?hold=0.3") } }.map(&:value).each { |a| answers[a["pid"]] = a }
      return answers if answers.size >= workers
    end
    raise "only workers #{answers.keys} answered of #{workers}"
  end

  it "runs the phases in every worker of puma in cluster mode, once each, each reseeded" do
    with_loop(env: { "MEGAMODE_APP_ROOT" => fixture_app("snapstart_cluster") }) do |emulator, pid, log, tmp|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      expect(log.call).to include("snapstart_cluster fixture: workers 2, preload_app!")
      expect(log.call).not_to include("runs no megamode hooks")
      boots = wait_until { (b = received.select { |r| r["phase"] == "boot" }).size == 2 && b }
      booted = boots.to_h { |b| [b["pid"], b["seed"]] }
      expect(booted.size).to eq(2)

      freeze_and_restore(emulator, pid)
      # The loop serves events once the after-restore hooks ran: this one is after them.
      result = emulator.invoke(FunctionProcess.event("v2", "/"), request_id: "req-first")
      expect(result.kind).to eq(:response), result.inspect
      first = JSON.parse(JSON.parse(result.body)["body"])
      expect(booted.keys).to include(first["pid"])
      expect(emulator.restore_errors).to eq([])

      answers = every_worker(File.join(tmp, "server-#{pid}.sock"), 2)
      expect(answers.keys).to match_array(booted.keys), "the workers from before the snapshot serve"
      answers.each do |worker, answer|
        expect(answer["seed"]).not_to eq(booted[worker]), "worker #{worker} kept its seed from before the snapshot"
        expect(answer["ran"]).to eq("before-snapshot" => 1, "after-restore" => 1), "worker #{worker}: #{answer}"
      end
      # Once: a worker's later requests run nothing again.
      expect(every_worker(File.join(tmp, "server-#{pid}.sock"), 2).values.map { |a| a["ran"] }.uniq)
        .to eq([{ "before-snapshot" => 1, "after-restore" => 1 }])
      records = Dir.glob(File.join(tmp, "tmp", "megamode-lifecycle-*"))
      expect(records.map { |r| File.read(r) }).to eq(["ba"])

      # A worker puma forks after the restore starts from the master's memory, the snapshot's, which
      # never ran a phase: it runs both, once (Ruby reseeds Random in a child; the app's state made
      # in the master is another matter).
      gone = booted.keys.first
      Process.kill("TERM", gone)
      wait_until(30) { received.count { |r| r["phase"] == "boot" } == 3 }
      answers = every_worker(File.join(tmp, "server-#{pid}.sock"), 2)
      expect(answers.keys).not_to include(gone)
      expect(answers.values.map { |a| a["ran"] }.uniq).to eq([{ "before-snapshot" => 1, "after-restore" => 1 }])
    end
  end

  it "reports a failing after-restore hook on restore/error, naming it, and exits" do
    with_loop(env: { "SNAPSTART_FAIL" => "after-restore" }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      freeze_and_restore(emulator, pid)
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.restore_errors.size).to eq(1), log.call
      error = emulator.restore_errors.first
      expect(error.error_type).to eq("Megamode::AppError")
      expect(JSON.parse(error.body)["errorMessage"])
        .to include("after-restore hook reconnect_database failed: RuntimeError: no database after the restore")
      expect(emulator.next_calls).to eq(0)
    end
  end

  it "fails the restore when the after-restore hooks hang past MEGAMODE_HOOK_TIMEOUT, saying so" do
    with_loop(env: { "SNAPSTART_HANG" => "after-restore", "MEGAMODE_HOOK_TIMEOUT" => "1" }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      freeze_and_restore(emulator, pid)
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.restore_errors.size).to eq(1), log.call
      expect(emulator.restore_errors.first.error_type).to eq("Megamode::TimeoutError")
      expect(JSON.parse(emulator.restore_errors.first.body)["errorMessage"])
        .to include("after-restore hooks did not finish within 1.0 s (MEGAMODE_HOOK_TIMEOUT)")
    end
  end

  it "asks MEGAMODE_READINESS_PATH again after the restore, before the after-restore hooks" do
    with_loop(env: { "MEGAMODE_READINESS_PATH" => "/ready" }) do |emulator, _pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      emulator.restore!
      wait_until { received.any? { |r| r["phase"] == "after-restore" } }
      expect(received.map { |r| r["phase"] }).to eq(%w[before-snapshot ready after-restore]), log.call
      expect(emulator.restore_errors).to eq([])
    end
  end

  it "makes a readiness path unhealthy after the restore the restore error, saying what it answered" do
    env = { "MEGAMODE_READINESS_PATH" => "/ready", "SNAPSTART_UNREADY" => "1", "MEGAMODE_HOOK_TIMEOUT" => "1" }
    with_loop(env: env) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      emulator.restore!
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.restore_errors.size).to eq(1), log.call
      expect(JSON.parse(emulator.restore_errors.first.body)["errorMessage"])
        .to include("after the restore, the app's server listens, but /ready (MEGAMODE_READINESS_PATH) " \
                    "was not healthy within 1.0 s (MEGAMODE_HOOK_TIMEOUT): it answered 503")
      expect(received.map { |r| r["phase"] }.uniq).to eq(%w[before-snapshot ready]), "no after-restore hook ran"
    end
  end

  it "makes a server not ready by the end of init the init error, saying why, with no snapshot" do
    with_loop(env: { "MEGAMODE_COMMAND" => "exec sleep 30", "MEGAMODE_BOOT_TIMEOUT" => "1" }) do |emulator, pid, log|
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.init_errors.size).to eq(1), log.call
      expect(JSON.parse(emulator.init_errors.first.body)["errorMessage"])
        .to start_with("SnapStart: the app's server was not ready by the end of init:")
        .and include("did not listen")
      expect(emulator.restore_asked?).to be(false)
    end
  end

  it "makes a failing before-snapshot hook the init error, before any restore" do
    with_loop(env: { "SNAPSTART_FAIL" => "before-snapshot" }) do |emulator, pid, log|
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.init_errors.size).to eq(1), log.call
      expect(JSON.parse(emulator.init_errors.first.body)["errorMessage"])
        .to include("before-snapshot hook reconnect_database failed")
      expect(emulator.restore_asked?).to be(false)
    end
  end

  it "primes MEGAMODE_PRIME's paths before the before-snapshot hooks, as a client's HTTPS request, into the snapshot" do
    with_loop(env: { "MEGAMODE_PRIME" => "/prime/a, /prime/fail,/prime/b" }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      expect(received.map { |r| r["phase"] }).to eq(%w[prime prime prime before-snapshot]), log.call
      expect(received.first(3).map { |r| r["path"] }).to eq(%w[/prime/a /prime/fail /prime/b])
      expect(received.first).to include("proto" => "https", "host" => "localhost")
      expect(log.call).to match(%r{SnapStart: primed GET /prime/a: 200 OK in \d+ ms})
        .and match(%r{SnapStart: primed GET /prime/b: 200 OK in \d+ ms})
        .and match(%r{warning: priming GET /prime/fail answered 500 Internal Server Error in \d+ ms: .*MEGAMODE_PRIME})

      freeze_and_restore(emulator, pid)
      result = emulator.invoke(FunctionProcess.event("v2", "/after"), request_id: "req-primed")
      seen = JSON.parse(JSON.parse(result.body)["body"])
      expect(seen).to include("pid" => received.first["pid"], "primed" => 3), "the primed server is the snapshot's"
      expect(emulator.restore_errors).to eq([])
    end
  end

  it "goes on, saying so once, with an app that runs no megamode hooks" do
    with_loop(env: { "MEGAMODE_APP_ROOT" => fixture_app("rack_hello") }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      freeze_and_restore(emulator, pid)
      result = emulator.invoke(FunctionProcess.event("v2", "/"), request_id: "req-plain")

      expect(JSON.parse(result.body)).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(log.call.scan("the app runs no megamode hooks").size).to eq(2) # one per phase
    end
  end

  context "with the local tools' native loop (megamode invoke and serve --mode native)" do
    def with_environment(vars)
      saved = vars.keys.to_h { |name| [name, ENV.fetch(name, nil)] }
      ENV.update(vars)
      yield
    ensure
      ENV.update(saved)
    end

    # `log`: an IO the loop's process can write to (a file).
    def native_loop(log)
      Megamode::Local::Invoke::NativeLoop.new(fixture_app("snapstart"), log: log, app: true)
    end

    it "restores the snapshot at once when AWS_LAMBDA_INITIALIZATION_TYPE is snap-start" do
      log = Tempfile.new("megamode-snapstart-log")
      with_environment("AWS_LAMBDA_INITIALIZATION_TYPE" => "snap-start", "SNAPSTART_RECORD" => record,
                       "MEGAMODE_TMP" => Dir.mktmpdir("megamode-snapstart-", ENV.fetch("MEGAMODE_TMP"))) do
        runtime = native_loop(log)
        runtime.init
        expect(received.map { |r| r["phase"] }).to eq(%w[before-snapshot after-restore])
        log.flush
        expect(File.read(log.path)).to include("megamode: SnapStart: the init is over and the snapshot taken")
      ensure
        runtime&.shutdown
      end
    end

    it "fails the init with the after-restore hook's error" do
      with_environment("AWS_LAMBDA_INITIALIZATION_TYPE" => "snap-start", "SNAPSTART_RECORD" => record,
                       "SNAPSTART_FAIL" => "after-restore",
                       "MEGAMODE_TMP" => Dir.mktmpdir("megamode-snapstart-", ENV.fetch("MEGAMODE_TMP"))) do
        runtime = native_loop(File.open(File::NULL, "w"))
        expect { runtime.init }
          .to raise_error(Megamode::BootError, /after-restore hook reconnect_database failed: RuntimeError/)
      ensure
        runtime&.shutdown
      end
    end
  end
end

# SnapStart with Lambda's Ruby runtime client (here the stand-in image's, bin/lambda-image.d), which
# leaves the lifecycle to the image: the package's handler.rb, as megamode build writes it, runs the
# cycle while the client loads it, against the emulator in snap-start mode.
RSpec.describe "SnapStart through handler.rb and Lambda's Ruby runtime client" do
  include SnapshotHarness

  SNAP_STAND_IN_CLIENT = File.join(SpecHelpers::ROOT, "bin", "lambda-image.d", "runtime_client.rb")
  SNAP_HANDLER_PROCESS = File.join(SpecHelpers::ROOT, "exe", "megamode-handler-process")

  let(:dir) { PackageBuild.scratch("megamode-snapstart-").tap { |d| File.chmod(0o1777, d) } }
  let(:record) { File.join(dir, "record.jsonl") }
  after { FileUtils.rm_rf(dir) }

  # A package's task root as the client sees it: handler.rb as megamode build writes it, and this
  # checkout's lib/ where the package's megamode/lib would be.
  def task_root
    root = File.join(dir, "task")
    FileUtils.mkdir_p(File.join(root, "megamode"))
    File.symlink(File.join(SpecHelpers::ROOT, "lib"), File.join(root, "megamode", "lib"))
    File.write(File.join(root, "handler.rb"), Megamode::Build::Files.handler_rb)
    root
  end

  def environment(env)
    { "MEGAMODE_APP_ROOT" => fixture_app("snapstart"), "SNAPSTART_RECORD" => record,
      "MEGAMODE_TMP" => Dir.mktmpdir("megamode-snapstart-", ENV.fetch("MEGAMODE_TMP")) }.merge(env)
  end

  def with_client(env: {})
    log = File.join(dir, "client.log")
    env = environment(env).merge("_HANDLER" => "handler.handler", "LAMBDA_TASK_ROOT" => task_root)
    FunctionProcess.run([RbConfig.ruby, SNAP_STAND_IN_CLIENT], env, log: log, snap_start: true) do |emulator, pid|
      yield emulator, pid, -> { File.read(log) }
    end
  end

  it "runs the whole cycle while the client loads handler.rb, then the client serves from the restored server" do
    with_client(env: { "MEGAMODE_PRIME" => "/prime/a" }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      expect(emulator.restore_asked?).to be(true)
      expect(emulator.next_calls).to eq(0), "the client is still loading handler.rb"
      expect(received.map { |r| r["phase"] }).to eq(%w[prime before-snapshot]), log.call
      expect(log.call).to include("SnapStart: before-snapshot").and include("waiting for the snapshot")

      freeze_and_restore(emulator, pid)
      expect(emulator.wait_for_next(1, 30)).to be(true), log.call
      before = received[1]
      expect(received.map { |r| r["phase"] }).to eq(%w[prime before-snapshot after-restore])
      expect(received.last).to include("token" => before["token"], "pid" => before["pid"])
      expect(log.call).to match(/SnapStart: restored after a \d+ ms wait; after-restore \d+ ms/)

      result = emulator.invoke(FunctionProcess.event("v2", "/after"), request_id: "req-first")
      expect(result.kind).to eq(:response), result.inspect
      answer = JSON.parse(result.body)
      expect(answer["statusCode"]).to eq(200), answer.inspect
      expect(JSON.parse(answer["body"])).to include("pid" => before["pid"], "primed" => 1)
      expect(emulator.restore_errors).to eq([])
      expect(emulator.init_errors).to eq([])
    end
  end

  it "posts a failing after-restore hook on restore/error, naming it, and ends the process" do
    with_client(env: { "SNAPSTART_FAIL" => "after-restore" }) do |emulator, pid, log|
      expect(emulator.wait_for_snapshot(60)).to be(true), log.call
      server = received.first["pid"]
      freeze_and_restore(emulator, pid)
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.exitstatus).to eq(1), log.call
      expect(emulator.restore_errors.size).to eq(1), log.call
      error = emulator.restore_errors.first
      expect(error.error_type).to eq("Megamode::AppError")
      expect(JSON.parse(error.body)["errorMessage"])
        .to include("after-restore hook reconnect_database failed: RuntimeError: no database after the restore")
      expect(emulator.init_errors).to eq([]), "no init error after the restore's"
      expect(emulator.next_calls).to eq(0)
      expect { Process.kill(0, server) }.to raise_error(Errno::ESRCH), "the server is shut down"
    end
  end

  it "raises a failing before-snapshot hook from handler.rb, which the client reports as the init error" do
    with_client(env: { "SNAPSTART_FAIL" => "before-snapshot" }) do |emulator, pid, log|
      status = wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(status.success?).to be(false)
      expect(emulator.init_errors.size).to eq(1), log.call
      expect(emulator.init_errors.first.error_type).to eq("Megamode::AppError")
      expect(JSON.parse(emulator.init_errors.first.body)["errorMessage"])
        .to include("before-snapshot hook reconnect_database failed")
      expect(emulator.restore_asked?).to be(false)
    end
  end

  it "makes a malformed MEGAMODE_PRIME the init error, naming the variable and the entry" do
    with_client(env: { "MEGAMODE_PRIME" => "/up,posts" }) do |emulator, pid, log|
      wait_until { Process.wait2(pid, Process::WNOHANG)&.last }

      expect(emulator.init_errors.size).to eq(1), log.call
      expect(emulator.init_errors.first.error_type).to eq("Megamode::ConfigError")
      expect(JSON.parse(emulator.init_errors.first.body)["errorMessage"])
        .to start_with("MEGAMODE_PRIME").and include('"posts"')
      expect(emulator.restore_asked?).to be(false)
    end
  end

  context "with the local tools (megamode invoke and serve of a package through its handler)" do
    # The handler process `megamode invoke --package` starts (`flags`: its own, such as
    # restore-after=SECONDS), with one event: its result and log.
    def invoke_package(env, *flags)
      event = FunctionProcess.event("v2", "/after")
      out, err, status = Open3.capture3(environment(env).merge("AWS_LAMBDA_INITIALIZATION_TYPE" => "snap-start"),
                                        RbConfig.ruby, SNAP_HANDLER_PROCESS, "package", task_root, "30", *flags,
                                        stdin_data: "#{event}\n")
      expect(status.success?).to be(true), err
      [JSON.parse(out.lines.last), err]
    end

    it "runs the cycle against an emulator of its own and restores the snapshot at once" do
      result, log = invoke_package({})

      expect(received.map { |r| r["phase"] }).to eq(%w[before-snapshot after-restore]), log
      expect(log).to include("megamode: SnapStart: the init is over and the snapshot taken")
      expect(result["statusCode"]).to eq(200), result.inspect
      expect(JSON.parse(result["body"])["pid"]).to eq(received.first["pid"])
    end

    it "stops the app's server between the snapshot and the restore for --restore-after, then serves from it" do
      result, log = invoke_package({}, "restore-after=3")

      expect(log).to include("restoring it after a freeze of 3 s")
      # Past the fixture's keep-alive of 2 s: the restore's fresh connection, and the same server.
      expect(result["statusCode"]).to eq(200), log
      expect(JSON.parse(result["body"])["pid"]).to eq(received.first["pid"])
      report = log.lines.grep(/^REPORT/).first
      expect(report).to match(/Restore Duration: \d+\.\d+ ms/)
      expect(report).not_to include("Init Duration")
    end

    it "makes a failing after-restore hook every invocation's error" do
      result, log = invoke_package("SNAPSTART_FAIL" => "after-restore")

      expect(result["errorType"]).to eq("Megamode::BootError"), log
      expect(result["errorMessage"]).to include("after-restore hook reconnect_database failed: RuntimeError")
      expect(log).to include("SnapStart: the restore failed")
    end
  end
end

# Megamode.snap_start in this process, as handler.rb calls it: where Lambda makes no snapshot, or a
# second time, it does nothing of the cycle (before, it ran the before-snapshot hooks, in a restored
# environment too, then failed on restore/next).
RSpec.describe "Megamode.snap_start" do
  let(:dir) { PackageBuild.scratch("megamode-snapstart-").tap { |d| File.chmod(0o1777, d) } }
  let(:record) { File.join(dir, "record.jsonl") }

  around do |example|
    saved = %w[AWS_LAMBDA_INITIALIZATION_TYPE SNAPSTART_RECORD].to_h { |name| [name, ENV.fetch(name, nil)] }
    ENV["SNAPSTART_RECORD"] = record
    example.run
  ensure
    Megamode.reset!
    ENV.update(saved)
    FileUtils.rm_rf(dir)
  end

  def phases
    File.exist?(record) ? File.readlines(record).map { |l| JSON.parse(l)["phase"] } : []
  end

  it "refuses an init that is not SnapStart's, booting nothing and running no hook" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand"
    Megamode.configure { |c| c.app_root = fixture_app("snapstart") }
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: false)
    expect { Megamode.snap_start(runtime_api: emulator.address) }
      .to raise_error(Megamode::ConfigError, /AWS_LAMBDA_INITIALIZATION_TYPE=snap-start/)
    expect(Megamode.status["pid"]).to be_nil
    expect(phases).to eq([])
  ensure
    emulator&.close
  end

  it "takes Megamode.configure's prime as a list of paths, as MEGAMODE_PRIME's commas give them" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    Megamode.configure do |c|
      c.app_root = fixture_app("snapstart")
      c.prime = ["/prime/a", "/prime/b?page=2"]
    end
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: true)
    restorer = Thread.new { emulator.restore! if emulator.wait_for_snapshot(60) }
    Megamode.snap_start(runtime_api: emulator.address)
    primed = File.readlines(record).map { |l| JSON.parse(l) }.select { |r| r["phase"] == "prime" }
    expect(primed.map { |r| r["path"] }).to eq(["/prime/a", "/prime/b"])
  ensure
    restorer&.kill
    emulator&.close
  end

  it "says of a priming path whose response never ends that it answered and streamed past the timeout, and goes on" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    Megamode.configure do |c|
      c.app_root = fixture_app("snapstart")
      c.prime = ["/prime/stream", "/prime/a"]
      c.hook_timeout = "1"
    end
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: true)
    restorer = Thread.new { emulator.restore! if emulator.wait_for_snapshot(60) }
    log = capture_stdout_fd { Megamode.snap_start(runtime_api: emulator.address) }
    expect(log).to match(%r{warning: priming GET /prime/stream failed after \d+ ms: it answered 200 OK, and its body was still arriving after MEGAMODE_HOOK_TIMEOUT \(1\.0 s\)})
      .and match(%r{primed GET /prime/a: 200 OK})
    expect(phases).to eq(%w[prime prime before-snapshot after-restore])
  ensure
    restorer&.kill
    emulator&.close
  end

  it "warns of a priming path the app refuses (4xx), naming it and its status, and goes on" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    Megamode.configure do |c|
      c.app_root = fixture_app("snapstart")
      c.prime = ["/prime/missing", "/prime/a"]
    end
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: true)
    restorer = Thread.new { emulator.restore! if emulator.wait_for_snapshot(60) }
    log = capture_stdout_fd { Megamode.snap_start(runtime_api: emulator.address) }
    expect(log).to match(%r{SnapStart: warning: priming GET /prime/missing answered 404 Not Found in \d+ ms: the app refused it})
      .and include("take /prime/missing out")
      .and match(%r{primed GET /prime/a: 200 OK})
    expect(log).not_to include("primed GET /prime/missing")
    expect(phases).to eq(%w[prime prime before-snapshot after-restore])
  ensure
    restorer&.kill
    emulator&.close
  end

  it "warns of priming paths that time out without counting them towards a hung server: the primed server is snapshotted" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    Megamode.configure do |c|
      c.app_root = fixture_app("snapstart")
      c.prime = ["/prime/slow1", "/prime/slow2", "/prime/a"]
      c.hook_timeout = "1"
    end
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: true)
    restorer = Thread.new { emulator.restore! if emulator.wait_for_snapshot(60) }
    log = capture_stdout_fd { Megamode.snap_start(runtime_api: emulator.address) }
    expect(log).not_to include("killing it")
    records = File.readlines(record).map { |l| JSON.parse(l) }
    expect(records.map { |r| r["phase"] }).to eq(%w[prime prime prime before-snapshot after-restore]), log
    expect(records.map { |r| r["pid"] }.uniq.size).to eq(1), "one server, primed, snapshotted and restored"
    %w[/prime/slow1 /prime/slow2].each do |path|
      expect(log).to match(%r{SnapStart: warning: priming GET #{path} failed after \d+ ms: it did not answer within MEGAMODE_HOOK_TIMEOUT \(1\.0 s\): the app's server may still be working on it})
    end
  ensure
    restorer&.kill
    emulator&.close
  end

  it "runs the cycle once: a second call runs no hook and asks for no restore" do
    ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    Megamode.configure { |c| c.app_root = fixture_app("snapstart") }
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: true)
    restorer = Thread.new { emulator.restore! if emulator.wait_for_snapshot(60) }
    Megamode.snap_start(runtime_api: emulator.address)
    restorer.join
    expect(phases).to eq(%w[before-snapshot after-restore])

    expect { Megamode.snap_start(runtime_api: emulator.address) }
      .to raise_error(Megamode::ConfigError, /once/)
    expect(phases).to eq(%w[before-snapshot after-restore])
    expect(emulator.restore_errors).to eq([])
  ensure
    restorer&.kill
    emulator&.close
  end
end
