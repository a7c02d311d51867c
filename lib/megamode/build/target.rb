# frozen_string_literal: true

require "rbconfig"
require_relative "../runtime/package_target"

module Megamode
  class Build
    # What a package is built for: a Lambda Ruby runtime on an architecture, or local runs only.
    #
    # A Lambda target (`--runtime`, or by default the build Ruby's own version when Lambda offers
    # it) is verified: the build Ruby must be the runtime's Ruby, and every native file must run
    # on the runtime's system with only what it has and what the package ships. A local target
    # (`--local`, or by default on a Ruby Lambda does not offer) is verified against the same
    # system, and what is found is reported, not enforced.
    class Target
      # Lambda's Ruby runtimes that can be created (2026): all on Amazon Linux 2023, with upstream
      # Ruby under /var/lang (a shared libruby, soname libruby.so.X.Y). ruby3.2 (Amazon Linux 2,
      # glibc 2.26) can no longer be created.
      RUNTIMES = { "ruby3.3" => "3.3", "ruby3.4" => "3.4", "ruby4.0" => "4.0" }.freeze
      # e_machine and the dynamic loader of each architecture Lambda offers (PackageTarget::ARCHES
      # names them, from a machine's CPU).
      ARCHES = {
        "x86_64" => { machine: 62, loader: "ld-linux-x86-64.so.2" },
        "arm64" => { machine: 183, loader: "ld-linux-aarch64.so.1" }
      }.freeze
      # Amazon Linux 2023's glibc.
      GLIBC = "2.34"
      GLIBC_LIBRARIES = %w[
        libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2 libutil.so.1 libanl.so.1
        libnsl.so.1 libmvec.so.1 libBrokenLocale.so.1 libthread_db.so.1 libc_malloc_debug.so.0
        libnss_files.so.2 libnss_dns.so.2
      ].freeze
      # The shared libraries of Lambda's Amazon Linux 2023 base image, beside glibc's, that a native
      # file may need without the package shipping them. The one list the build checks against.
      #
      # Only what is proven there: a library listed here that the image lacks fails at cold start
      # (`cannot open shared object file`), one left out only costs a copy in the package (the build
      # ships what this machine has, with what it needs in turn). Proven, for the ruby3.x images:
      # - OpenSSL 3 (libssl.so.3, libcrypto.so.3) and libgcrypt (libgcrypt.so.20, with the
      #   libgpg-error.so.0 it links): read in the image's package list by the audit of issue 26;
      # - zlib (libz.so.1) and libffi (libffi.so.8): Lambda's Ruby under /var/lang loads them itself
      #   (its zlib and fiddle extensions), from the image or from /var/lang/lib, both on the loader's
      #   path; libgcc_s.so.1: glibc itself loads it (thread cancellation, backtraces).
      # Earlier lists (libxml2, SQLite, libstdc++, curl, glib and others, read from the package lists
      # of the python and nodejs images, in part) are not proven for Ruby's: packages carry them.
      # Known absent: libxcrypt (libcrypt.so.*: github.com/aws/aws-lambda-base-images/issues/137),
      # libyaml and every -devel package.
      BASE_IMAGE_LIBRARIES = %w[
        libgcc_s.so.1 libz.so.1 libffi.so.8
        libssl.so.3 libcrypto.so.3
        libgcrypt.so.20 libgpg-error.so.0
      ].freeze
      # A distribution's libruby soname (Debian's libruby-3.1.so.3.1, Fedora's the same form): Lambda's
      # upstream Ruby is libruby.so.3.3, so an extension linked against a distribution's cannot load.
      DISTRIBUTION_LIBRUBY = /\Alibruby-\d+\.\d+\.so/.freeze
      UPSTREAM_LIBRUBY = /\Alibruby\.so\.(\d+\.\d+)/.freeze

      attr_reader :runtime, :arch, :ruby

      class << self
        # The target for the options given (nil when not given) and the build Ruby; raises
        # BuildError for values Lambda does not have. The second value is the warning to give when
        # the build falls back to a local package.
        def resolve(runtime: nil, arch: nil, local: false, build_ruby: RUBY_VERSION,
                    host_cpu: RbConfig::CONFIG["host_cpu"], libruby: RbConfig::CONFIG["LIBRUBY_SO"],
                    shared: RbConfig::CONFIG["ENABLE_SHARED"] == "yes")
          check_runtime!(runtime) if runtime
          check_arch!(arch) if arch
          arch ||= PackageTarget.lambda_arch(host_cpu) || "x86_64"
          minor = PackageTarget.abi(build_ruby)
          if local
            ruby = runtime ? RUNTIMES[runtime] : minor
            return [new(runtime: runtime || nearest_runtime(minor), arch: arch, ruby: ruby, local: true), nil]
          end
          return [new(runtime: runtime, arch: arch), nil] if runtime

          offered = RUNTIMES.key(minor)
          distribution = shared && libruby.to_s.match?(DISTRIBUTION_LIBRUBY)
          return [new(runtime: offered, arch: arch), nil] if offered && !distribution

          target = new(runtime: nearest_runtime(minor), arch: arch, ruby: minor, local: true)
          [target, fallback_warning(build_ruby, minor, offered, offered && distribution ? libruby : nil)]
        end

        # For a local package, the runtime its template names: the build Ruby's, else the oldest
        # Lambda offers above it, else the newest.
        def nearest_runtime(minor)
          versions = RUNTIMES.to_a.sort_by { |_, v| Gem::Version.new(v) }
          (versions.find { |_, v| Gem::Version.new(v) >= Gem::Version.new(minor) } || versions.last).first
        end

        private

        def check_runtime!(runtime)
          return if RUNTIMES.key?(runtime)

          raise BuildError, "#{runtime.inspect} is not a Lambda Ruby runtime megamode builds for: give one of " \
                            "#{RUNTIMES.keys.join(", ")} (ruby3.2 functions can no longer be created)"
        end

        def check_arch!(arch)
          return if ARCHES.key?(arch)

          raise BuildError, "#{arch.inspect} is not a Lambda architecture: give x86_64 or arm64"
        end

        def fallback_warning(build_ruby, minor, offered, distribution_libruby)
          runtime = offered || nearest_runtime(minor)
          why =
            if distribution_libruby
              "this build runs a distribution's Ruby #{build_ruby} (#{distribution_libruby}), whose native " \
                "extensions cannot load in Lambda's upstream Ruby"
            else
              "this build runs Ruby #{build_ruby}, which Lambda does not offer (#{RUNTIMES.keys.join(", ")})"
            end
          "#{why}: the package is for local runs only (as with --local). For a package to deploy, build " \
            "with Lambda's Ruby for the runtime, e.g. in the SAM build image public.ecr.aws/sam/build-#{runtime}: " \
            "megamode build --runtime #{runtime}"
        end
      end

      # `runtime`: the Lambda runtime (for a local package, the one its template names); `ruby`: the
      # Ruby major.minor the package's gems are laid out and built for.
      def initialize(runtime:, arch:, ruby: nil, local: false)
        @runtime = runtime
        @arch = arch
        @ruby = ruby || RUNTIMES.fetch(runtime)
        @local = local
      end

      def local?
        @local
      end

      # The Ruby of the Lambda runtime (for a local package's runtime, what it would need).
      def runtime_ruby
        RUNTIMES.fetch(@runtime)
      end

      def machine
        ARCHES.fetch(@arch)[:machine]
      end

      def machine_name
        Elf.machine_name(machine)
      end

      # "ruby3.3 (x86_64)", or "local (Ruby 3.1, x86_64)".
      def to_s
        local? ? "local (Ruby #{@ruby}, #{@arch})" : "#{@runtime} (#{@arch})"
      end

      # The soname of the target Ruby's shared library.
      def libruby
        "libruby.so.#{@ruby}"
      end

      # Whether the runtime has the library `soname` without the package shipping it.
      def provides?(soname)
        GLIBC_LIBRARIES.include?(soname) || BASE_IMAGE_LIBRARIES.include?(soname) || soname == libruby ||
          ARCHES.values.any? { |a| a[:loader] == soname && a[:machine] == machine }
      end

      # Whether a glibc version ([2, 35] or "2.35") is newer than the target's.
      def glibc_too_old_for?(version)
        version = version.split(".").map(&:to_i) if version.is_a?(String)
        (version <=> GLIBC.split(".").map(&:to_i)).positive?
      end

      # What the package records of its target (megamode/target.json, PackageTarget.record).
      # `environment`: variables the package's gems need at boot (see Fallbacks), which the runtime
      # sets unless the function does.
      def to_h(version:, build_ruby: RUBY_VERSION, environment: {})
        PackageTarget.record(runtime: @runtime, arch: @arch, ruby: @ruby, glibc: GLIBC, local: local?,
                             megamode: version, environment: environment, built_with_ruby: build_ruby)
      end
    end
  end
end
