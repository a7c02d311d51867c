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

      expect(files).to eq(%w[megamode.rb megamode/config.rb megamode/errors.rb megamode/megamode.so megamode/native.rb
                             megamode/rack/prefix.rb megamode/rails.rb megamode/runtime.rb megamode/version.rb])
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

    it "packs the app's gems into the bundle, laid out for Bundler" do
      manifest = JSON.parse(File.read(File.join(@out, "megamode", "bundle.json")))
      listing, = Open3.capture2("tar", "-I", "zstd", "-tf", File.join(@out, "megamode", "bundle.tar.zst"))
      abi = RbConfig::CONFIG["ruby_version"]

      expect(manifest["files"]).to be > 10
      expect(listing).to include("ruby/#{abi}/specifications/puma-", "ruby/#{abi}/bin/puma",
                                 "ruby/#{abi}/gems/megamode-#{Megamode::VERSION}/lib/megamode/rack/prefix.rb")
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
      expect(log).to match(%r{bundle-\h+/ruby/[\d.]+/|Rack: }), "the server ran"
    end
  end

  describe "a Sinatra app" do
    before(:all) do
      @dir = scratch
      @app = PackageBuild.app("sinatra_build", @dir, ruby_line: %(ruby file: ".ruby-version"))
      File.write(File.join(@app, ".ruby-version"), "3.3.0\n")
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
  end

  describe "a Rails app" do
    before(:all) do
      @dir = scratch
      @app = File.join(@dir, "blog")
      FileUtils.cp_r(RailsApp.path, @app)
      PackageBuild.add_ruby_line(@app, "ruby '~> 3.3'")
      # A migration the package brings and its database has not run yet, for the command event.
      File.write(File.join(@app, "db", "migrate", "29990101000000_create_widgets.rb"), <<~RUBY)
        class CreateWidgets < ActiveRecord::Migration[#{RailsApp.rails_version[/\A\d+\.\d+/]}]
          def change
            create_table(:widgets) { |t| t.string :name }
          end
        end
      RUBY
      @out = File.join(@dir, "out", "blog")
      @status, @log = PackageBuild.build(@app, @out)
    end

    after(:all) { FileUtils.rm_rf(@dir) }

    it "detects Rails and injects the adapter and the initializer" do
      expect(@status).to be_success, @log
      expect(@log).to match(/\(a Rails app \(Rails #{Regexp.escape(RailsApp.rails_version)}[\d.]*\)\)/)
      expect(File.read(File.join(@out, "app", "Gemfile")))
        .to include("# megamode: ruby '~> 3.3'", %(require: "megamode/rails"))
      initializer = File.read(File.join(@out, "app", "config", "initializers", "megamode.rb"))
      expect(initializer).to include('if ENV["MEGAMODE"] == "1"', "Megamode::Rails.configure(Rails.application)")
      expect(File.exist?(File.join(@app, "config", "initializers", "megamode.rb"))).to be(false)
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

    it "runs bin/rails db:migrate from the package, with the server's gems, in the staged copy the server uses" do
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

    def expect_failure(app, out, message)
      status, log = PackageBuild.build(app, out)
      expect(status.exitstatus).to eq(1), log
      expect(log).to match(message)
      expect(Dir.glob("#{out}*")).to eq([]), "nothing that looks like a package is left"
      expect(Dir.glob(File.join(File.dirname(out), ".megamode-build-*"))).to eq([]), "nor the staging directory"
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

  it "is a rake task an app's Rakefile adds with one line" do
    dir = scratch
    app = PackageBuild.app("rack_hello", dir, ruby_line: nil)
    File.write(File.join(app, "Rakefile"), %(require "megamode/tasks"\n))
    lib = File.join(SpecHelpers::ROOT, "lib")
    log, status = Open3.capture2e({ "RUBYLIB" => lib, "OUT" => File.join(dir, "pkg") }, "rake", "megamode:build",
                                  chdir: app)

    expect(status).to be_success, log
    expect(File.file?(File.join(dir, "pkg", "handler.rb"))).to be(true)
    expect(log).to include("building #{app} (a plain Rack app)")
  ensure
    FileUtils.rm_rf(dir)
  end
end
