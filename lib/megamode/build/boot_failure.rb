# frozen_string_literal: true

module Megamode
  class Build
    # Why the package's boot at build time failed, read from that boot's output by the core's rule
    # (`supervisor::cause`, through Native.boot_cause): the line Lambda's error for it would lead
    # with, which leads what the build says, and what the app needs for the causes megamode
    # recognises, which the build words for itself. The output is the handler process's:
    # megamode's lines, and the app server's, each with its log prefix (`Rails: `, `Rack: `).
    class BootFailure
      # A line of the app server's output, with its prefix.
      PREFIX = /\A(?:Rails|Rack): /.freeze
      # A line of a backtrace.
      FRAME = /\A\s+from /.freeze
      MASTER_KEY = "The app needs its master key to boot, and the package leaves config/master.key out: give the " \
                   "key as RAILS_MASTER_KEY to the build (RAILS_MASTER_KEY=$(cat config/master.key) megamode build) " \
                   "and on Lambda (the template's RailsMasterKey parameter)"

      attr_reader :line, :output

      # `output`: the boot's output; `app`: where the boot copied the app, named relative to the app
      # in what the build says; `env`: the environment the boot had.
      def initialize(output, app:, env: ENV)
        # The core reads it; loaded here, not with the build, which in a container needs nothing
        # compiled on this machine.
        require_relative "../runtime/native"
        @output = output
        @app = app
        @env = env
        @lines = output.lines.map { |l| l.chomp.sub(PREFIX, "") }
        @cause = Native.boot_cause(@lines, app)
        # The cause's further lines (a syntax error's code) indented under it, as the build's log
        # indents what follows its first line.
        @line = @cause ? @cause["line"].gsub("\n", "\n  ") : last_line
      end

      # What to do about a cause megamode recognises (nil for any other). The build boots with this
      # shell's environment, so it says to set what is missing here and on Lambda both.
      def hint
        case @cause&.fetch("need")
        when "variable"
          name = @cause["variable"]
          return lambda_advice if @env.key?(name)

          "#{name} is not set, and the app reads it while booting (ENV.fetch): set it for the build, which boots " \
            "the app with this shell's environment (#{name}=... megamode build), and for the function on Lambda " \
            "(in template.yaml, under the function's Environment: Variables)"
        when "master_key", "right_master_key" then MASTER_KEY
        else lambda_advice
        end
      end

      # The boot's last lines but the stack frames, for the log: up to megamode's own BootError,
      # which repeats them.
      def tail(count = 15)
        own = @lines.index { |l| l.include?("(Megamode::BootError)") } || @lines.size
        @lines.take(own).reject { |l| l.strip.empty? || l.match?(FRAME) }.last(count).map { |l| relative(l) }
      end

      private

      # The core's advice, for a cause the build words nothing of its own for.
      def lambda_advice
        "On Lambda: #{@cause["advice"]}" if @cause&.fetch("advice")
      end

      # When the core finds no cause: the last line that is not a frame.
      def last_line
        relative(@lines.reject { |l| l.strip.empty? || l.match?(FRAME) }.last || "the boot said nothing")
      end

      # The copied app's paths as the app's own (config/routes.rb:4).
      def relative(text)
        text.gsub("#{@app}/", "")
      end
    end
  end
end
