# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

# `megamode build` boots every package it makes once, in production, as Lambda boots it, and
# refuses one that does not boot, leading with the app's own failure line (as the core reads it, the
# line Lambda's error would lead with); for Rails, it refuses an
# app without its production SQLite database or its precompiled assets, naming the commands.
# `--no-boot-check` (NO_BOOT_CHECK=1) packages it anyway. Real apps: copies of the Rails scaffold
# app (RailsApp) and of the plain Rack fixture, built with the real `megamode build`.
RSpec.describe "megamode build's boot check" do
  include PackageBuild

  before(:all) { @dir = PackageBuild.scratch("megamode-build-boot-spec-") }
  after(:all) { FileUtils.rm_rf(@dir) }

  # A copy of the Rails scaffold app, as RailsApp set it up (its production database migrated).
  def rails_app(name)
    app = File.join(@dir, name)
    FileUtils.cp_r(RailsApp.path, app)
    app
  end

  def out_for(app)
    File.join(@dir, "out-#{File.basename(app)}", File.basename(app))
  end

  # Adds `line` to the app's routes, before their closing `end`; the line's number.
  def add_route(app, line)
    routes = File.join(app, "config", "routes.rb")
    lines = File.readlines(routes)
    last_end = lines.rindex { |l| l.start_with?("end") }
    lines.insert(last_end, "  #{line}\n")
    File.write(routes, lines.join)
    last_end + 1
  end

  def expect_no_package(out)
    expect(Dir.glob("#{out}*")).to eq([])
    expect(File.exist?(File.join(File.dirname(out), "template.yaml"))).to be(false)
  end

  it "refuses a Rails app with a typo in its routes, leading with the syntax error that names it" do
    app = rails_app("typo")
    line = add_route(app, %(get "/typo" => "posts#index", to:: 1))
    out = out_for(app)
    status, log = PackageBuild.build(app, out)

    expect(status.exitstatus).to eq(1), log
    error = log[/^megamode build: SyntaxError.*/m]
    expect(error).not_to be_nil, log
    # Ruby's parser names it on the first line; Prism (Ruby 3.4) says "syntax errors found" there and
    # names it on the lines it quotes.
    expect(error.lines.first).to match(
      /\Amegamode build: SyntaxError: config\/routes\.rb:#{line}: syntax error(, unexpected integer literal|s? found)$/
    )
    expect(error).to match(/unexpected integer|^  > #{line} \| /), "the error quotes the typo's line"
    expect(error).to include("The package does not boot in production (RAILS_ENV=production",
                             "Fix it and build again, or package it anyway with --no-boot-check " \
                             "(NO_BOOT_CHECK=1 for the rake task).")
    expect(log).to include("megamode build: booting the package in production, as Lambda boots it, to check that it boots\n")
    expect_no_package(out)
  end

  it "refuses a Rails app whose initializer reads a variable that is not set, saying where to set it; " \
     "--no-boot-check packages it with a warning, and the variable set for the build lets it boot" do
    app = rails_app("unset-variable")
    File.write(File.join(app, "config", "initializers", "payments.rb"), %(PAYMENTS_KEY = ENV.fetch("PAYMENTS_API_KEY")\n))
    out = out_for(app)
    unset = { "PAYMENTS_API_KEY" => nil }
    status, log = PackageBuild.build(app, out, env: unset)

    expect(status.exitstatus).to eq(1), log
    # The exception, and the initializer that raised it.
    expect(log).to include(%(megamode build: KeyError: key not found: "PAYMENTS_API_KEY" (config/initializers/payments.rb:1)\n))
    expect(log).to include("PAYMENTS_API_KEY is not set, and the app reads it while booting (ENV.fetch): set it for " \
                           "the build, which boots the app with this shell's environment (PAYMENTS_API_KEY=... " \
                           "megamode build), and for the function on Lambda (in template.yaml, under the function's " \
                           "Environment: Variables)")
    expect_no_package(out)

    status, log = PackageBuild.build(app, out, "--no-boot-check", env: unset)
    expect(status).to be_success, log
    expect(log).to include(%(megamode build: warning: KeyError: key not found: "PAYMENTS_API_KEY" (config/initializers/payments.rb:1)\n),
                           "Packaged all the same, as --no-boot-check asks.")
    expect(File.file?(File.join(out, "handler.rb"))).to be(true)
    expect(File.file?("#{out}.zip")).to be(true)

    status, log = PackageBuild.build(app, out, env: { "PAYMENTS_API_KEY" => "set-for-the-build" })
    expect(status).to be_success, log
    expect(log).to include("megamode build: the package booted\n")
  end

  it "refuses a Rails app that requires its master key, which the package leaves out, saying how to give it" do
    app = rails_app("master-key")
    production = File.join(app, "config", "environments", "production.rb")
    File.write(production, File.read(production).sub(/^(\s*)# (config\.require_master_key = true)/, '\1\2'))
    expect(File.read(production)).to match(/^\s*config\.require_master_key = true/)
    out = out_for(app)
    status, log = PackageBuild.build(app, out, env: { "RAILS_MASTER_KEY" => nil })

    expect(status.exitstatus).to eq(1), log
    expect(log).to include("megamode build: Missing encryption key to decrypt file with.",
                           "The app needs its master key to boot, and the package leaves config/master.key out: give " \
                           "the key as RAILS_MASTER_KEY to the build (RAILS_MASTER_KEY=$(cat config/master.key) " \
                           "megamode build) and on Lambda (the template's RailsMasterKey parameter).")
    expect_no_package(out)

    key = File.read(File.join(app, "config", "master.key")).strip
    status, log = PackageBuild.build(app, out, env: { "RAILS_MASTER_KEY" => key })
    expect(status).to be_success, log
    expect(log).to include("megamode build: the package booted\n")
  end

  it "refuses a fresh Rails app without its production database and precompiled assets, naming both commands, " \
     "and builds once they have run" do
    app = rails_app("fresh")
    # RailsApp migrates production's database; a fresh app has none. And it uses sprockets, as an
    # app `rails new` makes without --skip-sprockets does (RailsApp comments its railtie out).
    database = Dir.glob("{db,storage}/production.sqlite3", base: app)
    expect(database).not_to be_empty
    database.each { |f| File.delete(File.join(app, f)) }
    # Rails 6.1's `rails` gem brings sprockets-rails, so its app has it locked; Rails 7's does not, and
    # an app made with --minimal (Debian 13's Rails 7.2) has no asset pipeline at all to check.
    sprockets = File.read(File.join(app, "Gemfile.lock")).include?("    sprockets-rails (")
    application = File.join(app, "config", "application.rb")
    File.write(application, File.read(application).sub(%r{^# (require "sprockets/railtie")}, '\1')) if sprockets
    out = out_for(app)
    status, log = PackageBuild.build(app, out)

    expect(status.exitstatus).to eq(1), log
    expect(log).to include("megamode build: the app is not ready to run in production:\n",
                           "  - the production database (config/database.yml: SQLite, #{database.first}) does not " \
                           "exist in the app, so every query would fail: make it with " \
                           "`RAILS_ENV=production bin/rails db:prepare`\n",
                           "Run #{sprockets ? "those commands" : "that command"} in the app, then build again; or package " \
                           "it anyway with --no-boot-check")
    assets = "  - the assets are not precompiled (sprockets-rails, app/assets; no manifest in public/assets), and " \
             "production compiles none, so every page that links one would fail: precompile them with " \
             "`RAILS_ENV=production SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile`\n"
    sprockets ? expect(log).to(include(assets)) : expect(log).not_to(include("assets are not precompiled"))
    expect(log).not_to include("gathering"), "refused before anything is packed"
    expect_no_package(out)

    # The commands as given (with a secret for Rails before 7.1, which knows no SECRET_KEY_BASE_DUMMY).
    env = { "RAILS_ENV" => "production", "SECRET_KEY_BASE_DUMMY" => "1", "SECRET_KEY_BASE" => "k" * 64 }
    ["db:prepare", *("assets:precompile" if sprockets)].each do |task|
      output, done = Open3.capture2e(env, "bin/rails", task, chdir: app)
      expect(done).to be_success, output
    end
    status, log = PackageBuild.build(app, out)
    expect(status).to be_success, log
    expect(log).not_to include("not ready to run in production")
  end

  it "boots a Rack app too, refusing one that raises with its exception line" do
    app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
    config = File.join(app, "config.ru")
    File.write(config, %(raise ArgumentError, "no such region" if ENV["RACK_ENV"] == "production"\n#{File.read(config)}))
    out = out_for(app)
    status, log = PackageBuild.build(app, out)

    expect(status.exitstatus).to eq(1), log
    expect(log).to match(/^megamode build: ArgumentError: no such region \(config\.ru:1\)\n  The package does not boot in production \(RACK_ENV=production/)
    expect_no_package(out)
  end

  it "takes NO_BOOT_CHECK=1 in the rake task" do
    app = rails_app("rake-typo")
    add_route(app, %(get "/typo" => "posts#index", to:: 1))
    runner = File.join(@dir, "runner")
    FileUtils.mkdir_p(runner)
    File.write(File.join(runner, "Rakefile"), %(require "megamode/tasks"\n))
    env = { "RUBYLIB" => File.join(SpecHelpers::ROOT, "lib"), "APP" => app, "OUT" => out_for(app) }
    log, status = Open3.capture2e(env, "rake", "megamode:build", chdir: runner)
    expect(status).not_to be_success
    expect(log).to include("megamode build: SyntaxError: config/routes.rb:")

    log, status = Open3.capture2e(env.merge("NO_BOOT_CHECK" => "1"), "rake", "megamode:build", chdir: runner)
    expect(status).to be_success, log
    expect(log).to include("megamode build: warning: SyntaxError: config/routes.rb:")
    expect(File.file?(File.join(out_for(app), "handler.rb"))).to be(true)
  end
end
