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
  # @api private
  module PackageTarget
    # megamode/lib/megamode/ -> megamode/target.json; absent outside a package.
    FILE = File.expand_path("../../target.json", __dir__)

    module_function

    # The package's target, or nil outside a package. Raises BootError when the running Ruby's
    # major.minor or machine is not the package's.
    def check!(path = FILE, ruby: RUBY_VERSION, cpu: RbConfig::CONFIG["host_cpu"])
      return nil unless File.file?(path)

      target = JSON.parse(File.read(path))
      running = [ruby[/\A\d+\.\d+/], arch(cpu)]
      built = built_for(target, running)
      return target if built == running

      raise BootError, "this package was built for Ruby #{built[0]} on #{built[1]} " \
                       "(#{target["local"] ? "for local runs" : "Lambda's #{target["runtime"]}"}), and this is Ruby " \
                       "#{running[0]} on #{running[1]}: its gems and megamode's extension cannot run here. " \
                       "#{advice(target)}"
    rescue JSON::ParserError, SystemCallError => e
      warn "megamode: cannot read the package's target (#{path}): #{e.message}"
      nil
    end

    # The Ruby (major.minor) and machine the package's gems and extension were built for. A local
    # package runs where it was built, whatever Lambda runtime its template names.
    def built_for(target, running)
      return [target["ruby"], target["arch"]] unless target["local"]

      [target["built_with_ruby"].to_s[/\A\d+\.\d+/] || target["ruby"], target["built_on"] || running[1]]
    end

    def advice(target)
      if target["local"]
        "Build it again with the Ruby that runs it (megamode build --local)"
      else
        "Give the function the runtime and architecture the package was built for, or build it again for the " \
          "one it runs on (megamode build --runtime RUNTIME --arch ARCH, in Lambda's build image with --container)"
      end
    end

    # Lambda's name for a machine: x86_64 or arm64.
    def arch(cpu)
      case cpu.to_s
      when /\A(x86_64|amd64)\z/ then "x86_64"
      when /\A(aarch64|arm64)\z/ then "arm64"
      else cpu.to_s
      end
    end
  end
end
