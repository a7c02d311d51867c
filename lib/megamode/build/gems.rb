# frozen_string_literal: true

require "fileutils"
require "json"
require "open3"
require "rbconfig"

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
          {
            name: s.name, version: s.version.to_s, full_name: s.full_name,
            platform: s.platform.to_s,
            gem_dir: s.full_gem_path, require_paths: s.raw_require_paths, files: s.files,
            extensions: s.extensions, extension_dir: (s.extension_dir unless s.extensions.empty?),
            executables: s.executables, bindir: s.bindir,
            default: s.respond_to?(:default_gem?) && s.default_gem?,
            source: source.class.name, spec: s.to_ruby
          }
        end
        puts JSON.generate(groups: groups, without: without, specs: out)
      RUBY

      Spec = Struct.new(:name, :version, :full_name, :gem_dir, :require_paths, :files, :extensions,
                        :extension_dir, :executables, :bindir, :default, :source, :spec, keyword_init: true)

      # Where a distribution may have put a gem's files instead of its gem directory.
      SHARED_DIRS = %w[vendorlibdir vendorarchdir vendordir sitelibdir sitearchdir sitedir].freeze

      attr_reader :specs, :groups, :without

      # Resolves the bundle of the app whose (rewritten) Gemfile is `gemfile`; `bundle_path` is where
      # the developer's bundle is installed, if Bundler was told (it lives outside the copy).
      def self.resolve(gemfile, bundle_path: nil)
        env = { "BUNDLE_GEMFILE" => gemfile, "RUBYOPT" => nil, "BUNDLE_FROZEN" => nil }
        env["BUNDLE_PATH"] = bundle_path if bundle_path
        out, err, status = Open3.capture3(env, RbConfig.ruby, "-e", RESOLVE, chdir: File.dirname(gemfile))
        unless status.success?
          detail = (err.lines.grep_v(/^\s+from |\.rb:\d+:in /).first || err).strip
          raise BuildError, "the app's gems cannot be found on this machine (#{detail}). Run `bundle install` " \
                            "in the app so every gem in Gemfile.lock is installed, then build again."
        end
        data = JSON.parse(out.lines.last)
        new(data["specs"].map { |h| Spec.new(**h.slice(*Spec.members.map(&:to_s)).transform_keys(&:to_sym)) },
            groups: data["groups"], without: data["without"])
      end

      def initialize(specs, groups:, without:)
        @specs = specs
        @groups = groups
        @without = without
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
        packaged.each do |spec|
          case spec.source
          when "Bundler::Source::Path", "Bundler::Source::Gemspec" then check_inside(spec, app)
          when "Bundler::Source::Git" then copy_dir(spec, File.join(home, "bundler", "gems", File.basename(spec.gem_dir)))
          else vendor_gem(spec, home)
          end
        end
        home
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

      def vendor_gem(spec, home)
        copy_dir(spec, File.join(home, "gems", spec.full_name))
        File.write(File.join(home, "specifications", "#{spec.full_name}.gemspec"), spec.spec)
        if spec.extension_dir && File.directory?(spec.extension_dir)
          # extensions/<platform>/<extension API>/<gem>, as RubyGems lays them out.
          tail = spec.extension_dir.split("/").last(3)
          FileUtils.mkdir_p(File.join(home, "extensions", *tail[0, 2]))
          FileUtils.cp_r(spec.extension_dir, File.join(home, "extensions", *tail[0, 2]))
        end
        spec.executables.each { |exe| write_binstub(home, spec.name, exe) }
      end

      def copy_dir(spec, dest)
        if File.directory?(spec.gem_dir) && spec.require_paths.all? { |p| File.exist?(File.join(spec.gem_dir, p)) }
          FileUtils.mkdir_p(File.dirname(dest))
          FileUtils.cp_r(spec.gem_dir, dest, preserve: false)
        else
          rebuild_from_files(spec, dest)
        end
      end

      # Some distributions install a gem's Ruby files into a shared directory (Debian's
      # vendor_ruby) and keep only its specification: the gem directory is rebuilt from the files
      # the specification lists.
      def rebuild_from_files(spec, dest)
        roots = SHARED_DIRS.filter_map { |key| RbConfig::CONFIG[key] }
        copied = 0
        spec.files.each do |file|
          source = candidates(file, spec.gem_dir, roots).find { |c| File.file?(c) }
          next unless source

          target = File.join(dest, file)
          FileUtils.mkdir_p(File.dirname(target))
          FileUtils.cp(source, target)
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
