# frozen_string_literal: true

require "fileutils"
require "find"
require "json"
require "open3"
require "rbconfig"
require_relative "../runtime/native_library"

module Megamode
  class Build
    # The app's bundled gems, laid out as Bundler installs them under a `BUNDLE_PATH`
    # (`ruby/<ABI>/{gems,specifications,extensions,bin,bundler/gems}`), so that at boot, with
    # `BUNDLE_PATH` pointing at the unpacked bundle, `bundle exec` finds every gem there and nowhere
    # else. The gems come from wherever this machine has them installed (the app's own
    # vendor/bundle, a GEM_HOME, or a distribution's gem directories): the build never downloads.
    class Gems
      # Resolution runs in a process of its own, under the app's Gemfile, as `bundle exec` would.
      RESOLVE = <<~'RUBY'
        require "bundler"
        require "json"
        definition = Bundler.definition
        without = Bundler.settings[:without].map(&:to_sym)
        groups = definition.groups - without
        specs = definition.specs_for(groups)
        out = specs.map do |s|
          source = s.respond_to?(:source) ? s.source : nil
          git = source.is_a?(Bundler::Source::Git)
          {
            name: s.name, version: s.version.to_s, full_name: s.full_name,
            platform: s.platform.to_s,
            gem_dir: s.full_gem_path, require_paths: s.raw_require_paths, files: s.files,
            extensions: s.extensions, extension_dir: (s.extension_dir unless s.extensions.empty?),
            executables: s.executables, bindir: s.bindir,
            default: s.respond_to?(:default_gem?) && s.default_gem?,
            source: source.class.name, spec: s.to_ruby, loaded_from: s.loaded_from,
            # A git source's checkout (its install path, or the vendor/cache copy or local override
            # Bundler uses instead), and the name Bundler gives it under bundler/gems at runtime.
            checkout: (File.expand_path(source.path.to_s, Bundler.root) if git),
            checkout_name: (source.extension_dir_name if git)
          }
        end
        puts JSON.generate(groups: groups, without: without, specs: out)
      RUBY

      Spec = Struct.new(:name, :version, :full_name, :gem_dir, :require_paths, :files, :extensions,
                        :extension_dir, :executables, :bindir, :default, :source, :spec, :loaded_from,
                        :checkout, :checkout_name, keyword_init: true)

      # Where a distribution may have put a gem's files instead of its gem directory.
      SHARED_DIRS = %w[vendorlibdir vendorarchdir vendordir sitelibdir sitearchdir sitedir].freeze
      # Where a distribution may have put a gem's built extension (Debian: sqlite3's
      # vendor_ruby/3.1.0/sqlite3/sqlite3_native.so, websocket-driver's vendor_ruby/3.1.0/websocket_mask.so).
      SHARED_ARCH_DIRS = %w[vendorarchdir sitearchdir].freeze
      # Files that mark a directory as a build cache, left out of any gem that kept one (a Rust
      # extension's target directory is hundreds of MB of rlibs, fingerprints and dependency info):
      # CACHEDIR.TAG (https://bford.info/cachedir/), which Cargo puts in a target directory it
      # creates, and Cargo's own files, there also when the directory existed before (RubyGems
      # 3.3's Cargo builder creates it): .rustc_info.json at its root, .cargo-lock in each profile
      # directory (release/).
      CACHE_MARKERS = %w[CACHEDIR.TAG .rustc_info.json .cargo-lock].freeze
      # What `require` can load from a gem's extension directory: Ruby files and libraries.
      LOADABLE = /\.(?:rb|so(?:\.\d+)*|bundle|dylib|dll)\z/
      # RubyGems' marker that the gem's extensions are built (without it a gem with extensions is
      # ignored as "not built").
      BUILD_COMPLETE = "gem.build_complete"

      attr_reader :specs, :groups, :without

      # Resolves the bundle of the app whose (rewritten) Gemfile is `gemfile`; `bundle_path` is where
      # the developer's bundle is installed, if Bundler was told (it lives outside the copy).
      def self.resolve(gemfile, bundle_path: nil)
        env = { "BUNDLE_GEMFILE" => gemfile, "RUBYOPT" => nil, "BUNDLE_FROZEN" => nil }
        env["BUNDLE_PATH"] = bundle_path if bundle_path
        # Bytes, then UTF-8 (the JSON, Ruby's messages), whatever the caller's locale says.
        out, err, status = Open3.capture3(env, RbConfig.ruby, "-e", RESOLVE, chdir: File.dirname(gemfile), binmode: true)
        unless status.success?
          err = err.force_encoding(Encoding::UTF_8).scrub
          detail = (err.lines.grep_v(/^\s+from |\.rb:\d+:in /).first || err).strip
          raise BuildError, "the app's gems cannot be found on this machine (#{detail}). Run `bundle install` " \
                            "in the app so every gem in Gemfile.lock is installed, then build again."
        end
        data = JSON.parse(out.force_encoding(Encoding::UTF_8).lines.last)
        new(data["specs"].map { |h| Spec.new(**h.slice(*Spec.members.map(&:to_s)).transform_keys(&:to_sym)) },
            groups: data["groups"], without: data["without"])
      end

      # `arch_dirs`: where to look for extensions a distribution put outside their gem;
      # `owned_files`: the files of the distribution package a file belongs to (nil: unknown).
      def initialize(specs, groups:, without:, arch_dirs: nil, owned_files: nil)
        @specs = specs
        @groups = groups
        @without = without
        @arch_dirs = arch_dirs || SHARED_ARCH_DIRS.filter_map { |k| RbConfig::CONFIG[k] }.uniq
        @owned_files = owned_files || method(:dpkg_files)
      end

      # The extensions gathered from outside their gems, by gem: full name => relative paths.
      def adopted_extensions
        @adopted_extensions ||= {}
      end

      # The gems the package must carry: not Bundler itself and not Ruby's default gems, which
      # Lambda's Ruby has.
      def packaged
        @specs.reject { |s| s.name == "bundler" || s.default }
      end

      def native
        packaged.reject { |s| s.extensions.empty? }.map(&:name)
      end

      # Writes the bundle below `root` (a BUNDLE_PATH); `app` is the app's own directory, whose
      # path gems travel with the app.
      def vendor(root, app:)
        home = File.join(root, "ruby", RbConfig::CONFIG["ruby_version"])
        %w[gems specifications bin].each { |d| FileUtils.mkdir_p(File.join(home, d)) }
        git, others = packaged.partition { |spec| spec.source == "Bundler::Source::Git" }
        others.each do |spec|
          case spec.source
          when "Bundler::Source::Path", "Bundler::Source::Gemspec" then check_inside(spec, app)
          else vendor_gem(spec, home)
          end
        end
        git.group_by { |spec| [spec.checkout, spec.checkout_name] }.each { |_, specs| vendor_checkout(specs, home, app) }
        home
      end

      # Where the bundle under `home` holds a gem from a git source: at its place in the copy of its
      # source's checkout (bundler/gems/<repo>-<sha12>/<subdirectory>), where Bundler looks for it.
      # Nil for a gem whose checkout is unknown (not resolved by Gems.resolve).
      def self.git_gem_dir(home, spec)
        return nil unless spec.respond_to?(:checkout) && spec.checkout && spec.checkout_name

        File.join(home, "bundler", "gems", spec.checkout_name, *place_in(spec.gem_dir, spec.checkout))
      end

      # `dir`'s path relative to `root` (it is `root` or below it), as a list of names.
      def self.place_in(dir, root)
        return [] if File.expand_path(dir) == File.expand_path(root)

        File.expand_path(dir).delete_prefix("#{File.expand_path(root)}/").split("/")
      end

      # Adds a gem made of the given files (relative path => source path) with no dependencies.
      def self.add_pure_gem(home, name:, version:, summary:, files:)
        dir = File.join(home, "gems", "#{name}-#{version}")
        files.each do |relative, source|
          FileUtils.mkdir_p(File.dirname(File.join(dir, relative)))
          FileUtils.cp(source, File.join(dir, relative))
        end
        spec = Gem::Specification.new do |s|
          s.name = name
          s.version = version
          s.summary = summary
          s.authors = ["megamode"]
          s.files = files.keys.sort
          s.require_paths = ["lib"]
        end
        File.write(File.join(home, "specifications", "#{name}-#{version}.gemspec"), spec.to_ruby)
      end

      private

      # The checkout of one git source, once, for all its packaged gems (`specs`). Bundler at boot
      # looks for the checkout itself, bundler/gems/<repo>-<sha12> (the source's install path, which
      # it calls "not yet checked out" when absent), then reads the gemspecs there (serialized by
      # `bundle install`, so they run no git and read no file) and takes each gem from its directory,
      # which may be a subdirectory: a monorepo (rails/rails: actionpack/, activerecord/, ...) is
      # one checkout with a gem in each. Its copy therefore keeps every gem at its place in it.
      #
      # Left out: the checkout's git metadata (.git, at any level: a submodule's is a file pointing
      # into the top one), which nothing at runtime reads; and every directory that holds no packaged
      # gem (a monorepo's docs, tools, other apps, gems the app does not use), as Bundler needs only
      # the gemspecs of the gems it loads, which are in their gems' directories. Kept: the files
      # beside a gem's directory on its way up from the root (a VERSION file a gem may read), and
      # with a gem at the root (rails/rails' rails.gemspec, a single-gem repository), everything.
      #
      # A checkout inside the app (vendor/cache/<repo>-<sha12>, from `bundle cache --all`) travels
      # with the app, and Bundler uses it from there in place of bundler/gems: no second copy.
      def vendor_checkout(specs, home, app)
        checkout = specs.first.checkout
        return if File.expand_path(checkout).start_with?("#{File.expand_path(app)}/")

        unless File.directory?(checkout)
          raise BuildError, "the checkout of the git source of #{specs.map(&:name).join(", ")} is not on this machine " \
                            "(looked in #{checkout}): run `bundle install` in the app, then build again"
        end

        places = specs.map { |spec| Gems.place_in(spec.gem_dir, checkout).join("/") }
        copy_tree(checkout, File.join(home, "bundler", "gems", specs.first.checkout_name)) do |relative, dir|
          next false if File.basename(relative) == ".git"
          next true unless dir

          # A gem's directory, a directory in one, or one on the way to one.
          places.any? do |p|
            p.empty? || relative == p || relative.start_with?("#{p}/") || p.start_with?("#{relative}/")
          end
        end
      end

      def vendor_gem(spec, home)
        dest = File.join(home, "gems", spec.full_name)
        copy_dir(spec, dest, &runtime_part(spec))
        File.write(File.join(home, "specifications", "#{spec.full_name}.gemspec"), spec.spec)
        if spec.extension_dir && File.directory?(spec.extension_dir)
          # extensions/<platform>/<extension API>/<gem>, as RubyGems lays them out. Only what
          # `require` loads and RubyGems' marker: not the build's logs (gem_make.out, mkmf.log) nor
          # what a builder left there (RubyGems 3.3's Cargo builder uses this directory as Cargo's
          # target directory, 280 MB for megamode's).
          copy_tree(spec.extension_dir, File.join(home, "extensions", *spec.extension_dir.split("/").last(3))) do |relative, dir|
            dir || relative == BUILD_COMPLETE || relative.match?(LOADABLE)
          end
        end
        adopt_extensions(spec, dest, home)
        spec.executables.each { |exe| write_binstub(home, spec.name, exe) }
      end

      # A gem built from native code whose extension a distribution installed in Ruby's shared arch
      # directory, not in the gem (Debian's ruby-sqlite3): the extension is copied into the gem's
      # first require path at the same relative place (lib/sqlite3/sqlite3_native.so), where the
      # gem's `require "sqlite3/sqlite3_native"` finds it when the bundle alone is on the load path.
      def adopt_extensions(spec, dest, home)
        return unless native_sources?(spec)
        return if built_in_bundle?(spec, dest, home)

        lib = File.join(dest, spec.require_paths.first || "lib")
        distribution_extensions(spec).each do |relative, source|
          FileUtils.mkdir_p(File.dirname(File.join(lib, relative)))
          FileUtils.cp(source, File.join(lib, relative))
          (adopted_extensions[spec.full_name] ||= []) << relative
        end
      end

      def native_sources?(spec)
        !spec.extensions.empty? || spec.files.any? { |f| f.match?(%r{\Aext/(.+/)?(extconf\.rb|Cargo\.toml)\z}) }
      end

      def built_in_bundle?(spec, dest, home)
        dirs = [dest, *Dir.glob(File.join(home, "extensions", "*", "*", spec.full_name))]
        dirs.any? { |d| Dir.glob("**/*.{so,bundle}", base: d).any? }
      end

      # relative path => source of the gem's extensions in the shared arch directories: the files of
      # the distribution package that installed the gem's specification, when the package manager
      # knows it; else the libraries named after the gem's C sources (ext/websocket-driver/
      # websocket_mask.c -> websocket_mask.so) or in its library's directories (lib/sqlite3/ ->
      # sqlite3/*.so).
      def distribution_extensions(spec)
        owned = spec.loaded_from && @owned_files.call(spec.loaded_from)
        found = @arch_dirs.flat_map do |root|
          candidates =
            if owned
              owned.select { |f| f.start_with?("#{root}/") }
            else
              names = spec.files.filter_map { |f| f[%r{\Aext/.+/([^/]+)\.c\z}, 1] }.uniq
              subdirs = (spec.files.filter_map { |f| f[%r{\Alib/([^/]+)/}, 1] } << spec.name).uniq
              names.map { |n| File.join(root, "#{n}.so") } + subdirs.flat_map { |d| Dir.glob(File.join(root, d, "*.so")) }
            end
          candidates.select { |f| f.end_with?(".so") && File.file?(f) }.map { |f| [f.delete_prefix("#{root}/"), f] }
        end
        found.uniq(&:first).to_h
      end

      # The files of the Debian package that installed `path`, or nil (no dpkg, or not a package's).
      def dpkg_files(path)
        return nil unless File.executable?("/usr/bin/dpkg-query")

        # Bytes (file names may have any), the names then as UTF-8, as the resolved gems' paths are.
        out, status = Open3.capture2e("dpkg-query", "-S", path, binmode: true)
        return nil unless status.success?

        package = out.lines.first.to_s[/\A([^:\s]+(?::[^:\s]+)?):/, 1]
        return nil unless package

        files, status = Open3.capture2e("dpkg-query", "-L", package, binmode: true)
        status.success? ? files.force_encoding(Encoding::UTF_8).lines.map(&:chomp) : nil
      end

      def copy_dir(spec, dest, &keep)
        if File.directory?(spec.gem_dir) && spec.require_paths.all? { |p| File.exist?(File.join(spec.gem_dir, p)) }
          copy_tree(spec.gem_dir, dest, &keep)
        else
          rebuild_from_files(spec, dest)
        end
      end

      # Which of an installed gem's entries go into the package (nil: all). The megamode gem ships
      # its Rust sources and Cargo manifests only for `gem install` to compile: at runtime it is
      # its require paths (its Ruby and the library RubyGems copies into lib/) and its commands.
      # The precompiled gem has a library for each Ruby ABI (lib/megamode/3.3/, lib/megamode/3.4/):
      # the bundle is laid out for this Ruby's ABI, and only that library can load in it.
      # (A gem from a git source is its checkout's copy: see vendor_checkout.)
      def runtime_part(spec)
        return nil unless spec.name == "megamode"

        kept = [*spec.require_paths, spec.bindir].compact
        own = File.dirname(NativeLibrary.precompiled("lib"))
        other_abi = %r{\A#{Regexp.escape(File.dirname(own))}/\d+\.\d+\z}
        lambda do |relative, dir|
          kept.any? { |d| relative == d || relative.start_with?("#{d}/") } &&
            !(dir && relative != own && relative.match?(other_abi))
        end
      end

      # Copies the tree at `source` to `dest` as FileUtils.cp_r would (links as links), leaving out
      # build caches (directories with one of CACHE_MARKERS) and the entries `keep` refuses, given
      # their path relative to `source` and whether they are a directory. A marked `source` keeps
      # only its own files: RubyGems 3.3's Cargo builder makes a gem's extension directory Cargo's
      # target directory, and RubyGems' marker sits next to Cargo's files.
      def copy_tree(source, dest, &keep)
        source = File.realpath(source)
        cache_root = build_cache?(source)
        FileUtils.mkdir_p(dest)
        Find.find(source) do |path|
          next if path == source

          relative = path.delete_prefix("#{source}/")
          dir = File.directory?(path) && !File.symlink?(path)
          Find.prune if dir && ((cache_root && !relative.include?("/")) || build_cache?(path))
          Find.prune if keep && !keep.call(relative, dir)
          target = File.join(dest, relative)
          dir ? FileUtils.mkdir_p(target) : FileUtils.copy_entry(path, target)
        end
      end

      def build_cache?(dir)
        CACHE_MARKERS.any? { |marker| File.file?(File.join(dir, marker)) }
      end

      # Some distributions install a gem's Ruby files into a shared directory (Debian's
      # vendor_ruby) and keep only its specification: the gem directory is rebuilt from the files
      # the specification lists. A listed directory comes whole: Debian's ruby-bootsnap lists
      # `lib/bootsnap`, not the files in it.
      def rebuild_from_files(spec, dest)
        roots = SHARED_DIRS.filter_map { |key| RbConfig::CONFIG[key] }
        copied = 0
        spec.files.each do |file|
          found = candidates(file, spec.gem_dir, roots)
          source = found.find { |c| File.file?(c) }
          # A directory may be in several of them (bootsnap's Ruby files and its extension).
          dirs = source ? [] : found.select { |c| File.directory?(c) }
          next if source.nil? && dirs.empty?

          target = File.join(dest, file)
          FileUtils.mkdir_p(File.dirname(target))
          if source
            FileUtils.cp(source, target)
          else
            FileUtils.mkdir_p(target)
            dirs.each { |dir| FileUtils.cp_r("#{dir}/.", target) }
          end
          copied += 1
        end
        spec.require_paths.each { |p| FileUtils.mkdir_p(File.join(dest, p)) }
        return if copied.positive? || spec.files.empty?

        raise BuildError, "the files of the gem #{spec.full_name} are not on this machine (looked in " \
                          "#{spec.gem_dir}): reinstall it (`gem pristine #{spec.name}` or `bundle install`), " \
                          "then build again"
      end

      def candidates(file, gem_dir, roots)
        list = [File.join(gem_dir, file)]
        lib_relative = file.delete_prefix("lib/")
        list.concat(roots.map { |r| File.join(r, lib_relative) }) if file.start_with?("lib/")
        list
      end

      def check_inside(spec, app)
        inside = File.expand_path(spec.gem_dir).start_with?("#{File.expand_path(app)}/")
        return if inside

        raise BuildError, "the gem #{spec.name} comes from a path outside the app (#{spec.gem_dir}), which " \
                          "the package cannot carry: move it inside the app, or publish it as a gem, then " \
                          "build again"
      end

      def write_binstub(home, gem_name, exe)
        path = File.join(home, "bin", exe)
        File.write(path, <<~RUBY)
          #!/usr/bin/env ruby
          # Written by megamode build for the #{gem_name} gem's `#{exe}`.
          require "rubygems"
          load Gem.activate_bin_path(#{gem_name.inspect}, #{exe.inspect}, ">= 0.a")
        RUBY
        File.chmod(0o755, path)
      end
    end
  end
end
