# frozen_string_literal: true

require "json"
require "rbconfig"
require_relative "errors"

module Megamode
  # What a package records of the Lambda runtime it was built for (megamode/target.json, written by
  # megamode build beside megamode/lib). Checked when megamode loads: a package built for another
  # Ruby or machine says so, instead of failing obscurely inside the app's server (Bundler finding
  # none of the gems laid out for another Ruby, an extension reading objects wrongly).
  #
  # The one definition of the record: its fields, writing it (`record` and `write`, which megamode
  # build calls), reading and checking it, and the two rules both sides apply, the Ruby ABI a Ruby
  # is (`abi`) and Lambda's name for a machine (`lambda_arch`). It ships in packages, so the
  # packager uses it, not the other way round.
  #
  # @api private
  module PackageTarget
    # Where the record is in a package.
    PATH = File.join("megamode", "target.json")
    # megamode/lib/megamode/runtime/ -> megamode/target.json; absent outside a package.
    FILE = File.expand_path("../../../target.json", __dir__)

    # Lambda's architectures, by the names a machine's CPU goes by (RbConfig's host_cpu).
    ARCHES = { "x86_64" => /\A(x86_64|amd64)\z/, "arm64" => /\A(aarch64|arm64)\z/ }.freeze

    module_function

    # The Ruby ABI of a Ruby version: its major.minor ("3.4" for 3.4.1). Gems are laid out and
    # extensions built for one, so it is what the record's "ruby" field holds and what a package's
    # Ruby must match.
    def abi(version = RUBY_VERSION)
      version[/\A\d+\.\d+/]
    end

    # Lambda's name for a machine's CPU (x86_64 or arm64), or nil for a machine Lambda does not have.
    def lambda_arch(cpu = RbConfig::CONFIG["host_cpu"])
      ARCHES.find { |_, pattern| cpu.to_s.match?(pattern) }&.first
    end

    # What megamode build records of a package's target. `runtime`: the Lambda runtime (for a local
    # package, the one its template names); `arch`: Lambda's architecture; `ruby`: the Ruby ABI the
    # package's gems are laid out and built for; `glibc`: the runtime's; `local`: a package for
    # local runs only, which runs where it was built (`built_with_ruby`, `built_on`); `megamode`:
    # the version that built it; `environment`: variables the package's gems need at boot (see
    # apply_environment).
    def record(runtime:, arch:, ruby:, glibc:, local:, megamode:, environment: {}, built_with_ruby: RUBY_VERSION,
               built_on: lambda_arch)
      { "runtime" => runtime, "arch" => arch, "ruby" => ruby, "ruby_abi" => "#{ruby}.0", "glibc" => glibc,
        "local" => local, "built_with_ruby" => built_with_ruby, "built_on" => built_on, "megamode" => megamode,
        "environment" => environment }
    end

    # Writes `record` into the package at `package` (see PATH), as JSON for people to read too.
    def write(package, record)
      File.write(File.join(package, PATH), "#{JSON.pretty_generate(record)}\n")
    end

    # The most a record megamode build writes can take (it writes a few hundred bytes).
    MAX_BYTES = 64 * 1024

    # What each field of the record must be, as [test, what belongs there]; the fields marked local
    # only in a local package's record.
    FIELDS = {
      "runtime" => [String, 'a runtime name such as "ruby3.4"'],
      "arch" => [String, '"x86_64" or "arm64"'],
      "ruby" => [/\A\d+\.\d+\z/, 'a Ruby version such as "3.4"'],
      "local" => [->(v) { [true, false].include?(v) }, "true or false"]
    }.freeze
    LOCAL_FIELDS = {
      "built_with_ruby" => [/\A\d+\.\d+/, 'a Ruby version such as "3.4.1"'],
      "built_on" => [String, '"x86_64" or "arm64"']
    }.freeze
    # Fields a record may go without, checked when it has them.
    OPTIONAL_FIELDS = {
      "environment" => [->(v) { environment?(v) }, "an object of variable names and string values"]
    }.freeze

    # Variables the package's gems need at boot, which megamode build recorded (a gem's switch to its
    # pure-Ruby fallback when its compiled part is not in the bundle, see Build::Fallbacks), set in
    # this process, and so in the app's server it starts, unless the function sets them itself.
    # Optional: a record without the field needs none.
    def apply_environment(target, env = ENV)
      (target["environment"] || {}).each { |name, value| env[name] = value unless env.key?(name) }
    end

    # A variable's name as the record may hold one, and its value: no `=` or NUL, which no
    # environment can carry.
    VARIABLE_NAME = /\A[A-Za-z_][A-Za-z0-9_]*\z/.freeze

    def environment?(value)
      value.is_a?(Hash) && value.all? { |k, v| k.match?(VARIABLE_NAME) && v.is_a?(String) && !v.include?("\0") }
    end

    # The package's target, or nil outside a package. Raises BootError when the running Ruby's
    # major.minor or machine is not the package's, and when the record is there but broken.
    def check!(path = FILE, ruby: RUBY_VERSION, cpu: RbConfig::CONFIG["host_cpu"])
      target = read(path) or return nil
      running = [abi(ruby), arch(cpu)]
      built = built_for(target)
      return target if built == running

      raise BootError, "this package was built for Ruby #{built[0]} on #{built[1]} " \
                       "(#{target["local"] ? "for local runs" : "Lambda's #{target["runtime"]}"}), and this is Ruby " \
                       "#{running[0]} on #{running[1]}: its gems and megamode's extension cannot run here. " \
                       "#{advice(target)}"
    end

    # The record at `path`, checked field by field; nil when there is none. A record that is there
    # but cannot be read or is not what megamode build writes refuses the boot (BootError) rather
    # than letting the package run unchecked: megamode build writes it whole beside megamode/lib,
    # so it is never legitimately broken, and a package whose record is damaged (or replaced) is
    # one whose gems and extension nothing vouches for. It is read as the regular file megamode
    # build writes, not through a link (to /dev/zero, a FIFO), and at most MAX_BYTES of it.
    def read(path)
      data = File.open(path, File::RDONLY | File::NOFOLLOW | File::NONBLOCK | File::BINARY) do |file|
        raise broken(path, "it is not a regular file (#{file.stat.ftype})") unless file.stat.file?

        file.read(MAX_BYTES + 1) || +""
      end
      raise broken(path, "it is larger than #{MAX_BYTES} bytes") if data.bytesize > MAX_BYTES

      validate(path, parse(path, data))
    rescue Errno::ENOENT
      nil
    rescue Errno::ELOOP
      raise broken(path, "it is a symbolic link, not the regular file megamode build writes")
    rescue SystemCallError, IOError => e
      raise broken(path, "it cannot be read (#{e.message})")
    end

    def parse(path, data)
      raise broken(path, "it is not UTF-8 text") unless data.force_encoding(Encoding::UTF_8).valid_encoding?

      JSON.parse(data)
    rescue JSON::ParserError => e
      raise broken(path, "it is not JSON (#{e.message.lines.first.to_s.strip[0, 200]})")
    end

    def validate(path, target)
      raise broken(path, "it holds #{describe(target)}, where an object belongs") unless target.is_a?(Hash)

      fields = FIELDS.merge(target["local"] == true ? LOCAL_FIELDS : {}).merge(OPTIONAL_FIELDS.slice(*target.keys))
      fields.each do |name, (test, wanted)|
        value = target.fetch(name) { raise broken(path, "its field #{name.inspect} is missing (it should be #{wanted})") }
        next if fits?(test, value)

        raise broken(path, "its field #{name.inspect} is #{describe(value)}, where #{wanted} belongs")
      end
      target
    end

    # Whether `value` passes `test` (a class, a pattern or a predicate); a string JSON decoded to
    # invalid UTF-8 (a lone surrogate escape) does not.
    def fits?(test, value)
      test === value
    rescue ArgumentError, EncodingError
      false
    end

    KINDS = { Integer => "a number", Float => "a number", String => "a string", Array => "an array",
              Hash => "an object", TrueClass => "a boolean", FalseClass => "a boolean" }.freeze

    # A value from the record as JSON, shortened, with its kind: 3.3 (a number).
    def describe(value)
      shown = JSON.generate(value)
      shown = "#{shown[0, 60]}..." if shown.length > 60
      KINDS[value.class] ? "#{shown} (#{KINDS[value.class]})" : shown
    end

    def broken(path, what)
      BootError.new("this package's record of what it was built for (#{path}) is broken: #{what}. megamode " \
                    "cannot tell whether the package's gems and extension run on this Ruby, so it does not start. " \
                    "Build the package again with megamode build (megamode build --local for a local package), " \
                    "and deploy it as built.")
    end

    # The Ruby (major.minor) and machine the package's gems and extension were built for. A local
    # package runs where it was built, whatever Lambda runtime its template names.
    def built_for(target)
      return [target["ruby"], target["arch"]] unless target["local"]

      [abi(target["built_with_ruby"]), target["built_on"]]
    end

    def advice(target)
      if target["local"]
        "Build it again with the Ruby that runs it (megamode build --local)"
      else
        "Give the function the runtime and architecture the package was built for, or build it again for the " \
          "one it runs on (megamode build --runtime RUNTIME --arch ARCH, in Lambda's build image with --container)"
      end
    end

    # Lambda's name for a machine (x86_64 or arm64), else the CPU's own, to name it in a message.
    def arch(cpu)
      lambda_arch(cpu) || cpu.to_s
    end
  end
end
