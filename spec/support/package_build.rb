# frozen_string_literal: true

require "fileutils"
require "open3"
require "rbconfig"

# Building packages with the real `megamode build` and running them with `megamode invoke
# --package`, each in a process of its own, as a user would.
module PackageBuild
  EXE = File.expand_path("../../exe/megamode", __dir__)
  STAGE_HOST = "abc123.execute-api.us-east-1.amazonaws.com"

  module_function

  # A copy of the fixture app `name` under `dir`, with its Gemfile locked against the installed
  # gems (RubyGems.org is out of reach) and, as a developer's app often has, a `ruby` line pinning
  # a Ruby this machine need not have (added after locking, which it would refuse).
  def app(name, dir, ruby_line: %(ruby "3.3.0"))
    app = File.join(dir, name)
    FileUtils.cp_r(File.join(SpecHelpers::ROOT, "spec", "fixtures", "apps", name), app)
    gemfile = File.join(app, "Gemfile")
    # Fixtures that other specs run without Bundler have no Gemfile; a packaged app has one.
    File.write(gemfile, %(source "https://rubygems.org"\n\ngem "rack"\ngem "puma"\n)) unless File.exist?(gemfile)
    lock!(app)
    add_ruby_line(app, ruby_line) if ruby_line
    app
  end

  def lock!(app, env: {})
    out, status = Open3.capture2e({ "BUNDLE_GEMFILE" => nil }.merge(env), "bundle", "lock", "--local", chdir: app)
    raise "bundle lock failed in #{app}:\n#{out}" unless status.success?
  end

  def add_ruby_line(app, line)
    gemfile = File.join(app, "Gemfile")
    lines = File.readlines(gemfile)
    File.write(gemfile, ([lines.first, "#{line}\n"] + lines.drop(1)).join)
  end

  # A scratch directory on tmpfs when there is one (creating files on / is slow here), which other
  # users may enter as they may /var/task: the packages built and run there run as a user that owns
  # nothing (LambdaEnvironment#function_user), as on Lambda.
  def scratch(prefix)
    Dir.mktmpdir(prefix, File.directory?("/dev/shm") ? "/dev/shm" : Dir.tmpdir).tap { |dir| File.chmod(0o755, dir) }
  end

  # Where packages built beforehand are (MEGAMODE_TEST_PACKAGES, set by bin/test for the Lambda
  # stand-in's runtime flavour, which has no compiler and not the apps' libraries to build them):
  # `built` and BuiltRails.package take them from there instead of building.
  def prebuilt_dir
    ENV.fetch("MEGAMODE_TEST_PACKAGES", nil)
  end

  # What a prebuilt package was made from (the fixture app and its Gemfile's `ruby` line), written
  # beside it, so that a spec asking for another app under the same name is not given this one.
  MADE_FROM = ".made-from"

  # The package `package` built beforehand from `made_from` (with what its build wrote beside it,
  # the template), copied into `dir/out` as its build would have left it; its path. Nil when
  # packages are built here.
  def prebuilt(package, dir, made_from)
    return unless prebuilt_dir

    source = File.join(prebuilt_dir, package)
    raise "no prebuilt package in #{source}: build it first (spec/prebuild_packages.rb)" unless File.directory?(source)

    found = File.read(File.join(source, MADE_FROM)) if File.file?(File.join(source, MADE_FROM))
    raise "the prebuilt package in #{source} was made from #{found.inspect}, not #{made_from.inspect}" unless found == made_from

    FileUtils.mkdir_p(File.join(dir, "out"))
    FileUtils.cp_r("#{source}/.", File.join(dir, "out"))
    FileUtils.rm_f(File.join(dir, "out", MADE_FROM))
    File.join(dir, "out", package)
  end

  def made_from(name, ruby_line)
    [name, ruby_line].compact.join(" with ")
  end

  # The fixture app `name` copied and locked under `dir`, then built into `dir/out/<package>`;
  # the package's path. A failed build fails the caller with its log.
  # `extra`: more of `megamode build`'s arguments (--image).
  def built(name, dir, package:, ruby_line: nil, extra: [])
    return prebuilt(package, dir, made_from(name, ruby_line)) if prebuilt_dir

    app = app(name, dir, ruby_line: ruby_line)
    out = File.join(dir, "out", package)
    status, log = build(app, out, *extra)
    raise "megamode build failed:\n#{log}" unless status.success?

    out
  end

  # [exit status, log] of `megamode build`, run in `chdir` (default: this process's directory) with
  # `env` added to this process's environment.
  def build(app, out, *extra, chdir: Dir.pwd, env: {})
    log, status = Open3.capture2e(env, RbConfig.ruby, EXE, "build", "--app", app, "--out", out, *extra, chdir: chdir)
    [status, log]
  end

  # The handler's results (one per event) and the log of `megamode invoke --package`. `env` may
  # unset MEGAMODE_TMP (nil) to copy the app where Lambda does, as a shipped bootsnap cache needs.
  # `fails`: an invocation is expected to fail, which makes invoke's exit status 1.
  def invoke(package, events, tmp:, env: {}, fails: false)
    files = events.each_with_index.map do |event, i|
      File.join(tmp, "event-#{i}.json").tap { |f| File.write(f, JSON.generate(event)) }
    end
    args = files.flat_map { |f| ["--event", f] }
    out, log, status = Open3.capture3({ "MEGAMODE_TMP" => File.join(tmp, "lambda-tmp") }.merge(env),
                                      RbConfig.ruby, EXE, "invoke", "--package", package, *args)
    unless status.exitstatus == (fails ? 1 : 0)
      raise "megamode invoke --package #{fails ? "did not fail" : "failed"} (#{status}):\n#{log}"
    end

    [out.lines.map { |l| JSON.parse(l) }, log]
  end

  # The handler's results and the log of the package run as Lambda runs it, by a user who owns
  # nothing in it (nobody): the handler process of `megamode invoke --package`, in its Lambda-like
  # environment (read-only package, fresh tmpfs MEGAMODE_TMP under `tmp`), started through setpriv.
  # Needs root, to make that environment and to switch users; the package's directory and `tmp`
  # must be reachable by anyone, as /var/task is.
  def invoke_as_nobody(package, events, tmp:, env: {})
    require "etc"
    require "megamode/local/lambda_environment"
    user = Etc.getpwnam("nobody")
    environment = Megamode::Local::LambdaEnvironment.new(package, tmp: File.join(tmp, "lambda-tmp"))
    # megamode runs it as nobody itself when nobody can reach the package and `tmp`.
    switch = environment.function_user ? [] : ["setpriv", "--reuid=#{user.uid}", "--regid=#{user.gid}", "--clear-groups"]
    argv = [*switch, RbConfig.ruby, Megamode::Local::LambdaEnvironment::HANDLER_PROCESS, "package", package, "30"]
    input = events.map { |event| "#{JSON.generate(event)}\n" }.join
    out, log, status = Open3.capture3(environment.env.merge(env), *environment.command(argv, ruby: false),
                                      stdin_data: input, chdir: package)
    raise "the package's handler process as nobody failed (#{status}):\n#{log}" unless status.success?

    [out.lines.map { |l| JSON.parse(l) }, log]
  end

  # An HTTP API 2.0 event for the `dev` stage on the API's execute-api host, as API Gateway sends it.
  def staged_event(path, method: "GET", body: nil, form: false)
    query = path[/\?(.*)\z/, 1].to_s
    raw = "/dev#{path.sub(/\?.*\z/, "")}"
    headers = { "host" => STAGE_HOST, "x-forwarded-proto" => "https", "x-forwarded-port" => "443",
                "accept" => "text/html" }
    headers["content-type"] = "application/x-www-form-urlencoded" if form
    {
      "version" => "2.0", "routeKey" => "$default", "rawPath" => raw, "rawQueryString" => query,
      "headers" => headers, "isBase64Encoded" => false, "body" => body,
      "requestContext" => {
        "accountId" => "123456789012", "apiId" => "abc123", "domainName" => STAGE_HOST,
        "domainPrefix" => "abc123", "stage" => "dev", "requestId" => "req-#{rand(1 << 32)}",
        "routeKey" => "$default", "time" => "25/Nov/2026:17:00:00 +0000", "timeEpoch" => 1_795_000_000_000,
        "http" => { "method" => method, "path" => raw, "protocol" => "HTTP/1.1",
                    "sourceIp" => "203.0.113.7", "userAgent" => "rspec" }
      }
    }.compact
  end
end
