# frozen_string_literal: true

require "fileutils"
require "json"
require "open3"
require "rbconfig"
require "tmpdir"
require_relative "../local/lambda_environment"
require_relative "boot_failure"

module Megamode
  class Build
    # The build's boot of the finished package, once, in production, as Lambda boots it: the check
    # that the app boots at all (a package that cannot fails every invocation; the build reads why
    # from the boot's output, see BootFailure), and for an app with bootsnap, bootsnap's cache,
    # made at build time and shipped in the package, so that a Rails app's cold start on Lambda
    # begins with a warm cache instead of an empty one (which is slower than no bootsnap at all:
    # the cache is written while the app boots).
    #
    # The mechanism: bootsnap keys its compile cache by each file's absolute path, modification
    # time and size and by the Ruby, its load-path cache by directory paths. On Lambda, megamode's
    # core copies the app to MEGAMODE_TMP/app-<build id> and unpacks the gems to
    # MEGAMODE_TMP/bundle-<checksum>, and gives every file there one fixed time (see the core's
    # `app_copy` and `bootsnap`). So the build boots the finished package exactly that way: the
    # package's own megamode (the same core) copies it to those very paths under the default
    # MEGAMODE_TMP, starts its server and waits until it is ready; then the cache that boot wrote
    # is taken into the package, with a record of the paths and the Ruby it was made for. Every key
    # then holds where the package runs on Lambda, for the target's Ruby when the build runs on it
    # (as a Lambda target requires; a --container build runs on Lambda's very Ruby). A cache made
    # for anything else is left out of the copy and said once in the log, so it costs no more than an
    # empty one. Fixing the time cannot make bootsnap trust a stale entry: a changed app is another
    # build id, so another path.
    #
    # The cache is the one build output that differs between two builds of the same app: bootsnap
    # writes each entry's key with padding it leaves unset.
    #
    # As root, the boot runs as `megamode invoke --package` runs a package (Local::LambdaEnvironment):
    # in a private mount namespace with a tmpfs of its own at /tmp/megamode, the package read-only and
    # this machine's gem directories hidden, so it loads what Lambda's Ruby would and nothing else, and
    # touches nothing of the machine's; it copies the cache out before it ends. Without root, to
    # make the cache, it copies the app into the machine's /tmp/megamode, where a local run of a package
    # (without root) copies it too: it leaves there only this package's copies, and removes them. It
    # does so only when that directory is this user's alone (no one else could put code there for
    # the build to boot and ship) and holds no other copy (copying removes older copies,
    # which a local run may be using); else the package goes without a cache, and the log says
    # why. Without root and without a cache to make, the boot copies into a private directory.
    class BootsnapCache
      # Where Lambda's megamode copies packages (MEGAMODE_TMP's default).
      RUNTIME_TMP = "/tmp/megamode"
      # bootsnap's cache and the record beside it, in the app (the core's `bootsnap::CACHE`, `RECORD`).
      CACHE = "tmp/cache/bootsnap"
      RECORD = "tmp/cache/megamode-bootsnap.json"
      # How long the app may take to boot at build time.
      BOOT_TIMEOUT = 120
      # The isolated boot's /tmp/megamode: Lambda's largest ephemeral storage (a limit, not a size).
      TMP_SIZE = "10g"

      # Whether the app uses bootsnap as Rails generates it: in its lockfile, required from boot.rb.
      def self.used_by?(app)
        lock = File.join(app, "Gemfile.lock")
        boot = File.join(app, "config", "boot.rb")
        File.file?(lock) && Build.read_text(lock).match?(/^\s+bootsnap \(/) &&
          File.file?(boot) && Build.read_text(boot).include?("bootsnap/setup")
      end

      # `say`: the build's own, writing a line of its log. `tmp` and `isolated` are for tests.
      def initialize(package:, build_id:, bundle_sha256:, say:, tmp: RUNTIME_TMP, isolated: nil)
        @package = package
        @app = File.join(package, "app")
        @tmp = tmp
        @copy = File.join(tmp, "app-#{build_id}")
        @bundle = File.join(tmp, "bundle-#{bundle_sha256[0, 16]}")
        @say = say
        @isolated = isolated.nil? ? Local::LambdaEnvironment.new(package).isolated? : isolated
      end

      # What the boot found: whether it made the cache, and why the app did not boot (a
      # BootFailure; nil when it booted).
      Result = Struct.new(:cached, :failure, keyword_init: true)

      # Boots the package once, in production, as Lambda boots it: the build's check that the app
      # boots, and with `cache` (an app with bootsnap) the boot that makes bootsnap's cache and
      # puts it in the package. A cache is made only where Lambda copies the package: when the
      # machine's MEGAMODE_TMP is no place for the build's boot (without root), the package
      # goes without one, saying why, and the check boots it in a private directory of its own.
      def boot(cache:)
        if cache && (problem = shared_tmp_problem)
          say "warning: bootsnap: no cache made: #{@tmp} #{problem}, and without root the build boots the " \
              "package there to make it; each cold start writes the cache. Build as root, or with --container."
          cache = false
        end
        Dir.mktmpdir("megamode-boot-") do |scratch|
          # Without root, and with no cache to make, in a directory of its own, so that it
          # touches nothing of the machine's /tmp/megamode (a local run may be using it).
          boot_in(File.join(scratch, "megamode")) unless cache || @isolated
          made = File.join(scratch, "bootsnap")
          output, status = boot_process(made)
          return Result.new(cached: false, failure: failure(output)) unless status.success?
          return Result.new(cached: false) unless cache

          unless File.directory?(made)
            say "warning: bootsnap: the boot wrote no cache in #{File.join(@copy, CACHE)}, so the package has " \
                "none and each cold start writes one:\n#{output.lines.last(15).join}"
            return Result.new(cached: false)
          end
          return Result.new(cached: false) unless place(made)
        end
        File.write(File.join(@app, RECORD), "#{JSON.pretty_generate(record)}\n")
        say "bootsnap: made its cache for #{@copy} (#{files_in(File.join(@app, CACHE))} files) by booting the package"
        Result.new(cached: true)
      end

      private

      # Puts the cache the boot made at exactly CACHE in the package's app, where bootsnap reads it
      # (`bootsnap/setup`: the app's tmp/cache, then bootsnap/), whatever is there: FileUtils.cp_r
      # copies into a directory that exists, which put it one level too deep, in CACHE/bootsnap. Not
      # through a link the app brought (its tmp or tmp/cache): the cache would land outside the package.
      def place(made)
        linked = ["tmp", File.dirname(CACHE)].find do |dir|
          path = File.join(@app, dir)
          File.symlink?(path) || (File.exist?(path) && !File.directory?(path))
        end
        if linked
          say "warning: bootsnap: the app's #{linked} is #{File.symlink?(File.join(@app, linked)) ? "a symbolic link" : "not a directory"}, " \
              "so the package has no cache and each cold start writes one: make it a directory"
          return false
        end
        cache = File.join(@app, CACHE)
        FileUtils.rm_rf([cache, File.join(@app, RECORD)])
        FileUtils.mkdir_p(File.dirname(cache))
        FileUtils.cp_r(made, cache)
        true
      end

      # Where the boot copies the package: `tmp` instead of Lambda's path.
      def boot_in(tmp)
        @tmp = tmp
        @copy = File.join(tmp, File.basename(@copy))
        @bundle = File.join(tmp, File.basename(@bundle))
      end

      def failure(output)
        BootFailure.new(output, app: @copy, env: ENV.to_h.merge(@boot_env || {}).compact)
      end

      # Why the machine's MEGAMODE_TMP is no place for the build's boot (nil: it is, or the
      # boot is isolated and does not use it).
      def shared_tmp_problem
        return nil if @isolated

        FileUtils.mkdir_p(@tmp, mode: 0o700)
        # Not through a link: whoever owns the link chooses the directory it leads to.
        stat = File.lstat(@tmp)
        return "is a symbolic link (to #{File.readlink(@tmp)})" if stat.symlink?
        return "is not a directory" unless stat.directory?
        return "belongs to another user" unless stat.owned?
        return "can be written by others" if stat.mode.anybits?(0o022)

        others = Dir.children(@tmp).grep(/\A(app|bundle)-/) - [File.basename(@copy), File.basename(@bundle)]
        "holds other packages' app copies or gem bundles (#{others.sort.first(3).join(", ")}), which a local run may be using" unless others.empty?
      end

      def record
        { "app" => @copy, "bundle" => @bundle,
          "ruby" => { "version" => RUBY_VERSION, "revision" => RUBY_REVISION, "platform" => RUBY_PLATFORM } }
      end

      # The package's handler process, as Lambda starts it, up to its server being ready; then the
      # cache that boot wrote is copied to `made`.
      def boot_process(made)
        script = 'require "megamode"; require "fileutils"; Megamode.wait_ready; Megamode.shutdown; ' \
                 "FileUtils.cp_r(ARGV[0], ARGV[1]) if File.directory?(ARGV[0])"
        lambda_env = Local::LambdaEnvironment.new(@package, tmp: @tmp, tmp_size: TMP_SIZE)
        command = lambda_env.command(["-I", File.join(@package, "megamode", "lib"), "-e", script,
                                      File.join(@copy, CACHE), made])
        FileUtils.rm_rf([@copy, @bundle]) unless lambda_env.isolated?
        # The boot's output as bytes, then UTF-8 (what the app writes), whatever the caller's locale.
        @boot_env = boot_env(lambda_env)
        output, status = unbundled { Open3.capture2e(@boot_env, *command, chdir: @package, binmode: true) }
        [output.force_encoding(Encoding::UTF_8).scrub, status]
      ensure
        FileUtils.rm_rf([@copy, @bundle]) unless lambda_env&.isolated?
      end

      def boot_env(lambda_env)
        env = ENV.keys.grep(/\AMEGAMODE_|\A(DISABLE_)?BOOTSNAP_|\ADISABLE_BOOTSNAP\z/).to_h { |k| [k, nil] }
        env.merge(lambda_env.env).merge("MEGAMODE_TMP" => @tmp, "MEGAMODE_COPY_APP" => "always",
                  "MEGAMODE_BOOT_TIMEOUT" => BOOT_TIMEOUT.to_s, "RAILS_ENV" => "production",
                  "RACK_ENV" => "production", "DATABASE_URL" => ENV.fetch("DATABASE_URL", nil),
                  # The boot needs one to run in production; the app never sees it afterwards.
                  "SECRET_KEY_BASE" => ENV.fetch("SECRET_KEY_BASE", "megamode-build-bootsnap-#{"0" * 40}"))
      end

      # The build may run under `bundle exec` (rake megamode:build): the package's boot must not
      # inherit the app's own bundle settings.
      def unbundled(&block)
        defined?(::Bundler) ? ::Bundler.with_unbundled_env(&block) : block.call
      end

      def files_in(dir)
        Dir.glob("**/*", base: dir).count { |f| File.file?(File.join(dir, f)) }
      end

      def say(message)
        @say.call(message)
      end
    end
  end
end
