# frozen_string_literal: true

require "spec_helper"
require "json"
require "net/http"
require "open3"
require "rack"
require "rack/mock"
require "socket"
require "megamode/rack/lifecycle"

RSpec.describe Megamode::Rack::Lifecycle do
  let(:token) { "0123456789abcdef0123456789abcdef" }
  let(:hooks) { Megamode::Rack::Hooks.new }
  let(:calls) { [] }
  # The app behind the middleware: records that it was called, and what it was given.
  let(:app) do
    lambda do |env|
      calls << [:app, env["PATH_INFO"], env["HTTP_X_MEGAMODE_LIFECYCLE_TOKEN"]]
      [200, {}, ["app"]]
    end
  end
  let(:request) { Rack::MockRequest.new(described_class.new(app, hooks: hooks)) }

  # Each example a server of its own: its token, and a TMPDIR for the record of its phases.
  around do |example|
    saved = %w[MEGAMODE_LIFECYCLE_TOKEN TMPDIR].to_h { |name| [name, ENV.fetch(name, nil)] }
    tmp = Dir.mktmpdir("megamode-lifecycle-")
    ENV.update("MEGAMODE_LIFECYCLE_TOKEN" => token, "TMPDIR" => tmp)
    example.run
  ensure
    ENV.update(saved)
    FileUtils.rm_rf(tmp) if tmp
  end

  def lifecycle(phase, token: self.token)
    headers = { "HTTP_X_MEGAMODE_LIFECYCLE" => phase }
    headers["HTTP_X_MEGAMODE_LIFECYCLE_TOKEN"] = token if token
    request.post("/", headers)
  end

  it "runs before_snapshot hooks in reverse registration order and after_restore in order, megamode's own outermost" do
    hooks.add(:before_snapshot, :first) { calls << :b1 }
    hooks.add(:before_snapshot, :second) { calls << :b2 }
    hooks.add(:before_snapshot, "megamode.own", own: true) { calls << :b_own }
    hooks.add(:after_restore, :first) { calls << :a1 }
    hooks.add(:after_restore) { calls << :a2 }
    hooks.add(:after_restore, "megamode.own", own: true) { calls << :a_own }

    response = lifecycle("before-snapshot")
    expect([response.status, response.headers["x-megamode-lifecycle-done"], response.body]).to eq([204, "before-snapshot", ""])
    expect(calls).to eq(%i[b2 b1 b_own])

    calls.clear
    response = lifecycle("after-restore")
    expect([response.status, response.headers["x-megamode-lifecycle-done"]]).to eq([204, "after-restore"])
    expect(calls).to eq(%i[a_own a1 a2])
  end

  it "names an unnamed hook by its source location, and replaces a named one given again in its place" do
    hook = hooks.add(:after_restore) { calls << :unnamed }
    hooks.add(:after_restore, :redis) { calls << :old }
    hooks.add(:after_restore, :last) { calls << :last }
    hooks.add(:after_restore, :redis) { calls << :new }

    expect(hook.name).to eq("#{__FILE__}:#{__LINE__ - 5}")
    lifecycle("after-restore")
    expect(calls).to eq(%i[unnamed new last])
  end

  it "answers 500 naming the hook that raised, with its error, logs it, and runs no later hook" do
    hooks.add(:after_restore, :ok) { calls << :ok }
    hooks.add(:after_restore, :refresh_credentials) { raise ArgumentError, "no credentials" }
    hooks.add(:after_restore, :later) { calls << :later }

    response = nil
    logged = /megamode: after-restore hook refresh_credentials failed: ArgumentError: no credentials\n  #{Regexp.escape(__FILE__)}/
    expect { response = lifecycle("after-restore") }.to output(logged).to_stderr
    expect(response.status).to eq(500)
    expect(response.headers["x-megamode-lifecycle-failed"]).to eq("refresh_credentials")
    expect(response.headers["content-type"]).to eq("text/plain")
    expect(response.body).to eq("ArgumentError: no credentials")
    expect(calls).to eq([:ok])
  end

  # Not StandardError: before, these left the middleware, the server answered its own 500, and
  # megamode took the app for one without hooks and took the snapshot anyway.
  it "fails the phase naming the hook that exits, aborts or overflows the stack, and runs no later hook" do
    deep = ->(n) { deep.call(n + 1) + 1 }
    { exits: -> { exit }, aborts: -> { abort "no database" }, recurses: -> { deep.call(0) } }.each do |name, body|
      hooks.clear
      calls.clear
      hooks.add(:before_snapshot, :later) { calls << :later }
      hooks.add(:before_snapshot, name) { body.call }

      response = nil
      expect do
        response = lifecycle("before-snapshot")
      rescue SystemExit, SystemStackError => e
        # Rescued here, or it would end the spec run (an exit) as a success.
        raise "#{name}: the hook's #{e.class} left the middleware"
      end.to output(/before-snapshot hook #{name} failed/).to_stderr
      expect(response.status).to eq(500), name.to_s
      expect(response.headers["x-megamode-lifecycle-failed"]).to eq(name.to_s)
      expect(response.body).to match(/\A(SystemExit|SystemStackError): /)
      expect(calls).to eq([]), "#{name}: no later hook ran"
    end
  end

  it "fails the phase naming a hook whose name is UTF-8 and whose message is not, as text" do
    hooks.add(:before_snapshot, "caché") { raise "bad \xFF bytes".b }

    response = nil
    expect do
      response = lifecycle("before-snapshot")
    rescue EncodingError => e
      raise "the failure left the middleware: #{e.class}: #{e.message}"
    end.to output(/before-snapshot hook caché failed: RuntimeError: bad \? bytes/).to_stderr
    expect(response.status).to eq(500)
    expect(response.headers["x-megamode-lifecycle-failed"]).to eq("caché")
    expect(response.body).to eq("RuntimeError: bad ? bytes")
  end

  it "refuses a wrong or missing token with 403, running no hook and never calling the app" do
    hooks.add(:before_snapshot) { calls << :hook }

    ["0123456789abcdef0123456789abcdee", "", "short", nil].each do |wrong|
      response = lifecycle("before-snapshot", token: wrong)
      expect(response.status).to eq(403), wrong.inspect
      expect(response.headers).not_to include("x-megamode-lifecycle-done")
    end
    # An unknown phase with a wrong token tells nothing either.
    expect(lifecycle("nonsense", token: "x").status).to eq(403)
    expect(calls).to be_empty
  end

  it "refuses every lifecycle request when megamode did not start the server (no token in its environment)" do
    hooks.add(:before_snapshot) { calls << :hook }
    [nil, ""].each do |unset|
      ENV["MEGAMODE_LIFECYCLE_TOKEN"] = unset
      expect(lifecycle("before-snapshot").status).to eq(403)
      expect(lifecycle("before-snapshot", token: "").status).to eq(403)
    end
    expect(calls).to be_empty
  end

  it "answers an unknown phase with 400" do
    response = lifecycle("after-snapshot")
    expect(response.status).to eq(400)
    expect(response.body).to include("before-snapshot or after-restore")
    expect(calls).to be_empty
  end

  it "passes every other request to the app untouched, a lone token header included" do
    response = request.post("/posts", "HTTP_X_MEGAMODE_LIFECYCLE_TOKEN" => token)
    expect([response.status, response.body]).to eq([200, "app"])
    expect(request.get("/").body).to eq("app")
    expect(calls).to eq([[:app, "/posts", token], [:app, "/", nil]])
  end

  it "runs the hooks inside what it is given to wrap them in (Rails' reloader)" do
    log = calls
    wrapper = Object.new
    wrapper.define_singleton_method(:wrap) do |&block|
      log << :in
      block.call
      log << :out
    end
    hooks.add(:after_restore) { calls << :hook }
    request = Rack::MockRequest.new(described_class.new(app, hooks: hooks, wrap: wrapper))

    response = request.post("/", "HTTP_X_MEGAMODE_LIFECYCLE" => "after-restore", "HTTP_X_MEGAMODE_LIFECYCLE_TOKEN" => token)
    expect(response.status).to eq(204)
    expect(calls).to eq(%i[in hook out])
  end

  context "with a server of several processes (puma's workers), megamode's request reaching one" do
    # Another process of the same server: its own registry, the same token and TMPDIR.
    let(:other_hooks) { Megamode::Rack::Hooks.new }
    let(:other) { Rack::MockRequest.new(described_class.new(app, hooks: other_hooks)) }

    def register(registry, tag, fail_after: nil)
      registry.add(:before_snapshot, :close) { calls << :"#{tag}_before" }
      registry.add(:after_restore, :reseed) do
        raise IOError, "secret://db" if fail_after&.call

        calls << :"#{tag}_after"
      end
    end

    it "runs, before another process's next request, the phases it missed, in order, once" do
      register(hooks, :asked)
      register(other_hooks, :other)
      expect(lifecycle("before-snapshot").status).to eq(204)
      expect(lifecycle("after-restore").status).to eq(204)
      expect(calls).to eq(%i[asked_before asked_after])

      calls.clear
      expect(other.get("/first").body).to eq("app")
      expect(other.get("/second").body).to eq("app")
      expect(request.get("/asked").body).to eq("app")
      expect(calls).to eq([:other_before, :other_after, [:app, "/first", nil], [:app, "/second", nil],
                           [:app, "/asked", nil]])
    end

    it "runs only the phase a process missed, and a missed phase before megamode's own request" do
      register(hooks, :asked)
      register(other_hooks, :other)
      expect(lifecycle("before-snapshot").status).to eq(204)
      expect(other.get("/").body).to eq("app")
      expect(lifecycle("after-restore").status).to eq(204)
      calls.clear
      expect(other.get("/").body).to eq("app")
      expect(calls).to eq([:other_after, [:app, "/", nil]])

      # A third process, which missed both, asked for the next phase itself: the missed ones first.
      third = Megamode::Rack::Hooks.new
      register(third, :third)
      calls.clear
      response = Rack::MockRequest.new(described_class.new(app, hooks: third))
                                  .post("/", "HTTP_X_MEGAMODE_LIFECYCLE" => "after-restore",
                                             "HTTP_X_MEGAMODE_LIFECYCLE_TOKEN" => token)
      expect(response.status).to eq(204)
      expect(calls).to eq(%i[third_before third_after third_after])
    end

    it "answers 500 without the hook's name or error while a missed hook fails (the log has both), and serves once it runs" do
      failing = true
      register(hooks, :asked)
      register(other_hooks, :other, fail_after: -> { failing })
      failing = false
      lifecycle("before-snapshot")
      lifecycle("after-restore")
      failing = true
      calls.clear

      response = nil
      logged = /megamode: after-restore hook reseed failed: IOError: secret:\/\/db\n  #{Regexp.escape(__FILE__)}/
      expect { response = other.get("/") }.to output(logged).to_stderr
      expect(response.status).to eq(500)
      expect(response.body).to include("a SnapStart hook failed").and include("see the function's log")
      expect(response.body).not_to include("secret")
      expect(response.body).not_to include("reseed")
      expect(calls).to eq([:other_before]), "the app is not called; the phase before ran, once"

      failing = false
      expect(other.get("/").body).to eq("app")
      expect(calls).to eq([:other_before, :other_after, [:app, "/", nil]])
    end

    it "fails megamode's request, naming megamode.record, when the phase cannot be recorded" do
      hooks.add(:after_restore) { calls << :hook }
      # The record a link into a directory that is not there: no one can create it, root included.
      File.symlink(File.join(ENV.fetch("TMPDIR"), "gone", "record"), Megamode::Rack::PhaseRecord.new(token).path)

      response = nil
      expect { response = lifecycle("after-restore") }.to output(/after-restore hook megamode.record failed/).to_stderr
      expect([response.status, response.headers["x-megamode-lifecycle-failed"]]).to eq([500, "megamode.record"])
      expect(response.body).to include("cannot record after-restore").and include("Errno::ENOENT")
                                                                      .and include("make TMPDIR writable")
      expect(calls).to eq([:hook])
    end

    it "records nothing and runs nothing without megamode's token" do
      register(other_hooks, :other)
      ENV["MEGAMODE_LIFECYCLE_TOKEN"] = nil
      expect(other.get("/").body).to eq("app")
      expect(Dir.children(ENV.fetch("TMPDIR"))).to eq([])
      expect(calls).to eq([[:app, "/", nil]])
    end
  end

  it "gives Megamode.before_snapshot and after_restore to a plain Rack app, on the process's registry" do
    script = <<~RUBY
      require "megamode/rack/lifecycle"
      Megamode.before_snapshot(:close) { }
      Megamode.after_restore { }
      puts Megamode::Rack::Hooks.default.ordered(:before_snapshot).map(&:name).inspect
      puts Megamode::Rack::Hooks.default.ordered(:after_restore).map(&:name).inspect
      puts defined?(::Rails).inspect
    RUBY
    out, err, status = Open3.capture3({ "RUBYLIB" => File.join(SpecHelpers::ROOT, "lib") }, RbConfig.ruby, "-e", script)
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(['["close"]', '["-e:3"]', "nil"])
  end
end

# megamode's own Rails hooks on their own, each in a process of its own (Rails and Active Record
# loaded there, not in the spec's).
RSpec.describe "Megamode::Rails::SnapStart" do
  def run_ruby(script)
    out, err, status = Open3.capture3({ "RUBYLIB" => File.join(SpecHelpers::ROOT, "lib") }, RbConfig.ruby, "-e", script)
    raise "the script failed (#{status}): #{err}" unless status.success?

    out.lines.map(&:chomp)
  end

  it "closes every Active Record pool, a second database's included, with and without legacy connection handling" do
    script = <<~RUBY
      require "active_record"
      require "megamode/rails"
      legacy = ARGV_LEGACY
      next_legacy = ActiveRecord::Base.respond_to?(:legacy_connection_handling=)
      ActiveRecord::Base.legacy_connection_handling = legacy if next_legacy
      ActiveRecord::Base.establish_connection(adapter: "sqlite3", database: ":memory:")
      class Other < ActiveRecord::Base
        self.abstract_class = true
        establish_connection(adapter: "sqlite3", database: ":memory:")
      end
      pools = [ActiveRecord::Base.connection_pool, Other.connection_pool]
      pools.each { |pool| pool.with_connection { |c| c.select_value("select 1") } }
      puts pools.map(&:connected?).inspect
      Megamode::Rails::SnapStart.close_active_record
      puts pools.map(&:connected?).inspect
      puts [ActiveRecord::Base.connection.select_value("select 2"), Other.connection.select_value("select 3")].inspect
      Megamode::Rails::SnapStart.drop_idle_active_record
      ActiveRecord::Base.connection_handler.clear_active_connections!
      Megamode::Rails::SnapStart.drop_idle_active_record
      puts pools.map { |pool| pool.connections.size }.inspect
    RUBY
    [false, true].each do |legacy|
      expect(run_ruby(script.sub("ARGV_LEGACY", legacy.to_s)))
        .to eq(["[true, true]", "[false, false]", "[2, 3]", "[0, 0]"]), "legacy connection handling: #{legacy}"
    end
  end

  it "closes the pools of every role's handler under legacy connection handling (6.1 and 7.0)" do
    out = run_ruby(<<~RUBY)
      require "active_record"
      require "megamode/rails"
      if !ActiveRecord::Base.respond_to?(:legacy_connection_handling=)
        puts "no legacy connection handling"
        exit
      end
      base = ActiveRecord::Base
      base.legacy_connection_handling = true
      base.connection_handlers = { writing: base.default_connection_handler,
                                   reading: ActiveRecord::ConnectionAdapters::ConnectionHandler.new }
      base.establish_connection(adapter: "sqlite3", database: ":memory:")
      base.connected_to(role: :reading) { base.establish_connection(adapter: "sqlite3", database: ":memory:") }
      pools = [base.connection_pool, base.connected_to(role: :reading) { base.connection_pool }]
      pools.each { |pool| pool.with_connection { |c| c.select_value("select 1") } }
      puts [pools.uniq.size, pools.map(&:connected?)].inspect
      Megamode::Rails::SnapStart.close_active_record
      puts pools.map(&:connected?).inspect
    RUBY
    skip "this Active Record has no legacy connection handling" if out == ["no legacy connection handling"]
    expect(out).to eq(["[2, [true, true]]", "[false, false]"])
  end

  it "touches no Active Record that was never loaded" do
    expect(run_ruby(<<~RUBY)).to eq(["[]", "true"])
      require "active_record"
      require "megamode/rails"
      puts Megamode::Rails::SnapStart.active_record_pools.inspect
      puts (ActiveRecord.autoload?(:Base) == "active_record/base").inspect
    RUBY
  end

  it "closes the Redis cache store's client, a pool's every connection, and nothing of another store" do
    expect(run_ruby(<<~RUBY)).to eq(["client closed", "pool reloaded with each closed", "nothing"])
      require "megamode/rails"
      client = Object.new
      def client.close = puts("client closed")
      pool = Object.new
      def pool.reload = yield(Struct.new(:x) { def close = puts("pool reloaded with each closed") }.new)
      module Rails
        class << self
          attr_accessor :cache
        end
      end
      [client, pool].each do |redis|
        Rails.cache = Struct.new(:redis).new(redis)
        Megamode::Rails::SnapStart.close_cache
      end
      Rails.cache = Object.new
      Megamode::Rails::SnapStart.close_cache
      puts "nothing"
    RUBY
  end

  it "reseeds Random from the OS after a restore" do
    expect(run_ruby(<<~RUBY)).to eq(["true"])
      require "megamode/rails"
      seed = Random.seed
      Megamode::Rails::SnapStart.reseed
      puts (Random.seed != seed).inspect
    RUBY
  end
end

# megamode's own hooks in a real Rails app (the scaffold app, on sqlite), served by puma as megamode
# serves it: MEGAMODE=1 and a lifecycle token in the server's environment.
RSpec.describe "Megamode::Rails SnapStart hooks under puma" do
  let(:token) { "fedcba9876543210fedcba9876543210" }

  # The app with megamode's adapter as a package gives it (the Gemfile's require, the initializer),
  # and a route that tells what Active Record holds and the process's seed, and queries on demand.
  def adapted_app
    dir = Dir.mktmpdir("megamode-snapstart-")
    app = File.join(dir, RailsApp::NAME)
    FileUtils.cp_r(RailsApp.path, app)
    application = File.join(app, "config", "application.rb")
    File.write(application, File.read(application).sub(/^Bundler\.require.*$/) { |line| "#{line}\nrequire \"megamode/rails\"" })
    File.write(File.join(app, "config", "initializers", "megamode.rb"), <<~RUBY)
      if ENV["MEGAMODE"] == "1"
        require "megamode/rails"
        Megamode::Rails.configure(Rails.application)
      end
      # The app's own hooks: one that queries before the snapshot (megamode's close runs after
      # it), one that fails after a restore when told to.
      Megamode.before_snapshot(:warm_posts) { Post.count }
      Megamode.after_restore(:app_check) { raise IOError, "told to fail" if File.exist?("tmp/fail-restore") }
    RUBY
    routes = File.join(app, "config", "routes.rb")
    File.write(routes, File.read(routes).sub(/^end\s*\z/, "  get \"/snap\" => \"snap#show\"\nend\n"))
    File.write(File.join(app, "app", "controllers", "snap_controller.rb"), <<~RUBY)
      class SnapController < ActionController::Base
        def show
          sleep Float(params[:hold]) if params[:hold] # keeps a one-thread worker busy
          posts = Post.count if params[:query]
          pool = ActiveRecord::Base.connection_pool
          render json: { connected: pool.connected?, connections: pool.connections.size,
                         seed: Random.seed.to_s, posts: posts, pid: Process.pid }
        end
      end
    RUBY
    [dir, app]
  end

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def start_puma(app, port, env = {})
    env = { "MEGAMODE" => "1", "MEGAMODE_LIFECYCLE_TOKEN" => token, "RAILS_ENV" => "production",
            "SECRET_KEY_BASE" => "s" * 64, "RUBYLIB" => File.join(SpecHelpers::ROOT, "lib"),
            "WEB_CONCURRENCY" => "0", "RAILS_MAX_THREADS" => "3", "TMPDIR" => File.dirname(app) }.merge(env)
    log = File.join(File.dirname(app), "puma.log")
    pid = Process.spawn(env, "bundle", "exec", "puma", "--bind", "tcp://127.0.0.1:#{port}", "config.ru",
                        chdir: app, out: log, err: log, pgroup: true)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 90
    loop do
      break if (get(port, "/snap") rescue nil) # rubocop:disable Style/RescueModifier -- not up yet

      raise "puma did not start:\n#{File.read(log)}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline ||
                                                        Process.waitpid(pid, Process::WNOHANG)

      sleep 0.2
    end
    [pid, log]
  end

  def http(port)
    Net::HTTP.start("127.0.0.1", port, read_timeout: 30) { |h| yield h }
  end

  # Every worker's answer to `path`, by pid: rounds of two requests at once, each holding its
  # one-thread worker so that the other goes to the other worker, until both answered.
  def every_worker(port, path)
    answers = {}
    20.times do
      [0, 1].map { Thread.new { get(port, "#{path}hold=0.3") } }.map(&:value).each { |a| answers[a["pid"]] = a }
      return answers if answers.size >= 2
    end
    raise "only workers #{answers.keys} answered of 2"
  end

  # https as API Gateway forwards it: Rails 7.2's production forces SSL.
  def get(port, path)
    response = http(port) { |h| h.get(path, "X-Forwarded-Proto" => "https") }
    raise "GET #{path}: #{response.code} #{response.body}" unless response.code == "200"

    JSON.parse(response.body)
  end

  def lifecycle(port, phase, token: self.token)
    http(port) { |h| h.post("/", "", "X-Megamode-Lifecycle" => phase, "X-Megamode-Lifecycle-Token" => token) }
  end

  it "runs megamode's hooks in every worker of puma in cluster mode (WEB_CONCURRENCY, preload_app!)" do
    dir, app = adapted_app
    File.write(File.join(app, "config", "puma.rb"), "#{File.read(File.join(app, "config", "puma.rb"))}\npreload_app!\n")
    port = free_port
    pid, log = start_puma(app, port, "WEB_CONCURRENCY" => "2", "RAILS_MAX_THREADS" => "1")

    booted = every_worker(port, "/snap?query=1&")
    expect(booted.values.map { |w| w["connected"] }).to eq([true, true]), File.read(log)

    done = lifecycle(port, "before-snapshot")
    expect([done.code, done["X-Megamode-Lifecycle-Done"]]).to eq(["204", "before-snapshot"]), File.read(log)
    # Each worker closed its connections before the request it serves next, not only the one asked.
    snapshot = every_worker(port, "/snap?")
    expect(snapshot.keys).to match_array(booted.keys)
    expect(snapshot.values.map { |w| [w["connected"], w["connections"]] }).to eq([[false, 0], [false, 0]])

    restored = lifecycle(port, "after-restore")
    expect([restored.code, restored["X-Megamode-Lifecycle-Done"]]).to eq(["204", "after-restore"]), File.read(log)
    after = every_worker(port, "/snap?query=1&")
    expect(after.keys).to match_array(booted.keys)
    after.each do |worker, answer|
      expect(answer["seed"]).not_to eq(booted[worker]["seed"]), "worker #{worker} kept its seed from before"
      expect(answer).to include("connected" => true, "posts" => 0)
    end
    expect(File.read(log)).not_to match(/megamode: \S+ hook .* failed/)
  ensure
    if pid
      Process.kill("TERM", -pid)
      Process.wait(pid)
    end
    FileUtils.rm_rf(dir) if dir
  end

  it "closes Active Record's connections before the snapshot, reseeds Random after the restore, and the next query works" do
    dir, app = adapted_app
    port = free_port
    pid, log = start_puma(app, port)

    booted = get(port, "/snap?query=1")
    expect(booted).to include("connected" => true, "posts" => 0)
    expect(booted["connections"]).to be >= 1

    expect(lifecycle(port, "before-snapshot", token: "0" * 32).code).to eq("403")
    expect(get(port, "/snap")["connected"]).to be(true)

    done = lifecycle(port, "before-snapshot")
    expect([done.code, done["X-Megamode-Lifecycle-Done"]]).to eq(["204", "before-snapshot"]), File.read(log)
    snapshot = get(port, "/snap")
    expect(snapshot).to include("connected" => false, "connections" => 0)
    expect(snapshot["seed"]).to eq(booted["seed"])

    restored = lifecycle(port, "after-restore")
    expect([restored.code, restored["X-Megamode-Lifecycle-Done"]]).to eq(["204", "after-restore"]), File.read(log)
    after = get(port, "/snap?query=1")
    expect(after["seed"]).not_to eq(booted["seed"])
    expect(after).to include("connected" => true, "posts" => 0)

    FileUtils.touch(File.join(app, "tmp", "fail-restore"))
    failed = lifecycle(port, "after-restore")
    expect([failed.code, failed["X-Megamode-Lifecycle-Failed"], failed.body]).to eq(["500", "app_check", "IOError: told to fail"])
    expect(File.read(log)).to include("megamode: after-restore hook app_check failed: IOError: told to fail")
  ensure
    if pid
      Process.kill("TERM", -pid)
      Process.wait(pid)
    end
    FileUtils.rm_rf(dir) if dir
  end
end
