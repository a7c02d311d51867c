# frozen_string_literal: true

require "fileutils"
require "rbconfig"
require_relative "elf"
require_relative "gems"
require_relative "target"

module Megamode
  class Build
    # Whether a package can run on its target, checked as it is assembled: the build Ruby against
    # the target's, every ELF file (app, gem bundle, megamode's extension) against the target's
    # machine, glibc and libraries, and every gem with a native extension for the built extension.
    #
    # A library a file needs that the target's base image lacks is shipped in the package's lib/
    # (on Lambda's LD_LIBRARY_PATH as /var/task/lib) when this machine has one that passes the same
    # checks. Everything else is an offence: for a Lambda target the build is refused with every
    # offence listed and what to do about each kind; for a local package they are reported.
    #
    # A link is followed within its tree (the package, or the gem bundle), where the file it
    # reaches is checked; a link that leaves the tree to an ELF file is an offence (the package
    # carries the link, not the file), and one that dangles or leaves it to anything else is
    # reported, as is a file that starts like ELF and cannot be read.
    class Verify
      Offence = Struct.new(:file, :kind, :problem)

      # The package's own directories on Lambda's LD_LIBRARY_PATH (/var/task and /var/task/lib).
      SHIP_DIR = "lib"

      # How many offences (or warnings) of one file, and lines in all, a report lists; the rest
      # are counted. Every offence still counts for the refusal and its remedies.
      SHOWN_PER_FILE = 10
      SHOWN = 100

      attr_reader :offences, :unreadable, :shipped, :checked

      # Ruby's own directories, where a distribution may have put a gem's extension (Debian puts
      # sqlite3's sqlite3_native.so in vendor_ruby).
      RUBY_ARCH_DIRS = %w[vendorarchdir sitearchdir archdir].filter_map { |k| RbConfig::CONFIG[k] }.uniq.freeze

      # `package`: the package directory being assembled (shipped libraries go to its lib/);
      # `library_dirs`: where this machine's shared libraries are (see HostLibraries);
      # `ruby_arch_dirs`: where to look for a gem's extension a distribution put outside the gem.
      def initialize(target, package:, library_dirs: HostLibraries.dirs, ruby_arch_dirs: RUBY_ARCH_DIRS)
        @target = target
        @package = package
        @library_dirs = library_dirs
        @ruby_arch_dirs = ruby_arch_dirs
        @offences = []
        @unreadable = []
        @warnings = []
        @shipped = {}
        @ship_results = {}
        @checked = 0
      end

      def passed?
        @offences.empty?
      end

      # The build Ruby must be the target's: the gems are laid out for its ABI (ruby/3.3.0) and their
      # extensions built against it.
      def check_ruby(build_ruby = RUBY_VERSION)
        minor = PackageTarget.abi(build_ruby)
        return if minor == @target.ruby

        offence("Ruby", :ruby,
                "this build runs Ruby #{build_ruby}, and #{@target.runtime} runs Ruby #{@target.ruby}: the gems are " \
                "laid out for Ruby #{minor} (ruby/#{minor}.0) and their native extensions are built for it")
      end

      # Checks every file below `root`, and every link (see check_link); `name` gives the name a
      # file is reported by.
      def check_tree(root, skip: [], &name)
        name ||= ->(path) { path.delete_prefix("#{root}/") }
        Tree.walk(root) do |path, stat|
          next if skip.any? { |s| path == File.join(root, s) || path.start_with?(File.join(root, s, "")) }

          if stat.symlink? then check_link(path, root, name.call(path))
          elsif stat.file? then check_file(path, name.call(path), within: root)
          end
        end
      end

      # Checks the package as assembled (app, megamode's runtime; the shipped libraries were
      # checked when shipped).
      def check_package
        check_tree(@package, skip: [SHIP_DIR])
      end

      # Checks the gem bundle as written below `root` (a BUNDLE_PATH, `home` its ruby/<ABI>), and
      # that each gem with a native extension has it built there. `specs`: the packaged gems.
      def check_bundle(root, home, specs)
        check_tree(root) { |path| "#{path.delete_prefix("#{root}/")} (in the gem bundle)" }
        specs.each { |spec| check_extension(spec, home) }
      end

      # `within`: the tree the file is in, which its run path must not leave.
      def check_file(path, name, within: @package)
        return unless Elf.elf?(path)

        elf = Elf.read(path)
        return if %i[relocatable core].include?(elf.type)

        @checked += 1
        problems(elf, origin: File.dirname(path), within: within).each { |kind, problem| offence(name, kind, problem) }
      rescue Elf::Error => e
        @unreadable << "#{name}, which #{e.message}"
      end

      # A relative link below `root` that reaches a file within it needs nothing more: the walk
      # checks the file where it is. One that dangles, or leaves the tree (an absolute one always
      # does: the tree is elsewhere on Lambda), ships as it is and dangles on Lambda: an offence
      # when it reaches an ELF file here, reported otherwise (it may be meant for something Lambda
      # has, such as a layer's /opt).
      def check_link(path, root, name)
        target = File.readlink(path)
        real = File.realpath(path)
        return if !target.start_with?("/") && inside?(real, root)

        if File.file?(real) && Elf.elf?(real)
          offence(name, :link, "is a link to #{target}, outside the package: the package carries the link and " \
                               "not the ELF file, so on Lambda it dangles")
        else
          @warnings << "#{name} is a link to #{target}, outside the package: it ships dangling"
        end
      rescue Errno::ENOENT
        @warnings << "#{name} is a link to #{target}, which does not exist: it ships dangling"
      rescue Errno::ELOOP
        @warnings << "#{name} is a link to #{target}, which does not resolve (a loop of links): it ships dangling"
      rescue SystemCallError => e
        @warnings << "#{name} is a link to #{target || "?"}, which could not be followed (#{e.message})"
      end

      # A gem whose specification says it has a native extension (its extensions, or an extconf.rb
      # or Cargo.toml under ext/, which distributions leave in the file list when they drop the
      # former) must have a built one in the bundle.
      def check_extension(spec, home)
        sources = extension_sources(spec)
        return if sources.empty? || spec.source.to_s.match?(/Path|Gemspec/)

        dirs = [File.join(home, "gems", spec.full_name), *Gems.git_gem_dir(home, spec),
                *Dir.glob(File.join(home, "extensions", "*", "*", spec.full_name))]
        return if dirs.any? { |d| File.directory?(d) && built_extension?(d) }

        elsewhere = distribution_copies(spec)
        where = if elsewhere.empty? then ""
                else "; this machine has #{elsewhere.join(", ")} outside the gem, where a distribution's package put it"
                end
        offence("the gem #{spec.full_name}", :extension,
                "has a native extension (#{sources.join(", ")}) and none built is in the package#{where}")
      end

      # Raises BuildError listing every offence, unless there is none or the package is local.
      def enforce!
        return if passed? || @target.local?

        raise BuildError, refusal
      end

      def refusal
        lines = ["the package could not run on Lambda's #{@target}, so it was not made:"]
        lines.concat(offence_lines)
        unless warning_lines.empty?
          lines << "Also found, and not a reason for the refusal:"
          lines.concat(warning_lines.map { |w| "  #{w}" })
        end
        lines << "What to do:"
        lines.concat(remedies.map { |r| "  - #{r}" })
        lines.join("\n")
      end

      # The offences, file by file: at most SHOWN_PER_FILE of one file and about SHOWN lines in
      # all, with how many more.
      def offence_lines
        lines = []
        left = files_left = 0
        @offences.group_by(&:file).each do |file, list|
          if lines.size >= SHOWN
            left += list.size
            files_left += 1
            next
          end
          lines.concat(list.first(SHOWN_PER_FILE).map { |o| "  #{one_line(file, ": ", o.problem)}" })
          lines << "  #{one_line(file)}: and #{list.size - SHOWN_PER_FILE} more like these" if list.size > SHOWN_PER_FILE
        end
        lines << "  and #{left} more in #{files_left} more files" if left.positive?
        lines
      end

      # Files that could not be read and links that could not be followed, at most SHOWN.
      def warning_lines
        all = @unreadable.map { |u| one_line("could not check ", u) } + @warnings.map { |w| one_line(w) }
        return all if all.size <= SHOWN

        all.first(SHOWN) << "and #{all.size - SHOWN} more files or links like these"
      end

      # Lines for the build's report.
      def summary
        lines = []
        unless @shipped.empty?
          verb = @target.local? ? "would ship (for a Lambda build)" : "shipped in #{SHIP_DIR}/"
          lines << one_line("#{verb} #{@shipped.map { |soname, source| "#{soname} (from #{source})" }.join(", ")}")
        end
        warning_lines.each { |w| lines << "warning: #{w}" }
        lines
      end

      private

      # A line of the report made of `parts`, as UTF-8, with its control characters escaped as Ruby
      # writes them (`\\n`). The names in it are a file's, a link's or an ELF file's own: one with a
      # newline would add lines of its own to the report ("What to do: ..."), and in a C locale a
      # file's name comes as bytes, which Ruby will not join with a library's UTF-8 name.
      def one_line(*parts)
        parts.map { |part| part.to_s.b }.join.gsub(/[\x00-\x1F\x7F]/n) { |c| c.dump[1..-2] }
             .force_encoding(Encoding::UTF_8).scrub
      end

      def offence(file, kind, problem)
        @offences << Offence.new(file, kind, problem)
      end

      # [kind, problem] pairs for an ELF file; `origin` is its directory ($ORIGIN in its run path),
      # nil for a library this machine has; `within`, the tree its run path must stay in.
      def problems(elf, origin:, within: @package)
        unless elf.machine == @target.machine && elf.bits == 64 && elf.byte_order == :little
          return [[:machine, "is for #{elf.machine_name} (#{elf.bits}-bit, #{elf.byte_order}-endian), and " \
                             "#{@target.runtime} runs on #{@target.machine_name}"]]
        end

        list = glibc_problems(elf)
        elf.needed.each do |soname|
          problem = library_problem(soname, elf, origin, within)
          list << problem if problem
        end
        list
      end

      def glibc_problems(elf)
        list = []
        needed = elf.glibc_required
        if needed && @target.glibc_too_old_for?(needed)
          list << [:glibc, "needs glibc #{needed} (symbol version GLIBC_#{needed}), and Amazon Linux 2023 has glibc " \
                           "#{Target::GLIBC}"]
        end
        unless elf.glibc_abi_markers.empty?
          list << [:glibc, "needs #{elf.glibc_abi_markers.join(", ")}, which only a glibc newer than Amazon Linux " \
                           "2023's #{Target::GLIBC} has"]
        end
        list
      end

      def library_problem(soname, elf, origin, within)
        if !library_name?(soname)
          [:name, "needs the library #{soname.inspect} by a path, not by a name: the dynamic loader opens a path as " \
                  "it is (a relative one from the working directory, /var/task on Lambda), never from the package's " \
                  "library directories or its run path, so the package cannot provide it"]
        elsif soname.match?(Target::DISTRIBUTION_LIBRUBY)
          [:libruby, "is linked against a distribution's Ruby library (#{soname}); Lambda runs upstream Ruby, " \
                     "whose library is #{@target.libruby}"]
        elsif (ruby = soname[Target::UPSTREAM_LIBRUBY, 1]) && soname != @target.libruby
          [:ruby, "is linked against Ruby #{ruby}'s library (#{soname}), and #{@target.runtime} runs Ruby " \
                  "#{@target.ruby} (#{@target.libruby})"]
        elsif @target.provides?(soname) || packaged?(soname, elf, origin, within)
          nil
        else
          why = ship(soname)
          why && [:library, "needs #{soname}, which Lambda's base image lacks and the package does not ship; #{why}"]
        end
      end

      # A name the loader looks for in its directories: one that is a path (with a `/`) it opens
      # as it is, and `.` or `..` name directories.
      def library_name?(soname)
        !soname.empty? && !soname.include?("/") && soname != "." && soname != ".."
      end

      # Whether the package has the library where the loader looks: /var/task, /var/task/lib, or
      # a directory the file's run path names relative to itself ($ORIGIN), as long as that
      # stays within the file's tree (`within`).
      def packaged?(soname, elf, origin, within)
        return true if [@package, File.join(@package, SHIP_DIR)].any? { |d| packaged_file?(File.join(d, soname), @package) }
        return false unless origin

        elf.runpath.any? do |dir|
          next false unless dir.match?(/\$(ORIGIN|\{ORIGIN\})/)

          packaged_file?(File.join(dir.gsub(/\$(ORIGIN|\{ORIGIN\})/, origin), soname), within)
        end
      end

      def packaged_file?(path, root)
        File.file?(path) && inside?(File.realpath(path), root)
      rescue SystemCallError
        false
      end

      # Whether `real` (a real path) is below `root`.
      def inside?(real, root)
        real.start_with?(File.join(real_root(root), ""))
      end

      def real_root(root)
        (@real_roots ||= {})[root] ||= File.realpath(root)
      end

      # Ships this machine's `soname` when it passes the checks (for a local package, only notes it);
      # nil when shipped, else why it cannot be.
      def ship(soname)
        return @ship_results[soname] if @ship_results.key?(soname)

        @ship_results[soname] = nil # a library needing itself through others is not an offence of its own
        source = HostLibraries.find(soname, @library_dirs, machine: @target.machine)
        unless source
          return @ship_results[soname] = "this machine has no #{soname} for #{@target.arch} to ship (looked in " \
                                         "#{@library_dirs.join(", ")})"
        end

        found = problems(Elf.read(source), origin: nil)
        unless found.empty?
          reasons = found.map(&:last).join("; it ")
          return @ship_results[soname] = "this machine's #{source} cannot be shipped: it #{reasons}"
        end

        @shipped[soname] = source
        copy(source, soname) unless @target.local?
        nil
      rescue Elf::Error => e
        @ship_results[soname] = "this machine's #{source} #{e.message}"
      end

      def copy(source, soname)
        dir = File.join(@package, SHIP_DIR)
        FileUtils.mkdir_p(dir)
        FileUtils.copy_file(source, File.join(dir, soname))
        File.chmod(0o644, File.join(dir, soname))
      end

      def extension_sources(spec)
        return spec.extensions unless spec.extensions.empty?

        spec.files.grep(%r{\Aext/(.+/)?(extconf\.rb|Cargo\.toml)\z})
      end

      def built_extension?(dir)
        Dir.glob("**/*.{so,bundle}", base: dir).any? { |f| Elf.elf?(File.join(dir, f)) }
      end

      # Extensions of the gem that a distribution installed in Ruby's own directories, found by the
      # gem's library directories (lib/sqlite3/ -> vendor_ruby/3.1.0/sqlite3/sqlite3_native.so).
      def distribution_copies(spec)
        subdirs = (spec.files.filter_map { |f| f[%r{\Alib/([^/]+)/}, 1] } << spec.name).uniq
        @ruby_arch_dirs.flat_map { |r| subdirs.flat_map { |d| Dir.glob(File.join(r, d, "*.so")) } }.uniq.sort
      end

      # What to do, once for each kind of offence found.
      def remedies
        kinds = @offences.map(&:kind).uniq
        image = "public.ecr.aws/sam/build-#{@target.runtime}"
        list = []
        if (kinds & %i[ruby libruby glibc extension]).any?
          list << "build with #{@target.runtime}'s Ruby (#{@target.ruby}, upstream, on Amazon Linux 2023): in the SAM " \
                  "build image #{image}, with the app's gems installed there by `bundle install` (`megamode build " \
                  "--container --runtime #{@target.runtime} --arch #{@target.arch}` does all of it)"
        end
        if kinds.include?(:extension)
          list << "install gems with native extensions through Bundler or RubyGems, which build them into the " \
                  "bundle, not from a distribution's packages (which keep the extension apart from the gem)"
        end
        if kinds.include?(:machine)
          list << "build on #{@target.arch} (or in the SAM build image for #{@target.arch}), or target the machine " \
                  "the files are for with --arch"
        end
        if kinds.include?(:name)
          list << "link each library by its name, not its path (give a library of your own a soname, with " \
                  "-Wl,-soname, before linking against it), and ship it in the package: in the app with an " \
                  "$ORIGIN run path, or installed on the build machine so the build ships it in #{SHIP_DIR}/"
        end
        if kinds.include?(:link)
          list << "replace each link that leaves the package with the file it points to (or a relative link to a " \
                  "file inside the app)"
        end
        if kinds.include?(:library)
          list << "install the missing libraries on the build machine, from a system no newer than Amazon Linux " \
                  "2023, so the build ships them in #{SHIP_DIR}/; or build in the SAM build image"
        end
        list << "or, to run the package locally only: megamode build --local (rake megamode:build LOCAL=1)"
      end
    end

    # This machine's shared libraries, where its dynamic loader finds them.
    module HostLibraries
      DEFAULT_DIRS = %w[/lib64 /usr/lib64 /lib /usr/lib].freeze

      module_function

      # As the loader searches: LD_LIBRARY_PATH, the directories of /etc/ld.so.conf (and what it
      # includes), then the loader's defaults.
      def dirs(conf = "/etc/ld.so.conf", env: ENV.fetch("LD_LIBRARY_PATH", ""))
        (env.split(":").reject(&:empty?) + conf_dirs(conf, 0) + DEFAULT_DIRS).uniq.select { |d| File.directory?(d) }
      end

      # The real path of the first `soname` in `dirs` that is an ELF library for `machine`.
      def find(soname, dirs, machine:)
        dirs.each do |dir|
          path = File.join(dir, soname)
          next unless File.file?(path) && Elf.elf?(path)

          elf = Elf.read(path)
          return File.realpath(path) if elf.machine == machine && elf.bits == 64
        rescue Elf::Error, SystemCallError
          next
        end
        nil
      end

      def conf_dirs(path, depth)
        return [] if depth > 8 || !File.file?(path)

        # As bytes, then UTF-8: a comment in another encoding must not stop the build in a C locale.
        Build.read_text(path).scrub.each_line.flat_map do |line|
          line = line.sub(/#.*/, "").strip
          if line.start_with?("include ")
            pattern = line.delete_prefix("include ").strip
            pattern = File.join(File.dirname(path), pattern) unless pattern.start_with?("/")
            Dir.glob(pattern).sort.flat_map { |f| conf_dirs(f, depth + 1) }
          elsif line.start_with?("/")
            [line]
          else
            []
          end
        end
      rescue SystemCallError, BuildError
        []
      end
    end
  end
end
