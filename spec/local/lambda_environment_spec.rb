# frozen_string_literal: true

require "spec_helper"
require "megamode/local/lambda_environment"

# What a package sees when `megamode invoke --package` and `megamode serve --package` run it: the
# environment Lambda gives (as root, the task root is read-only, /tmp fresh and this machine's gems
# hidden; without root megamode cannot mount those, says so, and what needs them is skipped).
RSpec.describe "the Lambda-like environment of a package" do
  isolated = Megamode::Local::LambdaEnvironment.new(SpecHelpers::ROOT).isolated?
  without_root = "needs root: without it megamode cannot mount a read-only task root or hide this machine's gems " \
                 "(bin/test runs these specs as root too)"

  before(:all) do
    @dir = PackageBuild.scratch("megamode-lambda-env-")
    @package = PackageBuild.built("rack_hello", @dir, package: "hello")
  end
  after(:all) { FileUtils.rm_rf(@dir) }

  it "sets Lambda's variables and a trace id per invocation" do
    events = [PackageBuild.staged_event("/lambda"), PackageBuild.staged_event("/lambda")]
    results, = PackageBuild.invoke(@package, events, tmp: @dir)
    first, second = results.map { |r| JSON.parse(r.fetch("body")) }

    expect(first["env"]).to include("LAMBDA_TASK_ROOT" => @package, "_HANDLER" => "handler.handler",
                                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => "1024", "MEGAMODE" => "1")
    expect(first["env"]["AWS_EXECUTION_ENV"]).to match(/\AAWS_Lambda_ruby3\.\d\z/)
    # Lambda's has /var/task and /var/task/lib, where a package's libraries are (the build ships
    # them there); the server inherits it.
    expect(first["env"]["LD_LIBRARY_PATH"].split(":")).to include(@package, File.join(@package, "lib"))
    expect([first["trace"], second["trace"]]).to all(match(/\ARoot=1-\h{8}-\h{24};Parent=\h{16};Sampled=0\z/))
    expect(first["trace"]).not_to eq(second["trace"])
  end

  it "makes the task root read-only, so the app runs from a copy, with a writable HOME of megamode's" do
    skip without_root unless isolated

    (result,), = PackageBuild.invoke(@package, [PackageBuild.staged_event("/lambda")], tmp: @dir)
    seen = JSON.parse(result.fetch("body"))

    expect(seen["task_root_write"]).to eq("Errno::EROFS")
    expect(seen["pwd"]).to start_with(File.join(@dir, "lambda-tmp", "app-"))
    expect(seen["env"]["HOME"]).to start_with(File.join(@dir, "lambda-tmp")), "a writable HOME of megamode's"
  end

  it "runs the function as a user that owns nothing (nobody), as Lambda does, when that user can reach the package" do
    skip without_root unless isolated

    (result,), log = PackageBuild.invoke(@package, [PackageBuild.staged_event("/lambda")], tmp: @dir)
    expect(JSON.parse(result.fetch("body"))["uid"]).to eq(Etc.getpwnam("nobody").uid), log
    expect(log).not_to include("runs as root")
  end

  it "runs it as root where nobody cannot reach the package, and says what to open up" do
    skip without_root unless isolated

    hidden = File.join(@dir, "private")
    FileUtils.mkdir_p(hidden, mode: 0o700)
    FileUtils.cp_r(@package, hidden)
    package = File.join(hidden, File.basename(@package))
    (result,), log = PackageBuild.invoke(package, [PackageBuild.staged_event("/lambda")], tmp: @dir)

    expect(JSON.parse(result.fetch("body"))["uid"]).to eq(0)
    expect(log).to include("megamode: the function runs as root here, not as a user that owns nothing as on Lambda: " \
                           "nobody cannot reach #{package}")
    # Through a link from an open directory, the package is still where nobody cannot reach it.
    link = File.join(@dir, "link")
    File.symlink(package, link)
    expect(Megamode::Local::LambdaEnvironment.new(link, tmp: File.join(@dir, "t")).unreachable).to eq([link])
  ensure
    FileUtils.rm_rf(hidden) if hidden
    FileUtils.rm_f(link) if link
  end

  it "hides this machine's gem directories: only Ruby's own library and gems and the package remain" do
    skip without_root unless isolated
    hidden = Megamode::Local::LambdaEnvironment.new(@package).hidden
    expect(hidden).to include(File.realpath(RbConfig::CONFIG["vendordir"])) if RbConfig::CONFIG["vendordir"] &&
                                                                                 File.directory?(RbConfig::CONFIG["vendordir"])
    expect(hidden).to include("/var/lib/gems") if File.directory?("/var/lib/gems")
    expect(hidden.select { |d| Dir.exist?(d) && !Dir.empty?(d) }).not_to be_empty, "this machine has gems to hide"

    event = PackageBuild.staged_event("/gems?dirs=#{hidden.join(":")}")
    (result,), = PackageBuild.invoke(@package, [event], tmp: @dir)
    seen = JSON.parse(result.fetch("body"))

    expect(seen["seen"]).to eq(hidden.to_h { |d| [d, 0] }), "every hidden directory is empty from inside"
    own = Megamode::Local::HostGems.own_dirs.map { |d| File.realpath(d) }
    allowed = [*own, File.join(@dir, "lambda-tmp"), @package]
    inside = ->(path, dirs) { dirs.any? { |d| path == d || path.start_with?("#{d}/") } }
    # The load path keeps Ruby's vendor and site directories (hidden, so empty); the gem path may name
    # directories this machine does not have; nothing else but Ruby's own and the package.
    paths = (seen["load_path"] + seen["gem_path"] + seen["specs"]).uniq
    expect(paths.reject { |p| inside.call(p, allowed) || inside.call(p, hidden) || !File.exist?(p) }).to eq([])
    expect(seen["specs"]).to all(satisfy { |p| inside.call(p, [File.join(@dir, "lambda-tmp"), *own]) }),
                             "every gem the app loaded is the bundle's or Ruby's own"
    expect(seen["rubygems"]).to eq([File.join(RbConfig::CONFIG["rubylibdir"], "rubygems.rb")]), "Ruby's own RubyGems"
    expect(seen["bundler"].first).to satisfy { |p| inside.call(p, own) }, "Ruby's own Bundler"
  end

  it "freezes the app's server between invocations and thaws it for the next" do
    gateway = LocalGateway.new("--package", @package)
    client = gateway.client
    pid = JSON.parse(client.get("/whoami").body).fetch("pid")
    state = lambda do
      File.read("/proc/#{pid}/stat")[/\) (\w)/, 1]
    end
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    sleep 0.01 until state.call == "T" || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    expect(state.call).to eq("T"), "stopped while no invocation runs"
    expect(JSON.parse(client.get("/whoami").body)["pid"]).to eq(pid), "the same server serves after the thaw"
  ensure
    client&.close
    gateway&.stop
  end

  it "runs the native loop the same way: a Lambda log per invocation, all of it frozen in between" do
    gateway = LocalGateway.new("--package", @package, "--mode", "native")
    client = gateway.client
    pid = JSON.parse(client.get("/whoami").body).fetch("pid")
    loop_pid = File.read("/proc/#{pid}/stat")[/\) \w (\d+)/, 1].to_i # the server's parent
    state = ->(process) { File.read("/proc/#{process}/stat")[/\) (\w)/, 1] }
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    # The freezer stops the server and the loop one after the other: wait for both.
    both = -> { [state.call(pid), state.call(loop_pid)] }
    sleep 0.01 until both.call == %w[T T] || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    expect(both.call).to eq(%w[T T]), "the server and the loop stopped between invocations"
    expect(JSON.parse(client.get("/whoami").body)["pid"]).to eq(pid), "the same server serves after the thaw"
    log = gateway.wait_for_log("REPORT RequestId:")
    expect(log).to include("START RequestId:", "Rack: handling GET /whoami", "END RequestId:")
    expect(log).to match(/^REPORT RequestId: \S+\tDuration: [\d.]+ ms\t.*\tInit Duration: [\d.]+ ms$/)
  ensure
    client&.close
    gateway&.stop
  end

  # A gem built from native code, as a distribution may install it: Debian 12's ruby-sqlite3 keeps
  # sqlite3_native.so in vendor_ruby, outside the gem. With this machine's gem directories hidden, the
  # app can only load what the package carries, so a package without the extension fails to boot, and
  # the build, which carries it, boots.
  # Builds a package of its own (`builds`: left out where packages cannot be built, see bin/test).
  describe "a package with sqlite3", :builds do
    before(:all) do
      skip without_root unless isolated
      @sqlite_dir = PackageBuild.scratch("megamode-lambda-sqlite-")
      app = File.join(@sqlite_dir, "app")
      FileUtils.mkdir_p(app)
      File.write(File.join(app, "Gemfile"), %(source "https://rubygems.org"\n\ngem "rack"\ngem "puma"\ngem "sqlite3"\n))
      File.write(File.join(app, "config.ru"), <<~RUBY)
        require "sqlite3"
        run ->(env) { [200, { "content-type" => "text/plain" }, [SQLite3::Database.new(":memory:").get_first_value("SELECT sqlite_version()")]] }
      RUBY
      PackageBuild.lock!(app)
      @complete = File.join(@sqlite_dir, "out", "complete")
      status, @log = PackageBuild.build(app, @complete)
      raise "megamode build failed:\n#{@log}" unless status.success?

      # The same package with sqlite3's extension taken out of its bundle.
      @incomplete = File.join(@sqlite_dir, "out", "incomplete")
      FileUtils.cp_r(@complete, @incomplete)
      bundle = File.join(@sqlite_dir, "bundle")
      FileUtils.mkdir_p(bundle)
      system("tar", "-I", "zstd", "-xf", File.join(@incomplete, "megamode", "bundle.tar.zst"), "-C", bundle, exception: true)
      @removed = Dir.glob("**/sqlite3_native.so", base: bundle)
      @removed.each { |f| File.delete(File.join(bundle, f)) }
      Megamode.const_get(:Native).pack(bundle, File.join(@incomplete, "megamode"))
    end
    after(:all) { FileUtils.rm_rf(@sqlite_dir) if @sqlite_dir }

    it "boots when the package carries the extension, and not when only this machine has it" do
      expect(@removed).not_to be_empty, "the package carries sqlite3's extension"
      expect(@log).not_to match(/the gem sqlite3-[\d.]+: has a native extension/)

      (booted,), = PackageBuild.invoke(@complete, [PackageBuild.staged_event("/")], tmp: @sqlite_dir)
      expect(booted).to include("statusCode" => 200), booted.inspect
      expect(booted["body"]).to match(/\A3\.\d+\.\d+\z/)

      (failed,), log = PackageBuild.invoke(@incomplete, [PackageBuild.staged_event("/")], tmp: @sqlite_dir, fails: true)
      expect(failed).to include("errorType"), failed.inspect
      expect(log).to include("megamode invoke: 1 of 1 invocation failed:")
      expect(log).to match(/LoadError.*sqlite3_native/)
    end
  end
end
