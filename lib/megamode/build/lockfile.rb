# frozen_string_literal: true

module Megamode
  class Build
    # Keeps Gemfile.lock consistent with the rewritten Gemfile, offline and without re-resolving:
    # the Ruby the Gemfile no longer declares leaves the lock, and the Rails adapter megamode adds
    # enters it at the version the package carries (it has no dependencies of its own).
    class Lockfile
      attr_reader :text

      def initialize(text)
        @text = text
      end

      def drop_ruby_version!
        @text = @text.sub(/^RUBY VERSION\n(?:[ ]+.*\n)*\n?/, "")
      end

      def add_gem!(name, version)
        lines = @text.lines
        return if lines.any? { |l| l.match?(/\A    #{Regexp.escape(name)} \(/) }

        specs = section_body(lines, "GEM", after: "  specs:\n")
        dependencies = section_body(lines, "DEPENDENCIES")
        if specs.nil? || dependencies.nil?
          raise BuildError, "Gemfile.lock has no GEM specs or DEPENDENCIES section, so megamode cannot add " \
                            "itself to it: run `bundle lock` in the app, then build again"
        end

        # Later positions first, so earlier indices stay valid.
        inserts = [
          [dependencies, "  #{name} (= #{version})\n", /\A  (\S+)/],
          [specs, "    #{name} (#{version})\n", /\A    (\S+)/]
        ]
        checksums = section_body(lines, "CHECKSUMS")
        inserts.unshift([checksums, "  #{name} (#{version})\n", /\A  (\S+)/]) if checksums
        inserts.sort_by { |(range, _, _)| -range.first }.each do |range, line, pattern|
          lines.insert(sorted_position(lines, range, name, pattern), line)
        end
        @text = lines.join
      end

      private

      # The index range of a section's entries (after its title, or after the `after` line in it).
      def section_body(lines, title, after: nil)
        start = lines.index("#{title}\n")
        return nil unless start

        start += 1
        if after
          offset = lines[start..].index { |l| l == after || l.strip.empty? }
          return nil if offset.nil? || lines[start + offset] != after

          start += offset + 1
        end
        finish = start
        finish += 1 while finish < lines.size && lines[finish].start_with?(" ")
        start...finish
      end

      # Where `name` goes among the section's top-level entries (lock files keep them sorted).
      def sorted_position(lines, range, name, pattern)
        range.each do |i|
          entry = lines[i][pattern, 1]
          return i if entry && entry.delete_suffix("!") > name
        end
        range.end
      end
    end
  end
end
