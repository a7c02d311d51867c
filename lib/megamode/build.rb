# frozen_string_literal: true

require "fileutils"
require "json"
require "rbconfig"
require "tmpdir"
require "digest"
require_relative "version"
require_relative "errors"
require_relative "native"
require_relative "build/app_kind"
require_relative "build/files"
require_relative "build/gemfile"
require_relative "build/gems"
require_relative "build/lockfile"
require_relative "build/output"
require_relative "build/report"
require_relative "build/tree"

module Megamode
  # `megamode build` / `rake megamode:build`: turns a Rails or Rack app into a Lambda package. The
  # app is copied and only the copy is changed; the package is assembled in a staging directory
  # and renamed into place, so a failed build never leaves something that looks complete. It
  # replaces only what megamode made, and refuses any other output directory (see Output).
  #
  #   OUT/.megamode-package     the marker: a package megamode made, which the next build may replace
  #   OUT/handler.rb            what Lambda's Ruby runtime loads (Handler: handler.handler)
  #   OUT/app/                  the app, with its Gemfile and (Rails) initializer adapted
  #   OUT/megamode/lib/         megamode and its compiled extension
  #   OUT/megamode/runtime      the exec wrapper that runs the native Runtime API loop instead
  #   OUT/megamode/bundle.*     the app's gems as the lazy-load archive and its manifest
  #   OUT.zip, template.yaml    beside OUT: the zip to upload and a SAM template that deploys it
  class Build
    # Left out of the copy: what is not the app's to ship (version control, the developer's gems,
    # which travel in the bundle, and Bundler's local settings, which the build rewrites).
    SKIPPED = %w[.git .bundle vendor/bundle node_modules .megamode-build-id].freeze
    # Kept as empty directories: the app writes them at runtime (in /tmp, where megamode copies it).
    EMPTIED = %w[tmp log].freeze
    # Where the build writes the package by default, and the one place inside an app it may go.
    DEFAULT_OUT = "build/megamode"

    attr_reader :app, :out, :kind

    def initialize(app:, out: nil, log: $stderr)
      @app = File.expand_path(app)
      @out = File.expand_path(out || File.join(@app, DEFAULT_OUT))
      @log = log
    end

    def run
      check_inputs!
      @kind = AppKind.detect(@app)
      say "building #{@app} (#{@kind}) into #{@out}"
      @output.stage do |stage|
        package = File.join(stage, "package")
        Dir.mkdir(package)
        assemble(package)
        write_zip(package, "#{package}.zip")
        @output.install(package, "#{package}.zip")
        report = Report.new(package: @out, zip: @output.zip, manifest: @manifest, gems: @gems, log: @log)
        @output.install_template(template_yaml(report.ephemeral_mb), stage)
        report.print(@output.template)
      end
    end

    private

    def say(message)
      @log.puts "megamode build: #{message}"
      @log.flush
    end

    def check_inputs!
      raise BuildError, "the app directory #{@app} does not exist" unless File.directory?(@app)

      missing = %w[config.ru Gemfile Gemfile.lock].reject { |f| File.file?(File.join(@app, f)) }
      unless missing.empty?
        raise BuildError, "#{@app} has no #{missing.join(" or ")}: megamode packages a Rack app (a config.ru) " \
                          "with its gems resolved by Bundler (a Gemfile and its Gemfile.lock; run " \
                          "`bundle install` or `bundle lock` to make the lock)"
      end
      @output = Output.new(app: @app, out: @out)
      @out = @output.dir
      @output.check!
    end

    def assemble(partial)
      app_copy = File.join(partial, "app")
      copy_app(app_copy)
      gemfile = adapt_gemfile(app_copy)
      @gems = vendor_gems(app_copy, partial, gemfile)
      write_app_files(app_copy)
      write_runtime(partial)
      File.write(File.join(partial, Files::PACKAGE_MARKER), Files.package_marker(VERSION))
      File.write(File.join(app_copy, ".megamode-build-id"), "#{build_id(app_copy)}\n")
      File.write(File.join(partial, "handler.rb"), Files.handler_rb)
      wrapper = File.join(partial, "megamode", "runtime")
      File.write(wrapper, Files.runtime_wrapper)
      File.chmod(0o755, wrapper)
      Tree.fix_times(partial)
    end

    def copy_app(app_copy)
      skip = SKIPPED.dup
      skip << "build" if @output.in_app_build?
      say "copying the app"
      Tree.copy(@app, app_copy, skip: skip, emptied: EMPTIED)
    end

    def adapt_gemfile(app_copy)
      path = File.join(app_copy, "Gemfile")
      gemfile = Gemfile.new(File.read(path), path: File.join(@app, "Gemfile"))
      lines = gemfile.comment_ruby_declarations!
      say "Gemfile: commented out the `ruby` declaration on line #{lines.join(", ")}" unless lines.empty?
      File.write(path, gemfile.text)
      lock = Lockfile.new(File.read(File.join(app_copy, "Gemfile.lock")))
      lock.drop_ruby_version!
      File.write(File.join(app_copy, "Gemfile.lock"), lock.text)
      gemfile
    end

    # Resolves and gathers the gems, adds the Rails adapter, and packs them as the lazy-load bundle.
    def vendor_gems(app_copy, partial, gemfile)
      say "resolving the app's gems"
      gems = Gems.resolve(File.join(app_copy, "Gemfile"), bundle_path: developer_bundle_path)
      Dir.mktmpdir("megamode-build-gems-") do |root|
        say "gathering #{gems.packaged.size} gems"
        home = gems.vendor(root, app: app_copy)
        add_adapter(app_copy, gemfile, home)
        say "packing the gem bundle"
        @manifest = Native.pack(root, File.join(partial, "megamode"))
      end
      File.write(File.join(app_copy, ".bundle", "config").tap { |p| FileUtils.mkdir_p(File.dirname(p)) },
                 Files.bundle_config(gems.without))
      gems
    end

    # The developer's own Bundler path (`bundle config set path ...`), which the copy does not have.
    def developer_bundle_path
      return ENV["BUNDLE_PATH"] if ENV["BUNDLE_PATH"]

      config = File.join(@app, ".bundle", "config")
      return nil unless File.file?(config)

      value = File.read(config)[/^BUNDLE_PATH:\s*"?([^"\n]+)"?/, 1]
      value && File.expand_path(value, @app)
    end

    def add_adapter(app_copy, gemfile, home)
      return unless gemfile.add_adapter!(VERSION, rails: @kind.rails?)

      File.write(File.join(app_copy, "Gemfile"), gemfile.text)
      lock = Lockfile.new(File.read(File.join(app_copy, "Gemfile.lock")))
      lock.add_gem!("megamode", VERSION)
      File.write(File.join(app_copy, "Gemfile.lock"), lock.text)
      lib = File.expand_path("..", __dir__)
      files = %w[megamode/rails.rb megamode/rack/prefix.rb megamode/version.rb]
              .to_h { |f| ["lib/#{f}", File.join(lib, f)] }
      Gems.add_pure_gem(home, name: "megamode", version: VERSION, files: files,
                              summary: "megamode's Rails adapter, as the package carries it")
      say "Gemfile: added #{Gemfile.adapter_line(VERSION, rails: @kind.rails?)}"
    end

    def write_app_files(app_copy)
      return unless @kind.rails?

      path = File.join(app_copy, "config", "initializers", "megamode.rb")
      if File.exist?(path)
        say "kept the app's own config/initializers/megamode.rb"
      else
        FileUtils.mkdir_p(File.dirname(path))
        File.write(path, Files.initializer_rb(VERSION))
        say "wrote config/initializers/megamode.rb"
      end
    end

    # megamode itself, as the handler process loads it: the Ruby files and the compiled extension
    # for this Ruby.
    def write_runtime(partial)
      lib = File.expand_path("..", __dir__)
      dest = File.join(partial, "megamode", "lib")
      Dir.glob("**/*.rb", base: lib).sort.each do |file|
        next if file.start_with?("megamode/build", "megamode/tasks")

        FileUtils.mkdir_p(File.dirname(File.join(dest, file)))
        FileUtils.copy_file(File.join(lib, file), File.join(dest, file))
      end
      native = native_library(lib)
      FileUtils.mkdir_p(File.join(dest, "megamode"))
      FileUtils.copy_file(native, File.join(dest, "megamode", NativeLibrary::FILE))
    end

    def native_library(lib)
      NativeLibrary.find(lib) || raise(BuildError, NativeLibrary.missing_message(lib))
    end

    # Names this package: the app as packaged plus its gems, so a new package is staged afresh.
    def build_id(app_copy)
      Digest::SHA256.hexdigest("#{Tree.digest(app_copy)} #{@manifest["sha256"]}")[0, 16]
    end

    def write_zip(package, zip)
      say "zipping the package"
      FileUtils.rm_f(zip)
      entries = []
      Tree.walk(package) { |path, stat| entries << path.delete_prefix("#{package}/") unless stat.directory? }
      # -X: no extra attributes (owners, times beyond the fixed mtime); -y: links as links.
      IO.popen(["zip", "-q", "-X", "-y", "-@", zip], "w", chdir: package) { |io| io.puts(entries) }
      raise BuildError, "zip failed (#{$?}) making #{zip}" unless $?.success?
    rescue Errno::ENOENT
      raise BuildError, "`zip` is not installed: install it (apt-get install zip), then build again"
    end

    def template_yaml(ephemeral_mb)
      env = @kind.rails? ? { "RAILS_ENV" => "production" } : { "RACK_ENV" => "production" }
      Files.template_yaml(name: File.basename(@app), code_uri: File.basename(@output.zip),
                          runtime: Report.runtime, architecture: Report.architecture,
                          memory: 1024, ephemeral_mb: ephemeral_mb, env: env, version: VERSION)
    end
  end
end
