# frozen_string_literal: true

module Megamode
  class Build
    # Why the package's boot at build time failed, read from that boot's output: the app's own
    # failure line, which leads what the build says, and what to do about the causes megamode can
    # recognise. The output is the handler process's: megamode's lines, and the app server's, each
    # with its log prefix (`Rails: `, `Rack: `).
    class BootFailure
      # A line of the app server's output, with its prefix.
      PREFIX = /\A(?:Rails|Rack): /.freeze
      # Rails' own (puma's, for Rails): `! Unable to load application: SyntaxError: ...`.
      RAILS = /\A!?\s*(Unable to load application: .*)\z/.freeze
      # The first line of an exception Ruby prints: `file:line:in 'm': message (Class)` (Ruby 3.4
      # quotes with ' and names Class#m, earlier Rubies with `).
      EXCEPTION = /\A\S+:\d+:in [`'][^']*': .* \([A-Z]\w*(?:::[A-Z]\w*)*\)\z/.freeze
      # What a SyntaxError prints below its line: the code and a caret (parse.y: `... code ...` and
      # `^~~`; Prism, Ruby 3.4's parser, whose first line says only "syntax errors found": numbered
      # code lines, `> 4 | code`, and the message under a caret, `    |  ^ unexpected ...`).
      SNIPPET = /\A\s*(?:\.\.\.|\^|>?\s*\d+ \||\|)/.freeze
      # How many of those lines the build shows (Prism quotes a few lines around the error).
      SNIPPET_LINES = 8
      # A line of a backtrace.
      FRAME = /\A\s+from /.freeze
      # ENV.fetch's KeyError for a variable that is not set.
      MISSING_VARIABLE = /key not found: "([A-Za-z_][A-Za-z0-9_]*)"/.freeze
      # Rails, when the app reads its credentials and has no key to decrypt them with.
      MISSING_MASTER_KEY = /Missing encryption key to decrypt|ActiveSupport::MessageEncryptor::InvalidMessage/.freeze

      attr_reader :line, :output

      # `output`: the boot's output; `app`: where the boot copied the app, named relative to the app
      # in what the build says; `env`: the environment the boot had.
      def initialize(output, app:, env: ENV)
        @output = output
        @app = app
        @env = env
        @lines = output.lines.map { |l| l.chomp.sub(PREFIX, "") }
        @line = find_line
      end

      # What to do about a cause megamode recognises (nil for any other).
      def hint
        if (name = @line[MISSING_VARIABLE, 1]) && name.match?(/\A[A-Z][A-Z0-9_]*\z/) && !@env.key?(name)
          "#{name} is not set, and the app reads it while booting (ENV.fetch): set it for the build, which boots " \
            "the app with this shell's environment (#{name}=... megamode build), and for the function on Lambda " \
            "(in template.yaml, under the function's Environment: Variables)"
        elsif @lines.any? { |l| l.match?(MISSING_MASTER_KEY) }
          "The app needs its master key to boot, and the package leaves config/master.key out: give the " \
            "key as RAILS_MASTER_KEY to the build (RAILS_MASTER_KEY=$(cat config/master.key) megamode build) and " \
            "on Lambda (the template's RailsMasterKey parameter)"
        end
      end

      # The boot's last lines but the stack frames, for the log: up to megamode's own BootError,
      # which repeats them.
      def tail(count = 15)
        own = @lines.index { |l| l.include?("(Megamode::BootError)") } || @lines.size
        @lines.take(own).reject { |l| l.strip.empty? || l.match?(FRAME) }.last(count).map { |l| relative(l) }
      end

      private

      # Rails' line first (with the exception's first line under it when that names a file of the
      # app: Rails' says only the exception), else the first exception line, else the last line
      # that is not a frame.
      def find_line
        index = @lines.index { |l| l.match?(RAILS) }
        if index
          line = with_snippet(index, @lines[index][RAILS, 1])
          # What the app said before it exited: Rails' missing master key (on stderr, which may come
          # before or after puma's line), else the line after.
          if line.end_with?("SystemExit: exit")
            said = @lines.find { |l| l.match?(MISSING_MASTER_KEY) } || @lines[index + 1]
            line = "#{line}\n  #{relative(said)}" if said && !said.strip.empty? && !said.match?(FRAME)
          end
          where = @lines.map { |l| relative(l) }.find { |l| l.match?(EXCEPTION) && !l.start_with?("/") }
          return where ? "#{line}\n  #{where}" : line
        end

        index = @lines.index { |l| l.match?(EXCEPTION) }
        return with_snippet(index, @lines[index]) if index

        relative(@lines.reject { |l| l.strip.empty? || l.match?(FRAME) }.last || "the boot said nothing")
      end

      # The line, with the code and caret a SyntaxError prints under it.
      def with_snippet(index, line)
        snippet = @lines.drop(index + 1).take(SNIPPET_LINES).take_while { |l| l.match?(SNIPPET) }
        relative([line, *snippet].join("\n  "))
      end

      # The copied app's paths as the app's own (config/routes.rb:4).
      def relative(text)
        text.gsub("#{@app}/", "")
      end
    end
  end
end
