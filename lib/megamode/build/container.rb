# frozen_string_literal: true

require "digest"
require "fileutils"
require_relative "elf"
require_relative "engine"
require_relative "../runtime/native_library"

module Megamode
  class Build
    # `megamode build --container`: the whole build in Lambda's SAM build image for the target
    # (public.ecr.aws/sam/build-<runtime>, for the target's architecture), so that the gems' native
    # extensions and megamode's own are built by the runtime's Ruby on Amazon Linux 2023's glibc.
    #
    # What runs, in order (`--dry-run` prints it and runs nothing):
    # 1. `mkdir -p` of the output's parent and of the caches, on this machine;
    # 2. a Dockerfile, written to the cache: the SAM build image plus what megamode's extension
    #    needs to compile (Rust through rustup, as Amazon Linux's own Rust may be older than the
    #    crate's rust-version; clang, whose libclang rb-sys's bindgen loads) and `zip`. A precompiled
    #    megamode (the platform gem, whose lib/megamode/<abi>/ holds a library for the target's Ruby
    #    and architecture) needs no Rust: the image adds only `zip`, where it lacks it;
    # 3. `ENGINE build` of that image (its layers are the engine's cache: the second time it is
    #    instant), tagged with the Dockerfile's digest;
    # 4. `ENGINE run` of that image as this user, with the app mounted read-only, the output's
    #    parent read-write, megamode's source (this gem's directory) read-only and the caches
    #    (Cargo's registry and target directory, the installed gems) read-write. Inside: `bundle
    #    install` of the app's Gemfile.lock into the cached bundle, `cargo build` of megamode's
    #    extension into the cached target directory (not for a precompiled megamode, whose library
    #    is copied instead, and then Cargo has no caches), and `megamode build --runtime --arch`
    #    (without --container) from a copy of megamode's Ruby files with that extension beside them.
    #
    # The steps are a pure function of the engine, the target, the paths and the user, so that they
    # can be checked without an engine (spec/packager/build_container_spec.rb).
    class Container
      # Which engine: Engine's (looked for on PATH in this order; MEGAMODE_CONTAINER_ENGINE names one).
      ENGINES = Engine::NAMES
      ENGINE_VARIABLE = Engine::VARIABLE
      # Where the caches and the Dockerfiles go (default: $XDG_CACHE_HOME/megamode/container, else
      # ~/.cache/megamode/container).
      CACHE_VARIABLE = "MEGAMODE_CONTAINER_CACHE"
      # More packages for the image, separated by spaces: what the app's gems need to compile (e.g. a
      # database client's -devel package); the build ships their libraries the base image lacks.
      PACKAGES_VARIABLE = "MEGAMODE_CONTAINER_PACKAGES"
      PLATFORMS = { "x86_64" => "linux/amd64", "arm64" => "linux/arm64" }.freeze
      # Paths inside the container.
      APP = "/megamode/app"
      OUT = "/megamode/out"
      GEM = "/megamode/gem"
      CACHE = "/megamode/cache"
      CARGO = "/megamode/cargo"
      WORK = "/tmp/megamode-build"

      # One thing the build does: a command (argv), or a file it writes (path, content).
      Step = Struct.new(:argv, :path, :content, keyword_init: true) do
        def to_s
          return Container.shell(argv) if argv

          "cat > #{Container.quote(path)} <<'EOF'\n#{content}EOF"
        end
      end

      class << self
        # SAM's build image for a Lambda runtime: one name for both architectures, chosen by --platform.
        def base_image(runtime)
          "public.ecr.aws/sam/build-#{runtime}"
        end

        # What the derived image adds to the SAM build image; `packages`: more dnf packages; `rust:
        # false`: megamode's extension comes precompiled, and the image needs only zip (which SAM's
        # build images have: it is installed only where it is missing) and the packages.
        def dockerfile(runtime, packages: [], rust: true)
          return <<~DOCKERFILE unless rust
            # Written by megamode build --container: Lambda's SAM build image for #{runtime}, with zip.
            # megamode's extension comes precompiled for its Ruby: no Rust.
            FROM #{base_image(runtime)}
            RUN #{packages.empty? ? "command -v zip >/dev/null || { #{dnf(["zip"])}; }" : dnf(["zip", *packages])}
          DOCKERFILE

          <<~DOCKERFILE
            # Written by megamode build --container: Lambda's SAM build image for #{runtime}, with what
            # megamode's own native extension needs to compile (Rust, libclang) and zip.
            FROM #{base_image(runtime)}
            RUN #{dnf(["clang", "zip", *packages])}
            ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:$PATH
            RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \\
                  | sh -s -- -y --no-modify-path --profile minimal --default-toolchain stable \\
                 && chmod -R a+rwX /opt/rustup /opt/cargo && rustc --version
          DOCKERFILE
        end

        def dnf(packages)
          "dnf install -y #{shell(packages)} && dnf clean all"
        end

        # The derived image's name: per runtime and architecture, and new whenever its Dockerfile is.
        def image_tag(target, packages: [], rust: true)
          digest = Digest::SHA256.hexdigest(dockerfile(target.runtime, packages: packages, rust: rust))[0, 12]
          "megamode-build:#{target.runtime}-#{target.arch}-#{digest}"
        end

        # The engine a dry run names, without running it (Engine.find); a real build takes the first
        # that can run containers (Engine.runnable).
        def detect_engine(env: ENV)
          Engine.find(env: env)
        end

        # The steps of a container build. `engine`: its name or path (the flags depend on its name);
        # `target`: the Target; `app`, `out`, `gem_root`, `cache`: absolute paths on this machine;
        # `uid`, `gid`: the user the container runs as (files in the output are theirs); `packages`:
        # more packages for the image; `stream`: the inner build writes the streaming template;
        # `keep_secrets`: the secret files (relative to the app) the inner build packages anyway;
        # `boot_check: false`: the inner build runs with --no-boot-check; `library`: megamode's
        # precompiled library for the target, in gem_root (Container.precompiled), copied in instead
        # of compiling one (nil: compile it, with Rust in the image).
        def steps(engine:, target:, app:, out:, gem_root:, cache:, uid:, gid:, packages: [], stream: false,
                  keep_secrets: [], boot_check: true, library: nil)
          rust = library.nil?
          context = File.join(cache, "images", target.runtime)
          caches = File.join(cache, "#{target.runtime}-#{target.arch}")
          cargo = File.join(cache, "cargo") if rust
          platform = PLATFORMS.fetch(target.arch)
          tag = image_tag(target, packages: packages, rust: rust)
          out_parent = File.dirname(out)
          out_mount = container_path(out_parent, app)
          built = rust ? nil : File.join(GEM, library.delete_prefix("#{gem_root}/"))
          inner = script(target, File.join(out_mount, File.basename(out)), stream, keep_secrets, boot_check, built)
          [
            Step.new(argv: ["mkdir", "-p", out_parent, context, caches, *cargo]),
            Step.new(path: File.join(context, "Dockerfile"),
                     content: dockerfile(target.runtime, packages: packages, rust: rust)),
            Step.new(argv: [engine, "build", "--platform", platform, "-t", tag, context]),
            Step.new(argv: [engine, "run", "--rm", "--platform", platform, *user_flags(engine, uid, gid),
                            *volume(app, APP, read_only: true), *volume(out_parent, out_mount),
                            *volume(gem_root, GEM, read_only: true), *volume(caches, CACHE),
                            *(volume(cargo, CARGO) if rust),
                            *environment(rust: rust).flat_map { |k, v| ["-e", "#{k}=#{v}"] },
                            "-w", APP, tag, "bash", "-c", inner])
          ]
        end

        # megamode's precompiled library for `target` in `gem_root`: the platform gem's for the
        # target's Ruby ABI (NativeLibrary.precompiled), when it is for the target's architecture
        # (the gem is x86_64 Linux's; an arm64 target compiles its own). Nil when there is none.
        # A checkout's `rake compile` builds are not taken: they are for the Ruby that built them,
        # which may link its own libruby.
        def precompiled(target, gem_root)
          path = NativeLibrary.precompiled(File.join(gem_root, "lib"), target.runtime_ruby)
          path if Elf.elf?(path) && Elf.read(path).machine == target.machine
        end

        # The precompiled libraries in `gem_root`, as "Ruby 3.4 (x86_64)", for the error that none
        # is the target's.
        def precompiled_list(gem_root)
          Dir.glob(NativeLibrary.precompiled(File.join(gem_root, "lib"), "[0-9]*.[0-9]*")).sort.filter_map do |path|
            next unless Elf.elf?(path)

            "Ruby #{File.basename(File.dirname(path))} (#{Elf.read(path).machine_name})"
          end
        end

        # The user flags: none as root (root's files are the host user's); otherwise this user, and
        # for Podman (rootless when not run by root) the user namespace that maps this user to itself.
        def user_flags(engine, uid, gid)
          return [] if uid.zero?

          flags = ["--user", "#{uid}:#{gid}"]
          File.basename(engine) == "podman" ? ["--userns=keep-id", *flags] : flags
        end

        # The environment inside: a writable HOME, the caches, the app's gems in the cached bundle
        # (not where the app's own .bundle/config may point, into the read-only app), without the
        # development and test groups, which a package leaves out.
        # `rust: false`: nothing compiles megamode, so Cargo has no places.
        def environment(rust: true)
          {
            "HOME" => "#{WORK}/home",
            **(rust ? { "CARGO_HOME" => CARGO, "CARGO_TARGET_DIR" => "#{CACHE}/target" } : {}),
            "GEM_HOME" => "#{CACHE}/gems",
            "BUNDLE_PATH" => "#{CACHE}/bundle",
            "BUNDLE_APP_CONFIG" => "#{WORK}/bundle",
            "BUNDLE_WITHOUT" => "development:test"
          }
        end

        # What runs inside, as one shell command line. `built`: the precompiled library inside the
        # container (nil: Cargo builds it).
        def script(target, inner_out, stream, keep_secrets, boot_check, built = nil)
          lib = "#{WORK}/megamode"
          native = "#{lib}/lib/megamode"
          [
            ["mkdir", "-p", "#{WORK}/home", lib],
            ["env", "BUNDLE_FROZEN=true", "bundle", "install"],
            *([["cargo", "build", "--release", "--locked", "--package", "megamode",
                "--manifest-path", "#{GEM}/Cargo.toml"]] unless built),
            ["cp", "-R", "#{GEM}/lib", "#{GEM}/exe", lib],
            # The checkout's own builds (`rake compile`'s, for other Rubies) and the precompiled
            # gem's (one per Ruby ABI) go: the one for the target, built here or precompiled, is
            # the one found, in lib/megamode/ as a package carries it.
            ["find", native, "-maxdepth", "1", "-name", "[0-9]*.[0-9]*", "-exec", "rm", "-rf", "{}", "+"],
            ["cp", built || "#{CACHE}/target/release/libmegamode.so", "#{native}/megamode.so"],
            ["ruby", "#{lib}/exe/megamode", "build", "--app", APP, "--out", inner_out,
             "--runtime", target.runtime, "--arch", target.arch, *("--stream" if stream),
             *keep_secrets.flat_map { |path| ["--keep-secret", path] }, *("--no-boot-check" unless boot_check)]
          ].map { |argv| shell(argv) }.join(" && ")
        end

        # Where a directory on this machine is inside the container: under the app's mount when it
        # is in the app (the default output, APP/build/megamode), else the output mount.
        def container_path(dir, app)
          return APP if dir == app
          return File.join(APP, dir.delete_prefix("#{app}/")) if dir.start_with?("#{app}/")

          OUT
        end

        def volume(host, inside, read_only: false)
          if host.include?(":") || host.include?(",")
            raise BuildError, "#{host} has a `:` or `,` in its path, which a container engine's volume option " \
                              "cannot take: move it, or build without --container"
          end
          ["-v", "#{host}:#{inside}#{read_only ? ":ro" : ""}"]
        end

        def shell(argv)
          argv.map { |a| quote(a) }.join(" ")
        end

        # A word as a POSIX shell reads it back: bare when that is safe, else in single quotes.
        def quote(word)
          word = word.to_s
          return word if word.match?(%r{\A[A-Za-z0-9_@%+=:,./-]+\z})

          "'#{word.gsub("'") { "'\\''" }}'"
        end

        def default_cache(env: ENV)
          return env[CACHE_VARIABLE] unless env[CACHE_VARIABLE].to_s.empty?

          base = env["XDG_CACHE_HOME"].to_s.empty? ? File.join(Dir.home, ".cache") : env["XDG_CACHE_HOME"]
          File.join(base, "megamode", "container")
        end

        # Where megamode's source is: this gem's directory (the installed gem or the checkout).
        def gem_root
          File.expand_path("../../..", __dir__)
        end
      end

      # `runtime`, `arch`: as given (nil: the build Ruby's nearest Lambda runtime, this machine's
      # architecture). `stdout` gets the dry run's steps; `log` what the build says.
      def initialize(app:, out:, runtime: nil, arch: nil, dry_run: false, log: $stderr, stdout: $stdout, env: ENV,
                     stream: false, keep_secrets: [], boot_check: true)
        @boot_check = boot_check
        @stream = stream
        @keep_secrets = keep_secrets
        @app = app
        @out = out
        @runtime = runtime
        @arch = arch
        @dry_run = dry_run
        @log = log
        @stdout = stdout
        @env = env
      end

      def run
        target = resolve_target
        raise BuildError, "the app directory #{@app} does not exist" unless File.directory?(@app)

        missing = %w[config.ru Gemfile Gemfile.lock].reject { |f| File.file?(File.join(@app, f)) }
        unless missing.empty?
          raise BuildError, "#{@app} has no #{missing.join(" or ")}: the container installs the app's gems from " \
                            "its Gemfile.lock (run `bundle lock` in the app to make one) and runs its config.ru"
        end

        # A dry run runs nothing, so it needs no engine that runs: it names the one found.
        engine = @dry_run ? Engine.find(env: @env) : Engine.runnable(env: @env)
        gem_root = self.class.gem_root
        library = extension(target, gem_root)
        app = File.realpath(@app)
        out = @dry_run ? Output.resolve(@out) : checked_out(app)
        steps = self.class.steps(engine: engine, target: target, app: app, out: out, gem_root: gem_root,
                                 cache: File.expand_path(self.class.default_cache(env: @env)),
                                 uid: Process.uid, gid: Process.gid, packages: @env[PACKAGES_VARIABLE].to_s.split,
                                 stream: @stream, keep_secrets: @keep_secrets, boot_check: @boot_check,
                                 library: library)
        say "in #{File.basename(engine)}, in #{self.class.base_image(target.runtime)} for #{target}"
        say(library ? "megamode's extension: precompiled, #{library}" : "megamode's extension: compiled there, with Rust")
        @dry_run ? dry_run(steps) : steps.each { |step| perform(step) }
        steps
      end

      private

      def resolve_target
        runtime = @runtime || Target.nearest_runtime(PackageTarget.abi)
        target, = Target.resolve(runtime: runtime, arch: @arch)
        say "no --runtime given: building for #{runtime}, the nearest to this Ruby (#{RUBY_VERSION})" unless @runtime
        target
      end

      # megamode's precompiled library for the target (nil: the container compiles one from the Rust
      # source beside megamode's Ruby files). Raises BuildError when there is neither: a precompiled
      # gem run for a Ruby or an architecture it has no library for.
      def extension(target, gem_root)
        library = self.class.precompiled(target, gem_root)
        return library if library
        return if File.file?(File.join(gem_root, "Cargo.toml"))

        wanted = "Ruby #{target.runtime_ruby} (#{target.arch}), which #{target.runtime} runs"
        have = self.class.precompiled_list(gem_root)
        if have.empty?
          raise BuildError, "megamode in #{gem_root} has neither its extension precompiled for #{wanted} nor its " \
                            "Rust source (Cargo.toml) to compile it in the build image: reinstall the megamode gem"
        end
        raise BuildError, "megamode in #{gem_root} is the precompiled gem, with its extension for " \
                          "#{have.join(" and ")} only: not for #{wanted}, and without the Rust source to compile " \
                          "it in the build image. Build for a runtime it has, or install the source gem, which " \
                          "--container compiles there: `gem install megamode --platform ruby`, or in a Gemfile " \
                          "`gem \"megamode\", force_ruby_platform: true`"
      end

      # The output, checked on this machine before anything runs (the build inside checks it again).
      def checked_out(app)
        output = Output.new(app: app, out: @out)
        output.check!
        output.dir
      end

      def dry_run(steps)
        say "dry run: what --container runs, in order (nothing was run)"
        steps.each { |step| @stdout.puts step.to_s }
        @stdout.flush
      end

      def perform(step)
        say "$ #{step.to_s.lines.first.chomp}"
        if step.path
          File.write(step.path, step.content)
        elsif !system(*step.argv)
          status = $?.exitstatus ? "exited with status #{$?.exitstatus}" : "did not run (#{$? || "not found"})"
          raise BuildError, "the container build stopped: `#{step.argv.first(2).join(" ")}` #{status}; " \
                            "what it said is above"
        end
      end

      def say(message)
        @log.puts "megamode build: #{message}"
        @log.flush
      end
    end
  end
end
