# frozen_string_literal: true

require "ripper"

module Megamode
  class Build
    # Gemfile rewriting on the package's copy: `ruby` declarations pin a Ruby that need not be the
    # function's, so each one is commented out with a marker; the Rails adapter is added where the
    # app lacks it. Works on the tokens Ruby itself reads, so every form (`ruby "3.3.0"`,
    # `ruby '~> 3.2'`, `ruby file: ".ruby-version"`, `ruby(...)` over several lines, with `engine:`)
    # is found, and nothing else is touched.
    class Gemfile
      MARKER = "# megamode: "
      # Rails apps load the adapter through Bundler.require; other apps require what they use
      # (`require "megamode/rack/prefix"` in config.ru).
      ADAPTER = 'gem "megamode", "%<version>s", require: %<require>s'
      OPENERS = %i[on_lparen on_lbracket on_lbrace on_tlambeg on_embexpr_beg].freeze
      CLOSERS = %i[on_rparen on_rbracket on_rbrace on_embexpr_end].freeze
      # Tokens after which a `ruby` identifier starts a statement.
      STATEMENT_START = %i[on_nl on_ignored_nl on_semicolon on_comment].freeze
      STATEMENT_KEYWORDS = %w[then do else begin].freeze

      attr_reader :text, :commented

      def initialize(text, path: "Gemfile")
        @path = path
        @text = text
        @commented = []
        check_syntax!
      end

      # Comments out every `ruby` declaration; returns the line numbers it changed.
      def comment_ruby_declarations!
        lines = @text.lines
        declarations.each do |first, last|
          (first..last).each do |n|
            line = lines[n - 1]
            indent = line[/\A\s*/]
            lines[n - 1] = "#{indent}#{MARKER}#{line.delete_prefix(indent)}"
            @commented << n
          end
        end
        @text = lines.join
        @commented
      end

      def declares?(gem_name)
        Ripper.lex(@text).each_cons(4).any? do |(_, t1, s1), (_, t2, _), (_, t3, _), (_, t4, s4)|
          t1 == :on_ident && s1 == "gem" && %i[on_sp on_lparen].include?(t2) &&
            t3 == :on_tstring_beg && t4 == :on_tstring_content && s4 == gem_name
        end
      end

      def self.adapter_line(version, rails:)
        format(ADAPTER, version: version, require: rails ? '"megamode/rails"' : "false")
      end

      def add_adapter!(version, rails:)
        return false if declares?("megamode")

        @text = "#{@text.chomp}\n\n# Added by megamode build: megamode's adapters (pure Ruby, loaded inside the app).\n" \
                "#{self.class.adapter_line(version, rails: rails)}\n"
        true
      end

      private

      def check_syntax!
        return unless Ripper.sexp(@text).nil?

        begin
          RubyVM::InstructionSequence.compile(@text, @path)
          detail = "Ruby cannot parse it"
        rescue SyntaxError => e
          detail = e.message.lines.first.to_s.strip
        end
        line = detail[/#{Regexp.escape(@path)}:(\d+)/o, 1]
        where = line ? "line #{line}" : "somewhere"
        raise BuildError, "#{@path} cannot be understood (#{where}: #{detail}). Fix it so that " \
                          "`bundle install` accepts it, then build again; nothing was changed."
      end

      # [first line, last line] of each `ruby ...` statement.
      def declarations
        tokens = Ripper.lex(@text)
        found = []
        tokens.each_with_index do |(pos, type, string), i|
          next unless type == :on_ident && string == "ruby" && statement_start?(tokens, i) && call?(tokens, i)

          last = statement_end(tokens, i)
          found << [pos[0], last]
        end
        found
      end

      def statement_start?(tokens, index)
        prev = previous_significant(tokens, index)
        return true if prev.nil? || STATEMENT_START.include?(prev[1]) && prev[1] != :on_semicolon
        # `x; ruby "3.3"` or `if y then ruby "3.3" end`: a declaration, but not on a line of its own.
        if prev[1] == :on_semicolon || prev[1] == :on_kw && STATEMENT_KEYWORDS.include?(prev[2])
          raise_shared_line(tokens[index][0][0])
        end
        false
      end

      def call?(tokens, index)
        following = tokens[(index + 1)..].find { |(_, type, _)| type != :on_sp }
        return false if following.nil?

        %i[on_tstring_beg on_lparen on_label on_symbeg on_const on_ident on_int on_float]
          .include?(following[1]) && !(following[1] == :on_lparen && tokens[index + 1][1] == :on_sp)
      end

      def previous_significant(tokens, index)
        (index - 1).downto(0) do |j|
          return tokens[j] unless tokens[j][1] == :on_sp
        end
        nil
      end

      # The line on which the statement starting at `index` ends; a statement that shares its last
      # line with other code cannot be commented out line by line.
      def statement_end(tokens, index)
        depth = 0
        tokens[(index + 1)..].each_with_index do |(pos, type, string), offset|
          depth += 1 if OPENERS.include?(type)
          depth -= 1 if CLOSERS.include?(type)
          next unless depth.zero?

          case type
          when :on_nl then return pos[0]
          when :on_comment then return pos[0] if string.end_with?("\n")
          when :on_semicolon
            rest = tokens[(index + 2 + offset)..].take_while { |(p, _, _)| p[0] == pos[0] }
            raise_shared_line(pos[0]) if rest.any? { |(_, t, _)| !%i[on_sp on_nl on_comment].include?(t) }
            return pos[0]
          end
        end
        tokens.last[0][0]
      end

      def raise_shared_line(line)
        raise BuildError, "#{@path} line #{line}: its `ruby` declaration shares the line with other code, " \
                          "so megamode cannot comment it out alone. Put the `ruby` declaration on a line " \
                          "of its own, then build again; nothing was changed."
      end
    end
  end
end
