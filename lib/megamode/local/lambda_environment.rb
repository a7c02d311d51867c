# frozen_string_literal: true

require "etc"
require "rbconfig"
require "shellwords"
require_relative "../local"
require_relative "identity"
require_relative "host_gems"

module Megamode::Local
  # The process a package runs in locally, as close to Lambda's as this machine allows: Lambda's
  # environment variables, the package as the task root and working directory and, as root, a
  # private mount namespace where the package is read-only and MEGAMODE_TMP is a fresh tmpfs of
  # Lambda's default 512 MB (so every run starts cold, as a new execution environment does), and
  # where this machine's gem directories are hidden (HostGems): Lambda's Ruby has its own default
  # and bundled gems, and everything else comes from the package.
  class LambdaEnvironment
    # The Lambda runtime this Ruby stands in for. Its major.minor is PackageTarget.abi's rule, written
    # out here rather than loaded: a local tool loads nothing else of megamode (ARCHITECTURE.md), so
    # that a handler process, which loads the local tools, only ever has the package's own megamode.
    RUNTIME = "ruby#{RUBY_VERSION[/\A\d+\.\d+/]}".freeze
    # What the developer's shell may carry that Lambda's handler process would not have (and every
    # BUNDLE_* and BUNDLER_* variable). HOME too: Lambda's sandbox has no writable home.
    CLEARED = %w[BUNDLE_GEMFILE BUNDLE_PATH BUNDLE_BIN_PATH BUNDLER_SETUP BUNDLER_VERSION RUBYOPT RUBYLIB
                 GEM_HOME GEM_PATH GEM_SPEC_CACHE GEMRC RUBYGEMS_GEMDEPS HOME MEGAMODE_APP_ROOT
                 MEGAMODE_BUNDLE].freeze

    # Where a multiarch system (Debian, Ubuntu) keeps its libraries, where it has them.
    MULTIARCH_DIRS = %w[/lib /usr/lib].map { |d| "#{d}/#{RbConfig::CONFIG["host_cpu"]}-linux-gnu" }
                                      .select { |d| File.directory?(d) }.freeze

    # The script of the handler process that runs every local invocation: a process of its own, so
    # it lives in exe/ (shipped with the gem, not installed as a command).
    HANDLER_PROCESS = File.expand_path("../../../exe/megamode-handler-process", __dir__)

    attr_reader :tmp

    # megamode's own directory (the gem's, or the checkout): the handler process and the local
    # tools come from it, as Lambda's runtime client comes from /var/runtime.
    OWN_ROOT = File.expand_path("../../..", __dir__)

    # `tmp`: MEGAMODE_TMP (by default the environment's, else megamode's default).
    def initialize(package, tmp_size: "512m", host_gems: nil, tmp: ENV.fetch("MEGAMODE_TMP", "/tmp/megamode"))
      @package = package
      # Absolute: the mounts are made from within the package's directory.
      @tmp = File.expand_path(tmp)
      @tmp_size = tmp_size
      @host_gems = host_gems || HostGems.new(keep: [@package, OWN_ROOT], protect: [@tmp])
    end

    # The gem directories this machine has and Lambda's Ruby would not (see HostGems).
    def hidden
      @host_gems.hidden
    end

    # Whether the run gets its own mounts: as root, where a mount namespace can be made. Root in a
    # container (`megamode build --container` as root, whose boot check runs here) usually cannot:
    # the engine withholds CAP_SYS_ADMIN, and `unshare` is there but fails.
    def isolated?
      Process.euid.zero? && self.class.unshare?
    end

    # Whether `unshare --mount` works here, asked once per process.
    def self.unshare?
      return @unshare if defined?(@unshare)

      @unshare = system("unshare", "--mount", "true", out: File::NULL, err: File::NULL) ? true : false
    end

    # Who runs the function: Lambda runs it as a user that owns nothing in /var/task, so a file only
    # its owner may read fails there. As root, megamode runs it as `nobody` too, when that user can
    # reach everything the run needs (the package, MEGAMODE_TMP's directory, megamode's own files
    # and Ruby's); else as root, saying so. Without root it runs as whoever runs megamode.
    FUNCTION_USER = "nobody"

    # [uid, gid] of the function user, or nil when the function runs as the caller.
    def function_user
      return @function_user if defined?(@function_user)

      @function_user = (user_ids if isolated? && unreachable.empty? &&
                                    system("setpriv --help", out: File::NULL, err: File::NULL))
    end

    # The paths the function user could not reach (a directory on the way without search permission
    # for others, or the path itself not readable by others).
    def unreachable
      @unreachable ||= [@package, tmp_parent, OWN_ROOT, RbConfig::CONFIG["prefix"]]
                       .uniq.reject { |path| reachable_by_others?(path) }
    end

    # What is not like Lambda here.
    def limits
      unless isolated?
        where = Process.euid.zero? ? "where no mount namespace can be made (unshare --mount fails)" : "without root"
        return "not simulated #{where}: a read-only task root, a fresh, size-limited #{@tmp}, and this " \
               "machine's gem directories hidden (the app may load gems the package lacks)"
      end
      return nil if function_user

      why = if unreachable.empty? then "there is no #{FUNCTION_USER} user or no setpriv here"
            else "#{FUNCTION_USER} cannot reach #{unreachable.join(", ")} (give other users search permission on " \
                 "the directories above them)"
            end
      "the function runs as root here, not as a user that owns nothing as on Lambda: #{why}"
    end

    # The handler process's environment. Lambda's Ruby runtime sets GEM_PATH to the task root's
    # vendor/bundle and the layers' gems (/var/task/vendor/bundle/ruby/3.3.0:/opt/ruby/gems/3.3.0:
    # /var/runtime:...) and RUBYLIB to /var/task (then its own lib and the layers' ruby/lib): here,
    # where this machine's gems are hidden, the package's and nothing else (no layers locally;
    # megamode's own tools are not the app's). Without root, GEM_PATH stays the developer's, as the
    # gems the handler's Ruby comes with are then where they are.
    def env
      vars = (CLEARED + ENV.keys.grep(/\ABUNDLER?_/)).to_h { |name| [name, nil] }
      if isolated?
        abi = RbConfig::CONFIG["ruby_version"]
        vars.merge!("GEM_PATH" => File.join(@package, "vendor", "bundle", "ruby", abi), "RUBYLIB" => @package)
      else
        vars.delete("GEM_PATH")
      end
      vars.merge(
        "LAMBDA_TASK_ROOT" => @package, "_HANDLER" => "handler.handler",
        "AWS_EXECUTION_ENV" => "AWS_Lambda_#{RUNTIME}", "AWS_LAMBDA_FUNCTION_NAME" => Identity::FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION" => Identity::FUNCTION_VERSION,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Identity::MEMORY_MB.to_s,
        "AWS_LAMBDA_INITIALIZATION_TYPE" => ENV.fetch("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        "AWS_LAMBDA_LOG_GROUP_NAME" => Identity.log_group, "AWS_LAMBDA_LOG_STREAM_NAME" => Identity.log_stream,
        "AWS_REGION" => Identity::REGION, "AWS_DEFAULT_REGION" => Identity::REGION, "TZ" => ":UTC",
        "LANG" => "en_US.UTF-8",
        # This Ruby's directory first, as Lambda has /var/lang/bin: the native loop's exec wrapper
        # runs `ruby` by name, and must get the Ruby the handler mode runs.
        "PATH" => [RbConfig::CONFIG["bindir"], ENV.fetch("PATH", "")].join(File::PATH_SEPARATOR),
        # Lambda's (/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:
        # /var/task/lib:/opt/lib), with this Ruby's libdir and the package for /var/lang/lib and
        # /var/task: the libraries `megamode build` ships in the package's lib/ are found there,
        # after the system's, as on Lambda (where they are in /lib64 and /usr/lib64; a Debian keeps
        # them in its multiarch directories, listed with those).
        "LD_LIBRARY_PATH" => [RbConfig::CONFIG["libdir"], "/lib64", "/usr/lib64", *MULTIARCH_DIRS, @package,
                              File.join(@package, "lib")].join(File::PATH_SEPARATOR),
        "MEGAMODE_TMP" => @tmp
      )
    end

    # The command that runs `argv` in this environment: a Ruby script and its arguments, or with
    # `ruby: false` a command of its own.
    def command(argv, ruby: true)
      command = ruby ? [RbConfig.ruby, *argv] : argv
      return command unless isolated?

      # $1: the package, $2: the tmpfs's mount point, the rest: the command. The host's gem
      # directories get an empty, read-only tmpfs each; a directory to keep below one of them
      # (megamode's own, when the gem is installed there) is bound to a place in the new tmpfs
      # first, then moved back to its path once its parent is hidden.
      hidden = self.hidden
      kept = @host_gems.kept
      setup = <<~SH
        set -e
        mkdir -p "$2"
        mount -t tmpfs -o size=#{@tmp_size},mode=1777 megamode-tmp "$2"
        keep="$2/.megamode-keep"
        i=0
        for dir in #{kept.shelljoin}; do
          mkdir -p "$keep/$i"; mount --rbind "$dir" "$keep/$i"; i=$((i + 1))
        done
        for dir in #{hidden.shelljoin}; do
          mount -t tmpfs -o size=64k,mode=0755 megamode-hidden "$dir"
        done
        i=0
        for dir in #{kept.shelljoin}; do
          mkdir -p "$dir"; mount --move "$keep/$i" "$dir"; i=$((i + 1))
        done
        rm -rf "$keep"
        for dir in #{hidden.shelljoin}; do
          mount -o remount,ro "$dir"
        done
        mount --bind "$1" "$1"
        mount -o remount,bind,ro "$1"
        shift 2
        #{function_user ? "exec setpriv --reuid=#{function_user[0]} --regid=#{function_user[1]} --clear-groups --no-new-privs -- \"$@\"" : 'exec "$@"'}
      SH
      ["unshare", "--mount", "--propagation", "private", "bash", "-c", setup, "megamode", @package, @tmp, *command]
    end

    private

    # The directory MEGAMODE_TMP is made in: the nearest that exists (the mount script makes the rest,
    # as root, open to all).
    def tmp_parent
      dir = File.dirname(@tmp)
      dir = File.dirname(dir) until File.exist?(dir) || dir == "/"
      dir
    end

    def user_ids
      user = Etc.getpwnam(FUNCTION_USER)
      [user.uid, user.gid]
    rescue ArgumentError
      nil
    end

    # Whether a user other than the owner and its group may open `path` (a directory: list and
    # enter it; a file: read it) and pass through every directory above it.
    def reachable_by_others?(path)
      # Where it really is: every directory on the way to a link's target counts too.
      path = File.realpath(path)
      stat = File.stat(path)
      own = stat.directory? ? 0o005 : 0o004
      return false unless (stat.mode & own) == own

      dir = File.dirname(path)
      loop do
        return false unless File.stat(dir).mode.anybits?(0o001)
        break if dir == "/"

        dir = File.dirname(dir)
      end
      true
    rescue SystemCallError
      false
    end

    public

    # [environment, command] of the handler process (exe/megamode-handler-process) for `kind`: an
    # app directory (as it is), a package (in this environment, saying on `log` what is not
    # simulated) or a package's native loop (the handler process puts the loop in this environment).
    # For an image (`image` and `image-native`, DIR its tag), the handler process only runs the
    # container engine (MEGAMODE_CONTAINER_ENGINE, which the caller sets to the one that runs).
    # `snap_start` (`--snapstart`): the function's init is SnapStart's
    # (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start), and its snapshot is restored after `restore_after`
    # seconds of freeze (Invoke::NativeLoop).
    def self.handler_process(kind, dir, timeout, log:, stream: false, snap_start: false, restore_after: 0)
      argv = [HANDLER_PROCESS, kind, dir, timeout.to_s, *("stream" if stream),
              *("restore-after=#{restore_after}" if restore_after.positive?)]
      snap = snap_start ? { "AWS_LAMBDA_INITIALIZATION_TYPE" => "snap-start" } : {}
      return [snap, [RbConfig.ruby, *argv]] if IMAGE_KINDS.include?(kind)
      return [app_env(dir, log).merge(snap), [RbConfig.ruby, *argv]] unless kind == "package"

      environment = new(dir)
      log.puts "megamode: #{environment.limits}" if environment.limits
      [environment.env.merge(snap), environment.command(argv)]
    end

    # The kinds that run an image, whose DIR is the image's tag.
    IMAGE_KINDS = %w[image image-native].freeze

    # Where the handler process of `kind` runs: the app or package, or for an image, here.
    def self.workdir(kind, dir)
      IMAGE_KINDS.include?(kind) ? Dir.pwd : dir
    end

    # The file that sets a Rails app directory up as its package would (Megamode::Rails.configure:
    # the stage prefix in links, hosts, public/, logs), which the app's server loads first.
    RAILS_LOCAL_RUN = File.expand_path("rails_local_run.rb", __dir__)

    # The handler process's environment for an app directory: the developer's, with RUBYOPT
    # requiring RAILS_LOCAL_RUN, which the app's server inherits (it does nothing in this process, nor
    # in a server that is not a Rails app's). RUBYOPT splits on spaces: a megamode in a path with one
    # cannot be given, and a Rails app then runs as it is, which `log` is told.
    def self.app_env(dir, log)
      if RAILS_LOCAL_RUN.match?(/\s/)
        return {} unless File.file?(File.join(dir, "config", "application.rb"))

        log.puts "megamode: a Rails app runs here without megamode's Rails adapter (links without the " \
                 "stage, no execute-api hosts, ...) as its package would not: megamode is in a path with a " \
                 "space (#{File.dirname(RAILS_LOCAL_RUN, 3)}), which RUBYOPT cannot carry; install it elsewhere"
        return {}
      end
      { "RUBYOPT" => [ENV.fetch("RUBYOPT", nil), "-r#{RAILS_LOCAL_RUN}"].compact.join(" ") }
    end
  end
end
