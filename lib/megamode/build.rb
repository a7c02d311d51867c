# frozen_string_literal: true

require "fileutils"
require "json"
require "rbconfig"
require "tmpdir"
require "digest"
require_relative "version"
require_relative "runtime/errors"
require_relative "build/app_kind"
require_relative "build/bootsnap_cache"
require_relative "build/container"
require_relative "build/fallbacks"
require_relative "build/files"
require_relative "build/gemfile"
require_relative "build/gems"
require_relative "build/image"
require_relative "build/lockfile"
require_relative "build/output"
require_relative "build/prerequisites"
require_relative "build/report"
require_relative "build/secrets"
require_relative "build/target"
require_relative "build/tree"
require_relative "build/verify"

module Megamode
  # `megamode build` / `rake megamode:build`: turns a Rails or Rack app into a Lambda package. The
  # app is copied and only the copy is changed; the package is assembled in a work directory
  # and renamed into place, so a failed build never leaves something that looks complete. It
  # replaces only what megamode made, and refuses any other output directory (see Output).
  #
  #   OUT/.megamode-package     the marker: a package megamode made, which the next build may replace
  #   OUT/handler.rb            what Lambda's Ruby runtime loads (Handler: handler.handler)
  #   OUT/app/                  the app, with its Gemfile and (Rails) initializer adapted
  #   OUT/megamode/lib/         megamode's runtime and adapter (see RUNTIME and ADAPTER) and its extension
  #   OUT/megamode/runtime      the exec wrapper that runs the native Runtime API loop instead
  #   OUT/megamode/bundle.*     the app's gems as the lazy-load archive and its manifest
  #   OUT/megamode/target.json  what the package is for: runtime, Ruby ABI, arch, megamode, local
  #   OUT/lib/                  libraries the package ships (on Lambda's LD_LIBRARY_PATH), if any
  #   OUT.zip, template.yaml    beside OUT: the zip to upload and a SAM template that deploys it
  class Build
    # Left out of the copy: what is not the app's to ship (version control, the developer's gems,
    # which travel in the bundle, and Bundler's local settings, which the build rewrites).
    SKIPPED = %w[.git .bundle vendor/bundle node_modules .megamode-build-id].freeze
    # Kept as empty directories: the app writes them at runtime (in /tmp, where megamode copies it).
    EMPTIED = %w[tmp log].freeze
    # Bundler's offline source (`bundle cache`, `bundle package`). Its .gem files are left out of the
    # copy: Bundler reads them only to install (`bundle install --local`, as the build in a container
    # does from the app itself, not the copy), never at runtime, and the package's gems are installed
    # in its bundle. Its directories stay: the checkouts of git gems and of path gems from outside the
    # app (`bundle cache --all`), which Bundler, finding them there, loads from there at runtime in
    # place of any other copy (the package has no other: the bundle carries only the git checkouts
    # that are outside the app, see Gems#vendor_checkout).
    APP_CACHE = "vendor/cache"
    # Left out whole, even as empty directories: bootsnap's cache from the app's own boots (every app
    # booted in place has one; it is stale and made for this machine's paths) and a record of one. The
    # package's cache is the one the build makes in their place (BootsnapCache); the directories of
    # the app's own, kept below EMPTIED, made the build's copy land inside them, one level too deep.
    OWN_CACHES = [BootsnapCache::CACHE, BootsnapCache::RECORD].freeze
    # Where the build writes the package by default, and the one place inside an app it may go.
    DEFAULT_OUT = "build/megamode"
    # One part of megamode a package carries in megamode/lib: its entry files (what a `require`
    # names) and, whole, the one folder that holds the rest of it. A rule, not a list: a file the
    # part comes to load goes into its folder and ships.
    Part = Struct.new(:entries, :folder) do
      # Its files, relative to `lib` (megamode's lib/).
      def files(lib = LIB)
        entries + Dir.glob("#{folder}/**/*.rb", base: lib).sort
      end
    end
    # megamode's lib/, which the parts are read from.
    LIB = File.expand_path("..", __dir__)
    # The runtime: `require "megamode"` (the handler), megamode/version, `require "megamode/runtime"`
    # (the native loop), and lib/megamode/runtime/. Never the packager or the local tools.
    RUNTIME = Part.new(%w[megamode.rb megamode/version.rb megamode/runtime.rb], "megamode/runtime").freeze
    # The adapter, loaded inside the app's server: `require "megamode/rails"` and lib/megamode/rack/.
    ADAPTER = Part.new(%w[megamode/rails.rb], "megamode/rack").freeze

    attr_reader :app, :out, :kind, :target

    # The most of one app file the build reads as text (a large app's Gemfile.lock is a few hundred KB).
    MAX_TEXT_BYTES = 16 * 1024 * 1024

    # A text file of the app's (its Gemfile, Gemfile.lock, Ruby source, Bundler's config) as UTF-8,
    # Ruby's and Bundler's encoding for them, whatever the caller's locale says: in a C locale Ruby
    # reads text as US-ASCII, and a `café` in a comment would make every pattern match on it fail.
    # Read as a regular file and at most MAX_TEXT_BYTES of it: a FIFO would block the build (opened
    # without waiting for a writer, then refused), a link to /dev/zero would fill its memory. A link
    # to a regular file is followed, as Bundler and Ruby follow it.
    def self.read_text(path)
      File.open(path, File::RDONLY | File::NONBLOCK | File::BINARY) do |file|
        kind = file.stat.ftype
        raise BuildError, "#{path} is a #{kind}, not a regular file: make it the file it stands for" unless kind == "file"

        data = file.read(MAX_TEXT_BYTES + 1) || +""
        if data.bytesize > MAX_TEXT_BYTES
          raise BuildError, "#{path} is larger than the #{MAX_TEXT_BYTES} bytes megamode reads of an app's text file"
        end

        data.force_encoding(Encoding::UTF_8)
      end
    end

    # `runtime` (ruby3.3, ruby3.4, ruby4.0), `arch` (x86_64, arm64) and `local` choose the target
    # (see Target.resolve); nil leaves each to the build Ruby and this machine. `container`: the whole
    # build runs in Lambda's build image instead (see Container), or with `dry_run`, its commands are
    # written to `stdout` and nothing runs. `keep_secrets`: paths, relative to the app, of secret
    # files (see Secrets) to package all the same. `boot_check: false` (--no-boot-check) packages
    # an app that does not boot in production, or lacks a production prerequisite, with a warning.
    # `image`: also write the package's Dockerfile, and build the image tagged `tag` (default:
    # Image.default_tag) when a container engine runs here. `snapstart` (with `image`): a template
    # with Lambda SnapStart on (see Files.template_yaml); `prime`: the paths megamode requests before
    # the snapshot (MEGAMODE_PRIME), by default a Rails app's health check when its routes have one.
    def initialize(app:, out: nil, log: $stderr, runtime: nil, arch: nil, local: false, container: false,
                   dry_run: false, stdout: $stdout, stream: false, keep_secrets: [], boot_check: true,
                   image: false, tag: nil, snapstart: false, prime: [])
      @image = image
      @snapstart = snapstart
      @prime = prime
      @tag_given = !tag.nil?
      @tag = tag || Image.default_tag(File.expand_path(app))
      @boot_check = boot_check
      @stream = stream
      @keep_secrets = keep_secrets
      @app = File.expand_path(app)
      @out = File.expand_path(out || File.join(@app, DEFAULT_OUT))
      @log = log
      @target_options = { runtime: runtime, arch: arch, local: local }
      @container = container
      @dry_run = dry_run
      @stdout = stdout
    end

    def run
      check_snapstart_options!
      if @image && (@container || @dry_run)
        raise BuildError, "--image and --container do not go together yet: build the package with --container, " \
                          "then its image with the engine (`docker build -t TAG OUT`) from OUT/Dockerfile"
      end
      raise BuildError, "--tag goes with --image" if @tag_given && !@image
      return run_in_container if @container || @dry_run

      # Only here: a build in the container needs nothing compiled on this machine (a Mac without
      # megamode's extension builds there), the build here needs the extension's packer.
      require_relative "runtime/native"

      @target, fallback = Target.resolve(**@target_options)
      if @image && @target.local?
        raise BuildError, "--image makes an image FROM Lambda's base image for the runtime, which a package for " \
                          "local runs only cannot run in: build with #{@target.runtime}'s Ruby (or --container), " \
                          "without --local"
      end
      check_inputs!
      @kind = AppKind.detect(@app)
      say "building #{@app} (#{@kind}) into #{@out}"
      say "target: #{@target.local? ? "#{@target}: a package for local runs only" : "Lambda's #{@target}"}"
      say "warning: #{fallback}" if fallback
      left_out = secrets_left_out
      say Secrets.left_out_message(left_out, rails: @kind.rails?) unless left_out.empty?
      check_prerequisites if @kind.rails?
      @prime = default_prime if @snapstart && @prime.empty?
      @output.work_dir do |work|
        package = File.join(work, "package")
        Dir.mkdir(package)
        @verify = Verify.new(@target, package: package)
        # Another Ruby than the runtime's makes every gem wrong: said before anything is gathered.
        @verify.check_ruby
        @verify.enforce!
        assemble(package, left_out)
        write_zip(package, "#{package}.zip")
        # After the zip, which is the package alone: the files that make the image are not in it.
        Image.write(package, runtime: @target.runtime, version: VERSION) if @image
        # Measured before it is put in place: a package SnapStart cannot hold is refused, not installed.
        report = Report.new(package: package, zip: "#{package}.zip", manifest: @manifest, gems: @gems, log: @log,
                            target: @target, verify: @verify, snapstart: @snapstart)
        ephemeral_mb = report.ephemeral_mb
        @output.install(package, "#{package}.zip")
        report.placed(package: @out, zip: @output.zip)
        @output.install_template(template_yaml(ephemeral_mb), work)
        report.print(@output.template)
      end
      snapstart_next_steps if @snapstart
      build_image if @image
    end

    # SnapStart for an app: a Rails app's health check route (Rails 7.1's `get "up" =>
    # "rails/health#show"`), which boots the request path, the controller and the app's middleware.
    HEALTH_ROUTE = %r{^\s*get\s*\(?\s*["']/?([^"'\s]*)["']\s*(?:=>|,\s*to:)\s*["']rails/health#show["']}.freeze

    # The path of a Rails app's health check (`rails/health#show`, Rails 7.1's /up) in its
    # config/routes.rb, or nil.
    def self.health_check_path(app)
      routes = File.join(app, "config", "routes.rb")
      text = File.file?(routes) ? read_text(routes) : ""
      path = text[HEALTH_ROUTE, 1] || ("up" if text.include?("rails/health#show"))
      path && "/#{path}"
    end

    # How to deploy and what it costs, after the report.
    def snapstart_next_steps
      say "SnapStart: the template turns it on for published versions (SnapStart: ApplyOn: PublishedVersions) " \
          "and publishes one at each deploy that changes the function (AutoPublishAlias: #{Files::SNAPSTART_ALIAS}): " \
          "`sam build && sam deploy --guided` publishes it, and Lambda runs its init and takes the snapshot then; " \
          "call the alias #{Files::SNAPSTART_ALIAS} (the template's API and Function URL do; $LATEST is never " \
          "snapshotted)"
      say "SnapStart's cost for a function that is not Java's: each published version's snapshot is billed for " \
          "as long as it is cached (delete the versions you no longer call), and each restore is billed, by the " \
          "function's memory; the after-restore work shows as Billed Restore Duration in the REPORT"
    end

    # The image of the package just built, when an engine runs here; else what to run instead.
    def build_image
      command = "docker build --platform #{Container::PLATFORMS.fetch(@target.arch)} -t #{@tag} #{@out}"
      engine = begin
        Engine.runnable(instead: "build the image where one runs: #{command} (or podman, finch)")
      rescue BuildError => e
        say "wrote #{File.join(@out, Image::DOCKERFILE)}; the image was not built: #{e.message}"
        return
      end
      say "building the image #{@tag} with #{File.basename(engine)}, FROM #{Image.base(@target.runtime)}"
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Image.new(dir: @out, tag: @tag, arch: @target.arch).build(engine)
      say "built the image #{@tag} in #{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(1)} s: " \
          "run it with megamode invoke --image #{@tag} --get /"
      @stdout.puts @tag
    end

    private

    # --snapstart and --prime, checked before anything runs.
    def check_snapstart_options!
      if @snapstart && !@image
        raise BuildError, "--snapstart needs --image: Lambda's managed Ruby runtimes do not offer SnapStart for " \
                          "zip packages; SnapStart for Ruby works with a container image: add --image (IMAGE=1 " \
                          "for the rake task)"
      end
      unless @prime.empty? || @snapstart
        raise BuildError, "--prime names paths to request before SnapStart's snapshot: it goes with --snapstart " \
                          "(and --image)"
      end
      # As MEGAMODE_PRIME is read at boot (config.rs), where a path it refuses fails every init: one
      # leading / (// would name a host), no blanks, commas or control characters, no #fragment (a
      # client never sends one). A character that is not ASCII is fine: megamode percent-encodes it
      # at boot, as a client's request would.
      @prime.each do |path|
        if path.include?("#")
          raise BuildError, "--prime #{path.inspect[1..-2]}: has a #fragment, which a client never sends to a server: " \
                            "leave it out (or write %23 for a '#' that is part of the path)"
        end
        next if path.start_with?("/") && !path.start_with?("//") && !path.match?(/[\s,[:cntrl:]]/)

        raise BuildError, "--prime #{path.inspect[1..-2]}: a path the app serves, starting with / (such as /up or " \
                          "/products?page=1; not //), without spaces, commas or control characters: give it so"
      end
    end

    # What a SnapStart build primes without --prime: a Rails app's health check, when its routes have
    # it (a request through the app's routes, controllers and middleware, lazily loaded otherwise).
    def default_prime
      path = @kind.rails? && Build.health_check_path(@app)
      return [] unless path

      say "SnapStart: priming #{path}, the app's Rails health check (config/routes.rb), before the snapshot " \
          "(--prime PATH names others)"
      [path]
    end

    def run_in_container
      raise BuildError, "--dry-run prints what --container would run: give both" unless @container
      if @target_options[:local]
        raise BuildError, "--local and --container do not go together: a build in the container is for Lambda " \
                          "(give --runtime and --arch, or nothing)"
      end

      Container.new(app: @app, out: @out, runtime: @target_options[:runtime], arch: @target_options[:arch],
                    dry_run: @dry_run, log: @log, stdout: @stdout, stream: @stream, boot_check: @boot_check,
                    keep_secrets: @keep_secrets.map { |path| relative_to_app(path) }).run
    end

    def say(message)
      @log.puts "megamode build: #{message}"
      @log.flush
    end

    def check_inputs!
      raise BuildError, "the app directory #{@app} does not exist" unless File.directory?(@app)

      missing = %w[config.ru Gemfile Gemfile.lock].reject { |f| File.file?(File.join(@app, f)) }
      unless missing.empty?
        raise BuildError, "#{@app} has no #{missing.join(" or ")}: megamode packages a Rack app (a config.ru) " \
                          "with its gems resolved by Bundler (a Gemfile and its Gemfile.lock; run " \
                          "`bundle install` or `bundle lock` to make the lock)"
      end
      @output = Output.new(app: @app, out: @out)
      @out = @output.dir
      @output.check!
    end

    def assemble(partial, left_out)
      app_copy = File.join(partial, "app")
      copy_app(app_copy, left_out)
      gemfile = adapt_gemfile(app_copy)
      @gems = vendor_gems(app_copy, partial, gemfile)
      write_app_files(app_copy)
      write_runtime(partial)
      verify_package
      File.write(File.join(partial, Files::PACKAGE_MARKER), Files.package_marker(VERSION, target: @target))
      PackageTarget.write(partial, @target.to_h(version: VERSION, environment: @fallbacks.environment))
      id = build_id(app_copy)
      File.write(File.join(app_copy, ".megamode-build-id"), "#{id}\n")
      File.write(File.join(partial, "handler.rb"), Files.handler_rb(local: local_note))
      wrapper = File.join(partial, "megamode", "runtime")
      File.write(wrapper, Files.runtime_wrapper(local: local_note))
      File.chmod(0o755, wrapper)
      boot_package(partial, id)
      # Last, on everything the build put in: the zip records these modes, and Lambda keeps them.
      Tree.fix_modes(partial)
      Tree.fix_times(partial)
    end

    # What to say about a check the build refuses on, for the option that packages the app anyway.
    SKIP_CHECK = "package it anyway with --no-boot-check (NO_BOOT_CHECK=1 for the rake task)"

    # Rails' production prerequisites (see Prerequisites), before anything is packed: all the
    # problems in one refusal, each with its command.
    def check_prerequisites
      prerequisites = Prerequisites.new(@app)
      prerequisites.notes.each { |note| say note }
      problems = prerequisites.problems
      return if problems.empty?

      unless @boot_check
        problems.each { |problem| say "warning: #{problem}; packaged all the same, as --no-boot-check asks" }
        return
      end
      raise BuildError, "the app is not ready to run in production:\n#{problems.map { |p| "  - #{p}\n" }.join}" \
                        "Run #{problems.size > 1 ? "those commands" : "that command"} in the app, then build again; " \
                        "or #{SKIP_CHECK}."
    end

    # Last, on the finished package: it boots once, in production, copied as Lambda copies it (see
    # BootsnapCache), which checks that it boots and, for an app with bootsnap, makes the cache it
    # ships. The build id is made before, without the cache, which does not change what runs.
    def boot_package(partial, id)
      unless boots_here?
        say "not booted: the package is for Ruby #{@target.ruby} on #{@target.arch}, and this is Ruby " \
            "#{RUBY_VERSION} on #{PackageTarget.lambda_arch}: whether it boots is not checked#{bootsnap_note(partial)}"
        return
      end
      bootsnap = BootsnapCache.used_by?(File.join(partial, "app"))
      say "booting the package in production, as Lambda boots it, to check that it boots" \
          "#{bootsnap ? " and make bootsnap's cache" : ""}"
      result = BootsnapCache.new(package: partial, build_id: id, bundle_sha256: @manifest["sha256"],
                                 say: method(:say)).boot(cache: bootsnap)
      return say "the package booted" unless (failure = result.failure)

      say "the boot's last lines:"
      failure.tail.each { |line| @log.puts "  #{line}" }
      what = "#{failure.line}\n  The package does not boot in production (#{production_env}, with this shell's " \
             "environment), so every invocation would fail#{bootsnap ? " (and it has no bootsnap cache)" : ""}."
      what += "\n  #{failure.hint}." if failure.hint
      unless @boot_check
        return say "warning: #{what}\n  Packaged all the same, as --no-boot-check asks."
      end

      raise BuildError, "#{what}\n  Fix it and build again, or #{SKIP_CHECK}."
    end

    # Whether this machine runs the package: a package's record refuses another Ruby or machine.
    def boots_here?
      @target.ruby == PackageTarget.abi && @target.arch == PackageTarget.lambda_arch
    end

    def bootsnap_note(partial)
      BootsnapCache.used_by?(File.join(partial, "app")) ? ", and it goes without bootsnap's cache" : ""
    end

    def production_env
      @kind.rails? ? "RAILS_ENV=production" : "RACK_ENV=production"
    end

    # The app's secret files the package goes without: all but those --keep-secret names, each of
    # which must be one of them (a path that names none would keep nothing, and the app would miss
    # the file it was meant to have).
    def secrets_left_out
      secrets = Secrets.find(@app)
      kept = @keep_secrets.map do |path|
        relative = relative_to_app(path)
        unless secrets.include?(relative)
          raise BuildError, "--keep-secret #{path}: #{relative} is not one of the app's secret files, which a " \
                            "package leaves out (#{secrets.empty? ? "the app has none" : secrets.join(", ")}): " \
                            "give one of those, relative to the app, or nothing"
        end
        relative
      end
      kept.uniq.each do |path|
        say "warning: packaging the secret #{path}, as --keep-secret asks: anyone who can download the " \
            "function's code can read it"
      end
      secrets - kept
    end

    # A path --keep-secret gives, relative to the app, as the build (and the build in a container,
    # where the app has another path) names the app's files.
    def relative_to_app(path)
      File.expand_path(path, @app).delete_prefix(File.join(@app, ""))
    end

    def copy_app(app_copy, left_out)
      skip = SKIPPED + OWN_CACHES + left_out
      skip << "build" if @output.in_app_build?
      say "copying the app"
      cached, kept = cached_gem_files
      unless cached.empty?
        # The directory itself goes too when nothing else is in it.
        skip.concat(kept.empty? ? [APP_CACHE] : cached.map(&:first))
        say cached_gems_message(cached, kept)
      end
      Tree.copy(@app, app_copy, skip: skip, emptied: EMPTIED)
    end

    # The .gem files in the app's vendor/cache, as [path relative to the app, bytes], and the names of
    # the other entries there (the git and path gem checkouts, which stay).
    def cached_gem_files
      dir = File.join(@app, APP_CACHE)
      return [[], []] unless File.directory?(dir) && !File.symlink?(dir)

      gems, others = Dir.children(dir).sort.partition do |name|
        name.end_with?(".gem") && !File.lstat(File.join(dir, name)).directory?
      end
      [gems.map { |name| ["#{APP_CACHE}/#{name}", File.lstat(File.join(dir, name)).size] }, others]
    end

    def cached_gems_message(cached, kept)
      bytes = cached.sum(&:last)
      size = bytes >= 100 * 1024 ? format("%.1f MB", bytes.to_f / (1024 * 1024)) : format("%.1f KB", bytes / 1024.0)
      message = "left out #{APP_CACHE}'s #{cached.size} .gem file#{"s" unless cached.size == 1} (#{size}): " \
                "Bundler installs from them and never reads them at runtime, and the package's gems are in its bundle"
      return message if kept.empty?

      "#{message}; kept the rest of #{APP_CACHE} (#{kept.join(", ")}): Bundler loads a git or path gem's " \
        "checkout cached there from there at runtime"
    end

    def adapt_gemfile(app_copy)
      path = File.join(app_copy, "Gemfile")
      gemfile = Gemfile.new(Build.read_text(path), path: File.join(@app, "Gemfile"))
      lines = gemfile.comment_ruby_declarations!
      say "Gemfile: commented out the `ruby` declaration on line #{lines.join(", ")}" unless lines.empty?
      File.write(path, gemfile.text)
      lock = Lockfile.new(Build.read_text(File.join(app_copy, "Gemfile.lock")))
      lock.drop_ruby_version!
      File.write(File.join(app_copy, "Gemfile.lock"), lock.text)
      gemfile
    end

    # Resolves and gathers the gems, adds the Rails adapter, and packs them as the lazy-load bundle.
    def vendor_gems(app_copy, partial, gemfile)
      say "resolving the app's gems"
      gems = Gems.resolve(File.join(app_copy, "Gemfile"), bundle_path: developer_bundle_path)
      Dir.mktmpdir("megamode-build-gems-") do |root|
        say "gathering #{gems.packaged.size} gems"
        home = gems.vendor(root, app: app_copy)
        add_adapter(app_copy, gemfile, home)
        @fallbacks = Fallbacks.new(home, gems.packaged)
        @fallbacks.messages.each { |line| say line }
        @fallbacks.warnings.each { |line| say "warning: #{line}" }
        say "checking the gems' native files"
        # A gem on its documented fallback needs no compiled part; any other gem's missing one is refused.
        @verify.check_bundle(root, home, gems.packaged.reject { |s| @fallbacks.gems.include?(s.name) })
        say "packing the gem bundle"
        @manifest = Native.pack(root, File.join(partial, "megamode"))
      end
      File.write(File.join(app_copy, ".bundle", "config").tap { |p| FileUtils.mkdir_p(File.dirname(p)) },
                 Files.bundle_config(gems.without))
      gems
    end

    # The developer's own Bundler path (`bundle config set path ...`), which the copy does not have.
    def developer_bundle_path
      return ENV["BUNDLE_PATH"] if ENV["BUNDLE_PATH"]

      config = File.join(@app, ".bundle", "config")
      return nil unless File.file?(config)

      value = Build.read_text(config)[/^BUNDLE_PATH:\s*"?([^"\n]+)"?/, 1]
      value && File.expand_path(value, @app)
    end

    def add_adapter(app_copy, gemfile, home)
      return unless gemfile.add_adapter!(VERSION, rails: @kind.rails?)

      File.write(File.join(app_copy, "Gemfile"), gemfile.text)
      lock = Lockfile.new(Build.read_text(File.join(app_copy, "Gemfile.lock")))
      lock.add_gem!("megamode", VERSION)
      File.write(File.join(app_copy, "Gemfile.lock"), lock.text)
      files = [*ADAPTER.files, "megamode/version.rb"].to_h { |f| ["lib/#{f}", File.join(LIB, f)] }
      Gems.add_pure_gem(home, name: "megamode", version: VERSION, files: files,
                              summary: "megamode's Rails adapter, as the package carries it")
      say "Gemfile: added #{Gemfile.adapter_line(VERSION, rails: @kind.rails?)}"
    end

    def write_app_files(app_copy)
      return unless @kind.rails?

      path = File.join(app_copy, "config", "initializers", "megamode.rb")
      if File.exist?(path)
        say "kept the app's own config/initializers/megamode.rb"
      else
        FileUtils.mkdir_p(File.dirname(path))
        File.write(path, Files.initializer_rb(VERSION))
        say "wrote config/initializers/megamode.rb"
      end
    end

    # megamode itself, as the handler process loads it: the runtime and the adapter, and the compiled
    # extension for this Ruby.
    def write_runtime(partial)
      dest = File.join(partial, "megamode", "lib")
      (RUNTIME.files + ADAPTER.files).each do |file|
        FileUtils.mkdir_p(File.dirname(File.join(dest, file)))
        FileUtils.copy_file(File.join(LIB, file), File.join(dest, file))
      end
      native = native_library(LIB)
      FileUtils.mkdir_p(File.join(dest, "megamode"))
      FileUtils.copy_file(native, File.join(dest, "megamode", NativeLibrary::FILE))
    end

    def native_library(lib)
      NativeLibrary.find(lib) || raise(BuildError, NativeLibrary.missing_message(lib))
    end

    # Checks the app and megamode's runtime as they go into the package; refuses the package (for a
    # Lambda target) when anything in it, bundle included, could not run there.
    def verify_package
      @verify.check_package
      if @target.local?
        say "local package: #{@verify.offences.size} things could not run on Lambda's #{@target.runtime} " \
            "(#{@target.arch}), reported below and not enforced" unless @verify.passed?
      else
        @verify.enforce!
        say "verified for #{@target}: #{@verify.checked} native files can run there"
      end
    end

    # What a local package's handler says at boot.
    def local_note
      return nil unless @target.local?

      "megamode: this package was built for local runs only (Ruby #{RUBY_VERSION}, #{PackageTarget.lambda_arch}) and not " \
        "verified for Lambda: to deploy the app, build it with #{@target.runtime}'s Ruby, e.g. " \
        "megamode build --container --runtime #{@target.runtime} --arch #{@target.arch}"
    end

    # Names this package: the app as packaged plus its gems, so a new package is copied afresh.
    def build_id(app_copy)
      Digest::SHA256.hexdigest("#{Tree.digest(app_copy)} #{@manifest["sha256"]}")[0, 16]
    end

    def write_zip(package, zip)
      say "zipping the package"
      FileUtils.rm_f(zip)
      entries = []
      Tree.walk(package) { |path, stat| entries << path.delete_prefix("#{package}/") unless stat.directory? }
      # -X: no extra attributes (owners, times beyond the fixed mtime); -y: links as links.
      IO.popen(["zip", "-q", "-X", "-y", "-@", zip], "w", chdir: package) { |io| io.puts(entries) }
      raise BuildError, "zip failed (#{$?}) making #{zip}" unless $?.success?
    rescue Errno::ENOENT
      raise BuildError, "`zip` is not installed: install it (apt-get install zip), then build again"
    end

    def template_yaml(ephemeral_mb)
      env = @kind.rails? ? { "RAILS_ENV" => "production" } : { "RACK_ENV" => "production" }
      Files.template_yaml(name: File.basename(@app), code_uri: File.basename(@output.zip),
                          runtime: @target.runtime, architecture: @target.arch, rails: @kind.rails?,
                          memory: 1024, ephemeral_mb: ephemeral_mb, env: env, version: VERSION,
                          local: @target.local? ? "Ruby #{RUBY_VERSION}" : nil, stream: @stream,
                          image: @image ? { context: File.basename(@out), tag: @tag } : nil,
                          snapstart: @snapstart ? { prime: @prime } : nil)
    end
  end
end
