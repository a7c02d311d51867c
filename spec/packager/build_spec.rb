# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

# `megamode build` on real apps, and the packages it makes run with `megamode invoke --package`
# (a read-only task root in a private mount namespace, as these specs run as root).
RSpec.describe "megamode build" do
  include PackageBuild

  let(:tree) { Megamode::Build::Tree }

  def scratch
    PackageBuild.scratch("megamode-build-spec-")
  end

  def body_of(result)
    result.fetch("isBase64Encoded") ? result["body"].unpack1("m0") : result["body"]
  end

  describe "a plain Rack app" do
    before(:all) do
      @dir = scratch
      @app = PackageBuild.app("rack_hello", @dir)
      # What a developer's checkout holds that a package must not, and what it must keep.
      FileUtils.mkdir_p(File.join(@app, ".git"))
      File.write(File.join(@app, ".git", "HEAD"), "ref: refs/heads/main\n")
      FileUtils.mkdir_p(File.join(@app, "tmp", "pids"))
      File.write(File.join(@app, "tmp", "pids", "server.pid"), "4242\n")
      FileUtils.touch(File.join(@app, "tmp", "pids", ".keep"))
      FileUtils.mkdir_p(File.join(@app, "log"))
      File.write(File.join(@app, "log", "development.log"), "yesterday\n")
      FileUtils.mkdir_p(File.join(@app, "bin"))
      File.write(File.join(@app, "bin", "run"), "#!/bin/sh\n")
      File.chmod(0o755, File.join(@app, "bin", "run"))
      File.symlink("bin/run", File.join(@app, "run"))
      # `bundle cache`'s .gem files, which nothing at runtime reads (these are not even gems: were
      # anything to read them, the build's boot or the invocations below would fail), and a cached
      # checkout, as `bundle cache --all` leaves a git or path gem's, which stays.
      @cache = File.join(@app, "vendor", "cache")
      FileUtils.mkdir_p(File.join(@cache, "shared-0e5b6f1c9a2d"))
      File.write(File.join(@cache, "shared-0e5b6f1c9a2d", ".bundlecache"), "")
      File.binwrite(File.join(@cache, "rack-2.2.4.gem"), "r" * 150_000)
      File.binwrite(File.join(@cache, "puma-5.6.5.gem"), "p" * 100_000)
      @digest_before = Megamode::Build::Tree.digest(@app)
      @out = File.join(@dir, "build", "megamode")
      @status, @log = PackageBuild.build(@app, @out)
    end

    after(:all) { FileUtils.rm_rf(@dir) }

    it "says what it detected and builds the package Lambda's Ruby runtime expects" do
      expect(@status).to be_success, @log
      expect(@log).to include("building #{@app} (a plain Rack app)")
      %w[.megamode-package handler.rb app/config.ru app/Gemfile app/Gemfile.lock app/.megamode-build-id megamode/bundle.json
         megamode/bundle.tar.zst megamode/lib/megamode.rb megamode/lib/megamode/megamode.so].each do |file|
        expect(File.file?(File.join(@out, file))).to be(true), "#{file} is in the package"
      end
      expect(File.read(File.join(@out, "handler.rb"))).to include("def handler(event:, context:)")
    end

    it "carries in megamode/lib the runtime and the adapter only: no local tool, nothing of the packager" do
      lib = File.join(@out, "megamode", "lib")
      files = Dir.glob("**/*", base: lib).reject { |f| File.directory?(File.join(lib, f)) }.sort

      expect(files).to eq(%w[megamode.rb megamode/megamode.so megamode/rack/event_stream.rb megamode/rack/hooks.rb
                             megamode/rack/lifecycle.rb megamode/rack/phase_record.rb megamode/rack/prefix.rb
                             megamode/rails.rb megamode/runtime.rb megamode/runtime/config.rb megamode/runtime/context.rb megamode/runtime/errors.rb
                             megamode/runtime/native.rb megamode/runtime/native_library.rb megamode/runtime/package_target.rb
                             megamode/version.rb])
      expect(File.exist?(File.join(lib, "megamode", "local"))).to be(false)
      expect(File.exist?(File.join(lib, "megamode", "build"))).to be(false)
    end

    it "comments out the Gemfile's ruby line and adds megamode to the Gemfile and its lock" do
      gemfile = File.read(File.join(@out, "app", "Gemfile"))
      lock = File.read(File.join(@out, "app", "Gemfile.lock"))

      expect(gemfile).to include(%(# megamode: ruby "3.3.0"\n))
      expect(gemfile).to include(%(gem "megamode", "#{Megamode::VERSION}", require: false))
      expect(lock).to include("    megamode (#{Megamode::VERSION})\n", "  megamode (= #{Megamode::VERSION})\n")
      expect(File.read(File.join(@out, "app", ".bundle", "config"))).to include("BUNDLE_WITHOUT")
    end

    it "leaves out version control, old logs and pid files, and keeps modes, links and directories" do
      copy = File.join(@out, "app")

      expect(File.exist?(File.join(copy, ".git"))).to be(false)
      expect(File.exist?(File.join(copy, "log", "development.log"))).to be(false)
      expect(File.exist?(File.join(copy, "tmp", "pids", "server.pid"))).to be(false)
      expect(File.file?(File.join(copy, "tmp", "pids", ".keep"))).to be(true)
      expect(File.stat(File.join(copy, "bin", "run")).mode & 0o777).to eq(0o755)
      expect(File.readlink(File.join(copy, "run"))).to eq("bin/run")
    end

    it "leaves out vendor/cache's .gem files, saying so with their size, and keeps a cached checkout" do
      cache = File.join(@out, "app", "vendor", "cache")

      expect(Dir.children(cache)).to eq(["shared-0e5b6f1c9a2d"])
      expect(File.file?(File.join(cache, "shared-0e5b6f1c9a2d", ".bundlecache"))).to be(true)
      expect(@log).to include("megamode build: left out vendor/cache's 2 .gem files (0.2 MB): Bundler installs " \
                              "from them and never reads them at runtime, and the package's gems are in its bundle; " \
                              "kept the rest of vendor/cache (shared-0e5b6f1c9a2d)")
      expect(File.size(File.join(@app, "vendor", "cache", "rack-2.2.4.gem"))).to eq(150_000), "the app keeps them"
    end

    it "packs the app's gems into the bundle, laid out for Bundler" do
      manifest = JSON.parse(File.read(File.join(@out, "megamode", "bundle.json")))
      listing, = Open3.capture2("tar", "-I", "zstd", "-tf", File.join(@out, "megamode", "bundle.tar.zst"))
      abi = RbConfig::CONFIG["ruby_version"]

      expect(manifest["files"]).to be > 10
      expect(listing).to include("ruby/#{abi}/specifications/puma-", "ruby/#{abi}/bin/puma",
                                 "ruby/#{abi}/gems/megamode-#{Megamode::VERSION}/lib/megamode/rack/prefix.rb")
    end

    it "records its target; on a Ruby Lambda does not offer, makes a local package, saying so at build and at boot" do
      expected, warning = Megamode::Build::Target.resolve
      target = JSON.parse(File.read(File.join(@out, "megamode", "target.json")))
      template = File.read(File.join(@dir, "build", "template.yaml"))

      # What the gems need at boot depends on how this machine installed them (spec/packager/fallbacks_spec.rb).
      expect(target).to eq(expected.to_h(version: Megamode::VERSION, environment: target["environment"]))
      expect(target["environment"]).to be_a(Hash)
      expect(target["ruby_abi"]).to eq(RbConfig::CONFIG["ruby_version"])
      expect(template).to include("Runtime: #{expected.runtime}\n", "Architectures: [#{expected.arch}]\n")
      expect(template).not_to include("SecretKeyBase"), "a Rack app's template asks for no Rails secret"
      next unless expected.local?

      expect(@log).to include("megamode build: warning: #{warning}\n",
                              "megamode build: warning: this package is for local runs only: as it is, it could not run on Lambda's")
      expect(File.read(File.join(@out, ".megamode-package"))).to include("For local runs only (Ruby #{expected.ruby}, #{expected.arch})")
      expect(File.read(File.join(@out, "handler.rb"))).to include('warn "megamode: this package was built for local runs only')
      expect(template).to include("# A package for local runs only (built with Ruby #{RUBY_VERSION}), not verified")
    end

    it "writes the zip and a SAM template beside the package" do
      zip = "#{@out}.zip"
      listing, = Open3.capture2("unzip", "-Z1", zip)
      template = File.read(File.join(@dir, "build", "template.yaml"))

      expect(listing.lines.map(&:chomp)).to include("handler.rb", "app/config.ru", "megamode/bundle.tar.zst")
      expect(listing.lines.first.chomp).to eq(".megamode-package"), "the marker comes first, to tell megamode's zip"
      expect(template).to start_with("# Written by megamode build #{Megamode::VERSION} (sha256 ")
      expect(template).to include("CodeUri: megamode.zip", "Handler: handler.handler", "Runtime: ruby3.",
                                  "FunctionUrlConfig:", "Type: HttpApi", "EphemeralStorage:")
      expect(@log).to match(%r{zip +\d+\.\d MB  \(direct upload limit 50\.0 MB\)})
      expect(@log).to match(%r{/tmp at boot +\d+\.\d MB})
    end

    it "leaves the app byte-identical, and a second build replaces the first with the same bytes" do
      expect(Megamode::Build::Tree.digest(@app)).to eq(@digest_before)

      first_zip = File.binread("#{@out}.zip")
      first_tree = Megamode::Build::Tree.digest(@out)
      status, log = PackageBuild.build(@app, @out)
      expect(status).to be_success, log
      expect(Megamode::Build::Tree.digest(@out)).to eq(first_tree)
      expect(File.binread("#{@out}.zip")).to eq(first_zip)
      expect(Dir.children(File.join(@dir, "build")).sort).to eq(%w[megamode megamode.zip template.yaml])
    end

    it "runs from its read-only package, with its gems from the bundle" do
      results, log = PackageBuild.invoke(@out, [PackageBuild.staged_event("/whoami")], tmp: @dir)

      expect(results.first["statusCode"]).to eq(200)
      expect(JSON.parse(results.first["body"])).to include("pid")
      expect(log).to include("megamode: unpacked the gem bundle into", "START RequestId:", "REPORT RequestId:")
      expect(log).to include("megamode: this package was built for local runs only") if Megamode::Build::Target.resolve.first.local?
      expect(log).to match(%r{bundle-\h+/ruby/[\d.]+/|Rack: }), "the server ran"
    end

    it "boots its server to ready during init for provisioned concurrency, with both handlers" do
      event = File.join(@dir, "prewarm.json")
      File.write(event, JSON.generate("_prewarm" => true))
      %w[handler native].each do |mode|
        env = { "MEGAMODE_TMP" => File.join(@dir, "lambda-tmp"), "AWS_LAMBDA_INITIALIZATION_TYPE" => "provisioned-concurrency" }
        out, log, status = Open3.capture3(env, RbConfig.ruby, PackageBuild::EXE, "invoke", "--package", @out,
                                          "--mode", mode, "--event", event)

        expect(status).to be_success, log
        expect(JSON.parse(out)).to include("boot_ms")
        lines = log.lines
        start = lines.index { |l| l.start_with?("START RequestId:") }
        booted = lines.index { |l| l.include?("Use Ctrl-C to stop") }
        expect(start).not_to be_nil, log
        expect(booted).not_to be_nil, log
        # The init waited for the server, so puma's last boot line came before the first event.
        expect(booted).to be < start, "#{mode}:\n#{log}"
      end
    end
  end

  describe "a Sinatra app" do
    before(:all) do
      @dir = scratch
      @app = PackageBuild.app("sinatra_build", @dir, ruby_line: %(ruby file: ".ruby-version"))
      File.write(File.join(@app, ".ruby-version"), "3.3.0\n")
      # A vendor/cache of .gem files alone (not even gems: nothing at runtime reads them), left out whole.
      FileUtils.mkdir_p(File.join(@app, "vendor", "cache"))
      File.binwrite(File.join(@app, "vendor", "cache", "sinatra-3.0.5.gem"), "s" * 2048)
      @out = File.join(@dir, "out", "shop")
      @status, @log = PackageBuild.build(@app, @out)
    end

    after(:all) { FileUtils.rm_rf(@dir) }

    it "renders pages whose links, form and redirect carry the stage prefix" do
      expect(@status).to be_success, @log
      expect(@log).to match(/\(a Rack app \(Sinatra [\d.]+\)\)/)
      events = [
        PackageBuild.staged_event("/"),
        PackageBuild.staged_event("/items/new"),
        PackageBuild.staged_event("/items", method: "POST", body: "name=lamp", form: true),
        PackageBuild.staged_event("/items/lamp")
      ]
      (index, new_item, created, shown), = PackageBuild.invoke(@out, events, tmp: @dir)

      expect(body_of(index)).to include('href="/dev/items/new"', 'src="/dev/pixel.png"')
      expect(body_of(new_item)).to include('action="/dev/items"')
      expect(created["statusCode"]).to eq(303)
      expect(created["headers"]["location"]).to eq("https://#{PackageBuild::STAGE_HOST}/dev/items/lamp")
      expect(body_of(shown)).to start_with("Item lamp")
    end

    it "leaves out a vendor/cache of .gem files alone, directory and all, saying so" do
      expect(@status).to be_success, @log
      expect(@log).to include("megamode build: left out vendor/cache's 1 .gem file (2.0 KB): Bundler installs from " \
                              "them and never reads them at runtime, and the package's gems are in its bundle\n")
      expect(File.exist?(File.join(@out, "app", "vendor", "cache"))).to be(false)
    end
  end

  describe "a Rails app" do
    before(:all) do
      @dir = scratch
      @app = File.join(@dir, "blog")
      FileUtils.cp_r(RailsApp.path, @app)
      PackageBuild.add_ruby_line(@app, "ruby '~> 3.3'")
      # A migration the package brings and its database has not run yet, for the command event. Its
      # version is a second after now: Rails 7.2 refuses versions more than a day ahead.
      version = (Time.now.utc + 1).strftime("%Y%m%d%H%M%S")
      File.write(File.join(@app, "db", "migrate", "#{version}_create_widgets.rb"), <<~RUBY)
        class CreateWidgets < ActiveRecord::Migration[#{RailsApp.rails_version[/\A\d+\.\d+/]}]
          def change
            create_table(:widgets) { |t| t.string :name }
          end
        end
      RUBY
      add_secrets_and_modes(@app)
      @out = File.join(@dir, "out", "blog")
      @status, @log = PackageBuild.build(@app, @out)
      # As /var/task is: reachable by the user the function runs as.
      File.chmod(0o755, @dir)
    end

    after(:all) { FileUtils.rm_rf(@dir) }

    def secrets = %w[.env .env.production config/credentials/production.key config/master.key]

    # What a developer's Rails app has: its master key as Rails writes it (0600), a per-environment
    # key, .env files and their template; a file and a directory the app needs, readable by its
    # owner only.
    def add_secrets_and_modes(app)
      FileUtils.mkdir_p(File.join(app, "config", "credentials"))
      # The app's own master key stays as `rails new` wrote it.
      secrets.each { |path| File.write(File.join(app, path), "secret-#{path}\n") unless File.exist?(File.join(app, path)) }
      File.chmod(0o600, File.join(app, "config", "master.key"))
      File.chmod(0o600, File.join(app, "config", "credentials", "production.key"))
      File.write(File.join(app, ".env.example"), "SMTP_PASSWORD=\n")
      File.chmod(0o600, File.join(app, "config", "database.yml"))
      File.chmod(0o700, File.join(app, "app", "views", "posts"))
      File.chmod(0o700, File.join(app, "bin", "rails"))
    end

    it "leaves the app's secrets out, saying once which and how the app gets its key on Lambda" do
      expect(@status).to be_success, @log
      listing, = Open3.capture2("unzip", "-Z1", "#{@out}.zip")

      secrets.each do |path|
        expect(File.exist?(File.join(@out, "app", path))).to be(false), "#{path} is not in the package"
        expect(listing.lines.map(&:chomp)).not_to include("app/#{path}")
      end
      expect(File.read(File.join(@out, "app", ".env.example"))).to eq("SMTP_PASSWORD=\n"), "a template is no secret"
      expect(@log.scan("megamode build: left out").size).to eq(1), @log
      expect(@log).to include("megamode build: left out #{secrets.join(", ")}: secrets do not go into a package",
                              "give the app its key as RAILS_MASTER_KEY (the template's RailsMasterKey parameter",
                              "what .env, .env.production hold as the function's environment variables",
                              "--keep-secret PATH")
    end

    it "makes every entry readable by any user, in the package and in its zip, keeping executables executable" do
      modes = {}
      files = 0
      tree.walk(@out) do |path, stat|
        files += 1 unless stat.directory?
        modes[path.delete_prefix("#{@out}/")] = stat.mode & 0o7777 unless stat.symlink?
      end

      expect(File.stat(@out).mode & 0o7777).to eq(0o755)
      expect(modes.values.uniq - [0o644, 0o755]).to eq([]), modes.reject { |_, m| [0o644, 0o755].include?(m) }.inspect
      expect(modes).to include("app/config/database.yml" => 0o644, "app/app/views/posts" => 0o755,
                               "app/bin/rails" => 0o755, "megamode/runtime" => 0o755, "handler.rb" => 0o644)
      zipinfo, status = Open3.capture2("zipinfo", "#{@out}.zip")
      expect(status).to be_success
      entries = zipinfo.lines.grep(/\A[-dl][rwx-]{9} /)
      expect(entries.size).to eq(files), "the zip has an entry for every file and link"
      expect(entries.map { |line| line[0, 10] }.uniq - %w[-rw-r--r-- -rwxr-xr-x lrwxrwxrwx]).to eq([])
      expect(entries.grep(%r{ app/bin/rails\n})).to all(start_with("-rwxr-xr-x"))
    end

    it "boots and serves as a user who owns nothing in the package (as Lambda runs it)" do
      skip "running the package as another user needs root" unless Process.euid.zero?

      (index,), log = PackageBuild.invoke_as_nobody(@out, [PackageBuild.staged_event("/posts")], tmp: @dir,
                                                    env: { "SECRET_KEY_BASE" => "s" * 64 })

      expect(index["statusCode"]).to eq(200), "#{index.inspect}\n#{log}"
      expect(body_of(index)).to include('href="/dev/posts/new"')
    end

    it "detects Rails and injects the adapter and the initializer" do
      expect(@status).to be_success, @log
      expect(@log).to match(/\(a Rails app \(Rails #{Regexp.escape(RailsApp.rails_version)}[\d.]*\)\)/)
      expect(File.read(File.join(@out, "app", "Gemfile")))
        .to include("# megamode: ruby '~> 3.3'", %(require: "megamode/rails"))
      initializer = File.read(File.join(@out, "app", "config", "initializers", "megamode.rb"))
      expect(initializer).to include('if ENV["MEGAMODE"] == "1"', "Megamode::Rails.configure(Rails.application)")
      expect(File.exist?(File.join(@app, "config", "initializers", "megamode.rb"))).to be(false)
    end

    it "makes the template ask for SECRET_KEY_BASE, with no empty default that would fail every request" do
      template = File.read(File.join(@dir, "out", "template.yaml"))
      parameter = template[/^  SecretKeyBase:\n(    .*\n)+/]

      expect(parameter).to include("Type: String", "NoEcho: true", "MinLength: 32")
      expect(parameter).not_to include("Default")
      expect(template).to include("SECRET_KEY_BASE: !Ref SecretKeyBase")
    end

    it "makes the template take the master key the package leaves out, as an optional RAILS_MASTER_KEY" do
      template = File.read(File.join(@dir, "out", "template.yaml"))
      parameter = template[/^  RailsMasterKey:\n(    .*\n)+/]

      expect(parameter).to include("Type: String", "NoEcho: true", 'Default: ""')
      expect(template).to include(%(HasRailsMasterKey: !Not [!Equals [!Ref RailsMasterKey, ""]]),
                                  "RAILS_MASTER_KEY: !If [HasRailsMasterKey, !Ref RailsMasterKey, !Ref AWS::NoValue]")
    end

    it "carries a distribution's sqlite3 extension kept outside the gem (Debian 12's ruby-sqlite3) in the gem" do
      sqlite = Gem::Specification.find_all_by_name("sqlite3").first
      skip "sqlite3 here is a gem with its extension" unless sqlite && !File.directory?(sqlite.extension_dir) &&
                                                          !File.directory?(sqlite.full_gem_path)

      expect(@log).not_to match(/the gem sqlite3-[\d.]+: has a native extension/)
      listing, status = Open3.capture2("tar", "-I", "zstd", "-tf", File.join(@out, "megamode", "bundle.tar.zst"))
      expect(status).to be_success
      expect(listing.lines.map(&:chomp)).to include("ruby/#{RbConfig::CONFIG["ruby_version"]}/gems/#{sqlite.full_name}/lib/sqlite3/sqlite3_native.so")
    end

    it "serves pages whose links and assets carry the stage prefix, logging to the Lambda log" do
      events = [PackageBuild.staged_event("/posts"), PackageBuild.staged_event("/posts/new")]
      (index, new_post), log = PackageBuild.invoke(@out, events, tmp: @dir,
                                                          env: { "SECRET_KEY_BASE" => "s" * 64 })

      expect(index["statusCode"]).to eq(200), index.inspect
      expect(body_of(index)).to include('href="/dev/posts/new"')
      expect(body_of(index)).to match(%r{href="https://#{PackageBuild::STAGE_HOST}/dev/[^"]*\.css})
      expect(body_of(new_post)).to include('action="/dev/posts"')
      expect(log).to include('Rails: ', 'Started GET "/dev/posts"')
    end

    it "runs bin/rails db:migrate from the package, with the server's gems, in the app's copy the server uses" do
      migrate = { "megamode" => { "command" => "bin/rails db:migrate" } }
      tables = { "megamode" => { "command" => %(bin/rails runner "puts ActiveRecord::Base.connection.tables.sort") } }
      # The first command runs before any server, the second beside the running one.
      events = [migrate, PackageBuild.staged_event("/posts"), tables]
      env = { "SECRET_KEY_BASE" => "s" * 64, "MEGAMODE_COMMANDS_ALLOWED" => "bin/rails (db:migrate|runner .*)" }
      (migrated, index, listed), log = PackageBuild.invoke(@out, events, tmp: @dir, env: env)

      expect(migrated).to include("status" => 0, "timed_out" => false), migrated["output"]
      expect(migrated["output"]).to include("CreateWidgets: migrated")
      expect(log).to include(%(running the command event "bin/rails db:migrate" in #{File.join(@dir, "lambda-tmp", "app-")}))
      expect(index["statusCode"]).to eq(200), index.inspect
      expect(listed).to include("status" => 0), listed["output"]
      expect(listed["output"].lines.map(&:chomp)).to include("posts", "widgets")
    end
  end

  describe "errors" do
    around do |example|
      @dir = scratch
      example.run
    ensure
      FileUtils.rm_rf(@dir)
    end

    def expect_failure(app, out, message, *args)
      status, log = PackageBuild.build(app, out, *args)
      expect(status.exitstatus).to eq(1), log
      expect(log).to match(message)
      expect(Dir.glob("#{out}*")).to eq([]), "nothing that looks like a package is left"
      expect(Dir.glob(File.join(File.dirname(out), ".megamode-build-*"))).to eq([]), "nor the work directory"
    end

    it "refuses --keep-secret for a file that is not one of the app's secrets, naming those it has" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      File.write(File.join(app, ".env"), "TOKEN=1\n")
      out = File.join(@dir, "out", "shop")

      expect_failure(app, out, Regexp.new(Regexp.escape("--keep-secret master.key: master.key is not one of the app's " \
                                                        "secret files, which a package leaves out (.env): give one")),
                     "--keep-secret", "master.key")
      status, log = PackageBuild.build(app, out, "--keep-secret", "config.ru")
      expect([status.exitstatus, log]).to match([1, /--keep-secret config.ru: config.ru is not one of the app's secret/])
    end

    it "says what is missing when the app has no config.ru or no Gemfile" do
      app = File.join(@dir, "empty")
      FileUtils.mkdir_p(app)
      expect_failure(app, File.join(@dir, "out"), /has no config\.ru or Gemfile or Gemfile\.lock/)
    end

    it "refuses an output directory inside the app, except under its build/" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      expect_failure(app, File.join(app, "package"), /inside the app, so the package would contain itself/)
    end

    it "refuses an output directory it cannot create" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      File.write(File.join(@dir, "file"), "")
      expect_failure(app, File.join(@dir, "file", "out"), /cannot create the output directory/)
    end

    it "names the missing gems' remedy when the lock holds a gem this machine lacks" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      File.write(File.join(app, "Gemfile"), File.read(File.join(app, "Gemfile")) + %(gem "not-installed-anywhere"\n))
      lock = File.read(File.join(app, "Gemfile.lock"))
      lock.sub!("  specs:\n", "  specs:\n    not-installed-anywhere (1.0.0)\n")
      lock.sub!("DEPENDENCIES\n", "DEPENDENCIES\n  not-installed-anywhere\n")
      File.write(File.join(app, "Gemfile.lock"), lock)
      expect_failure(app, File.join(@dir, "out"), /gems cannot be found on this machine.*not-installed-anywhere.*bundle install/m)
    end

    it "names the line of a Gemfile it cannot understand, and changes nothing" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      File.write(File.join(app, "Gemfile"), File.read(File.join(app, "Gemfile")) + "gem 'puma', require:\n end\n")
      before = Megamode::Build::Tree.digest(app)
      expect_failure(app, File.join(@dir, "out"), /Gemfile cannot be understood \(line \d+/)
      expect(Megamode::Build::Tree.digest(app)).to eq(before)
    end

    it "refuses `--out ..` from inside the app, leaving the parent, its .git and the app untouched" do
      parent = File.join(@dir, "projects")
      FileUtils.mkdir_p(File.join(parent, ".git"))
      File.write(File.join(parent, ".git", "HEAD"), "ref: refs/heads/main\n")
      File.write(File.join(parent, "notes.txt"), "mine\n")
      app = PackageBuild.app("rack_hello", parent, ruby_line: nil)
      FileUtils.mkdir_p(File.join(app, ".git"))
      before = tree.digest(@dir)

      status, log = PackageBuild.build(".", "..", chdir: app)
      expect(status.exitstatus).to eq(1), log
      expect(log).to include("megamode build: the output directory #{parent} contains the app (#{app})")
      expect(tree.digest(@dir)).to eq(before)
    end

    it "refuses to replace a directory, a zip or a template.yaml it did not write, and writes nothing" do
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      deploy = File.join(@dir, "deploy")
      out = File.join(deploy, "shop")
      {
        File.join(out, "notes.txt") => "is not empty and is not a package megamode made",
        "#{out}.zip" => "#{out}.zip is not a zip megamode made",
        File.join(deploy, "template.yaml") => "#{deploy}/template.yaml was not written by megamode"
      }.each do |file, message|
        FileUtils.mkdir_p(File.dirname(file))
        File.write(file, "mine\n")
        before = tree.digest(@dir)

        status, log = PackageBuild.build(app, out)
        expect(status.exitstatus).to eq(1), log
        expect(log).to include(message)
        expect(tree.digest(@dir)).to eq(before)
        FileUtils.rm_rf(deploy)
      end
    end
  end

  describe "targets" do
    around do |example|
      @dir = scratch
      @app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      example.run
    ensure
      FileUtils.rm_rf(@dir)
    end

    # A Lambda runtime whose Ruby is not this one.
    let(:other_runtime) { Megamode::Build::Target::RUNTIMES.find { |_, ruby| ruby != RUBY_VERSION[/\A\d+\.\d+/] }.first }

    it "refuses --runtime for a Ruby other than the build's at once, before gathering anything, saying what to do" do
      out = File.join(@dir, "out", "shop")
      status, log = PackageBuild.build(@app, out, "--runtime", other_runtime)

      expect(status.exitstatus).to eq(1), log
      expect(log).to include("megamode build: target: Lambda's #{other_runtime} (#{Megamode::PackageTarget.lambda_arch})",
                             "megamode build: the package could not run on Lambda's #{other_runtime}",
                             "  Ruby: this build runs Ruby #{RUBY_VERSION}, and #{other_runtime} runs Ruby ",
                             "What to do:\n", "public.ecr.aws/sam/build-#{other_runtime}", "megamode build --local")
      expect(log).not_to include("copying the app", "resolving the app's gems", "packing")
      expect(Dir.glob("#{out}*") + Dir.glob(File.join(@dir, "out", "{.megamode-build-*,template.yaml}"))).to eq([])
    end

    it "refuses a Lambda target on a distribution's Ruby of that version, naming its libruby and what else could not run" do
      runtime = "ruby#{RUBY_VERSION[/\A\d+\.\d+/]}"
      libruby = RbConfig::CONFIG["LIBRUBY_SO"].to_s
      unless Megamode::Build::Target::RUNTIMES.key?(runtime) && libruby.match?(/\Alibruby-\d/)
        skip "Ruby #{RUBY_VERSION} here is not a distribution's Ruby of a version Lambda runs (the Debian 13 root's is)"
      end
      out = File.join(@dir, "out", "shop")
      status, log = PackageBuild.build(@app, out, "--runtime", runtime)

      expect(status.exitstatus).to eq(1), log
      expect(log).to include("megamode build: the package could not run on Lambda's #{runtime}",
                             "is linked against a distribution's Ruby library (#{libruby[/\Alibruby-[\d.]+\.so\.\d+\.\d+/]}")
      expect(log).to match(/needs glibc 2\.\d+ \(symbol version GLIBC_2\.\d+\), and Amazon Linux 2023 has glibc 2\.34/)
      expect(Dir.glob("#{out}*")).to eq([])
    end

    it "packages for local runs with --local, for the runtime and architecture given, reporting what it finds" do
      out = File.join(@dir, "out", "shop")
      status, log = PackageBuild.build(@app, out, "--local", "--runtime", "ruby3.4", "--arch", "arm64")
      template = File.read(File.join(@dir, "out", "template.yaml"))

      expect(status).to be_success, log
      expect(JSON.parse(File.read(File.join(out, "megamode", "target.json"))))
        .to include("runtime" => "ruby3.4", "arch" => "arm64", "ruby" => "3.4", "local" => true)
      expect(template).to include("Runtime: ruby3.4\n", "Architectures: [arm64]\n", "A package for local runs only")
      expect(log).to include("megamode build: target: local (Ruby 3.4, arm64): a package for local runs only")
      expect(log).to match(%r{^megamode build:   megamode/lib/megamode/megamode.so: is for x86_64 .*, and ruby3.4 runs on aarch64$})
    end

    it "verifies a Lambda target's package, shipping in lib/ a library its base image lacks" do
      host = Megamode::Build::HostLibraries
      soname = %w[libyaml-0.so.2 libxslt.so.1].find { |s| host.find(s, host.dirs, machine: 62) }
      skip "needs an x86_64 host with libyaml or libxslt" unless soname && Megamode::PackageTarget.lambda_arch == "x86_64"
      native = Megamode::Build::Elf.read(Megamode::NativeLibrary.compiled)
      if (needs = native.glibc_required) && Megamode::Build::Target.new(runtime: "ruby3.3", arch: "x86_64").glibc_too_old_for?(needs)
        skip "megamode's extension, compiled on this host, needs glibc #{needs}: newer than Lambda's, so no Lambda target can pass here"
      end
      # A Lambda target for this very Ruby (which Lambda may not offer: the build cannot tell), and an
      # app with no native gem of this machine's distribution, but a file that needs `soname`.
      lambda_target = Megamode::Build::Target.new(runtime: "ruby3.3", arch: "x86_64", ruby: RUBY_VERSION[/\A\d+\.\d+/])
      allow(Megamode::Build::Target).to receive(:resolve).and_return([lambda_target, nil])
      File.write(File.join(@app, "Gemfile"), %(source "https://rubygems.org"\n\ngem "rack"\n))
      PackageBuild.lock!(@app)
      TinyElf.write(File.join(@app, "vendor", "tool"), type: 2, needed: ["libc.so.6", soname],
                                                       versions: { "libc.so.6" => ["GLIBC_2.17"] })
      out = File.join(@dir, "out", "shop")
      log = StringIO.new
      # An app with rack alone has no server to boot: the boot check would refuse it.
      Megamode::Build.new(app: @app, out: out, log: log, boot_check: false).run

      expect(log.string).to include("megamode build: target: Lambda's ruby3.3 (x86_64)\n",
                                    "megamode build: verified for ruby3.3 (x86_64): 2 native files can run there\n",
                                    "megamode build: shipped in lib/ #{soname} (from ")
      expect(Megamode::Build::Elf.read(File.join(out, "lib", soname)).machine).to eq(62)
      expect(Open3.capture2("unzip", "-Z1", "#{out}.zip").first.lines).to include("lib/#{soname}\n")
      expect(JSON.parse(File.read(File.join(out, "megamode", "target.json")))).to include("runtime" => "ruby3.3", "local" => false)
      expect(File.read(File.join(out, "handler.rb"))).not_to include("for local runs only")
    end

    it "refuses a runtime or architecture Lambda does not have before doing anything" do
      status, log = PackageBuild.build(@app, File.join(@dir, "out", "shop"), "--runtime", "ruby3.2")
      expect(status.exitstatus).to eq(1)
      expect(log).to eq("megamode build: \"ruby3.2\" is not a Lambda Ruby runtime megamode builds for: give one of " \
                        "ruby3.3, ruby3.4, ruby4.0 (ruby3.2 functions can no longer be created)\n")

      status, log = PackageBuild.build(@app, File.join(@dir, "out", "shop"), "--arch", "amd64")
      expect([status.exitstatus, log]).to eq([1, "megamode build: \"amd64\" is not a Lambda architecture: give x86_64 or arm64\n"])
      expect(Dir.exist?(File.join(@dir, "out"))).to be(false)
    end

    it "is a rake task an app's Rakefile adds with one line, taking the same choices" do
      File.write(File.join(@app, "Rakefile"), %(require "megamode/tasks"\n))
      %w[.env .env.local].each { |name| File.write(File.join(@app, name), "TOKEN=#{name}\n") }
      env = { "RUBYLIB" => File.join(SpecHelpers::ROOT, "lib"), "OUT" => File.join(@dir, "pkg") }
      log, status = Open3.capture2e(env.merge("LOCAL" => "1", "ARCH" => "x86_64", "KEEP_SECRETS" => ".env.local"),
                                    "rake", "megamode:build", chdir: @app)

      expect(status).to be_success, log
      expect(File.file?(File.join(@dir, "pkg", "handler.rb"))).to be(true)
      expect(log).to include("building #{@app} (a plain Rack app)", "target: local (Ruby #{RUBY_VERSION[/\A\d+\.\d+/]}, x86_64)")
      expect(File.read(File.join(@dir, "pkg", "app", ".env.local"))).to eq("TOKEN=.env.local\n"), "KEEP_SECRETS keeps it"
      expect(File.exist?(File.join(@dir, "pkg", "app", ".env"))).to be(false)
      expect(log).to include("megamode build: left out .env: secrets do not go into a package",
                             "megamode build: warning: packaging the secret .env.local, as --keep-secret asks")
      expect(log).not_to include("RAILS_MASTER_KEY"), "a Rack app without a key is not told about one"

      log, status = Open3.capture2e(env.merge("RUNTIME" => "ruby9.9"), "rake", "megamode:build", chdir: @app)
      expect(status).not_to be_success
      expect(log).to include("megamode build: \"ruby9.9\" is not a Lambda Ruby runtime")
    end
  end
end
