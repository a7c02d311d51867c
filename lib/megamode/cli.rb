# frozen_string_literal: true

module Megamode
  # `megamode COMMAND ...` (exe/megamode): hands each command to the part that owns it, loading
  # that part only when its command runs: `build` to the packager's CLI (Build::CLI); `invoke`,
  # `serve` and `events` to the local tools' (Local::CLI). `version` and help are its own. So
  # `megamode invoke` loads nothing of the packager, and `megamode build` nothing of the local
  # tools' CLI.
  class CLI
    LOCAL_COMMANDS = %w[invoke serve events].freeze

    # The usage text, put together from each part's own (each part's file is loaded for it, which
    # loads nothing else of that part until one of its commands runs).
    def self.usage
      require_relative "local/cli"
      require_relative "build/cli"
      "Usage:\n#{"#{Local::CLI::USAGE}#{Build::CLI::USAGE}megamode version\n".gsub(/^/, "  ")}"
    end

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
    end

    def run
      case (command = @argv.shift)
      when *LOCAL_COMMANDS
        require_relative "local/cli"
        Local::CLI.new(@argv, usage_error: method(:usage_error), out: @out, err: @err).run(command)
      when "build"
        require_relative "build/cli"
        Build::CLI.new(@argv, usage_error: method(:usage_error), out: @out, err: @err).run
      when "version", "--version", "-v"
        require_relative "version"
        @out.puts VERSION
        0
      when nil, "help", "--help", "-h"
        @out.puts self.class.usage
        command.nil? ? 2 : 0
      else
        usage_error("unknown command #{command.inspect}")
      end
    end

    private

    # What is wrong with the arguments, then the usage text, on stderr; the exit status, 2.
    def usage_error(message)
      @err.puts "megamode: #{message}"
      @err.puts self.class.usage
      2
    end
  end
end
