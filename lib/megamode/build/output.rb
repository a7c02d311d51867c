# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require_relative "files"

module Megamode
  class Build
    # Where a build writes: the package directory OUT, and OUT.zip and template.yaml beside it. A
    # build replaces only what megamode made (a directory with the package marker, a zip whose first
    # entry is that marker, a template with megamode's stamp and not edited since) and refuses
    # anything else before it writes a thing. The new files are made in a work directory of
    # their own beside OUT and renamed into place.
    class Output
      attr_reader :dir, :zip, :template

      # `app` (which must exist) and `out` as given, relative to the current directory. Both are
      # resolved through symbolic links and `..`, so that neither can hide that one holds the other.
      def initialize(app:, out:)
        @app = File.realpath(app)
        @dir = Output.resolve(out)
        @zip = "#{@dir}.zip"
        @template = File.join(File.dirname(@dir), "template.yaml")
      end

      # `path` made absolute with its directories' symbolic links and `..` resolved as the system
      # resolves them; directories that do not exist yet are taken as written. A link in the last
      # place is kept (an output directory that is a link is refused).
      def self.resolve(path)
        path = File.join(Dir.pwd, path) unless File.absolute_path?(path)
        parent, name = File.split(path)
        return parent if parent == path

        parent = begin
          File.realpath(parent)
        rescue SystemCallError
          resolve(parent)
        end
        case name
        when "." then parent
        when ".." then File.dirname(parent)
        else File.join(parent, name)
        end
      end

      # Raises BuildError, having changed nothing, unless the build may write here; then makes sure
      # the directory OUT goes in exists.
      def check!
        check_place!
        check_existing!
        parent = File.dirname(@dir)
        begin
          FileUtils.mkdir_p(parent)
        rescue SystemCallError => e
          raise BuildError, "cannot create the output directory #{parent}: #{e.message}"
        end
        raise BuildError, "cannot write into #{parent}: choose a writable output directory" unless File.writable?(parent)
      end

      # Whether OUT is under the app's build/, which the copy of the app then leaves out.
      def in_app_build?
        inside?(@dir, File.join(@app, "build"))
      end

      # Yields a new work directory beside OUT (on its file system, so that renames from it are
      # atomic), and removes it afterwards with whatever is left in it.
      def work_dir
        dir = Dir.mktmpdir(".megamode-build-", File.dirname(@dir))
        yield dir
      ensure
        FileUtils.rm_rf(dir) if dir
      end

      # Puts the package and its zip, both complete and made in the work directory, in place of
      # the previous ones, which are checked again: something may have appeared during the build.
      def install(package, zip)
        check_existing!
        previous = File.join(File.dirname(package), "previous")
        File.rename(@dir, previous) if lstat(@dir)
        begin
          File.rename(package, @dir)
        rescue SystemCallError
          File.rename(previous, @dir) if File.exist?(previous)
          raise
        end
        File.rename(zip, @zip)
      end

      # Writes the template through a file in the work directory, renamed into place.
      def install_template(text, work)
        check_template!
        written = File.join(work, "template.yaml")
        File.write(written, text)
        File.rename(written, @template)
      end

      private

      def check_place!
        if @dir == @app
          raise BuildError, "the output directory #{@dir} is the app itself: give the package a directory of its " \
                            "own (without --out, it goes to #{File.join(@app, DEFAULT_OUT)})"
        end
        if inside?(@app, @dir)
          raise BuildError, "the output directory #{@dir} contains the app (#{@app}), and a build replaces its " \
                            "output directory whole: choose a directory of its own outside the app (without " \
                            "--out, it goes to #{File.join(@app, DEFAULT_OUT)})"
        end
        build_dir = File.join(@app, "build")
        return unless inside?(@dir, @app) && !inside?(@dir, build_dir)

        raise BuildError, "the output directory #{@dir} is inside the app, so the package would contain " \
                          "itself: choose a directory outside the app, or one under #{build_dir}"
      end

      def check_existing!
        check_dir!
        check_zip!
        check_template!
      end

      def check_dir!
        stat = lstat(@dir) or return
        if stat.symlink?
          raise BuildError, "the output directory #{@dir} is a symbolic link: give the directory itself, or a " \
                            "new one, as the output directory"
        end
        unless stat.directory?
          raise BuildError, "#{@dir} exists and is not a directory: move it, or choose another output directory"
        end
        return if Dir.empty?(@dir) || package?(@dir)

        raise BuildError, "the output directory #{@dir} is not empty and is not a package megamode made (it has " \
                          "no #{Files::PACKAGE_MARKER}), and a build replaces its output directory whole: " \
                          "choose a new or empty directory, or move what is in #{@dir} elsewhere"
      rescue SystemCallError => e
        raise BuildError, "cannot read the output directory #{@dir}: #{e.message}"
      end

      def check_zip!
        stat = lstat(@zip) or return
        return if stat.file? && zip_of_package?(@zip)

        raise BuildError, "#{@zip} is not a zip megamode made (its first entry is not #{Files::PACKAGE_MARKER}), " \
                          "and a build writes the package's zip there: move it, or choose another output directory"
      end

      def check_template!
        stat = lstat(@template) or return
        text = stat.file? ? File.binread(@template) : ""
        return if Files.own_template?(text)

        if text.match?(Files::TEMPLATE_STAMP)
          raise BuildError, "#{@template} was edited since megamode wrote it, and a build rewrites it: keep your " \
                            "version under another name (and deploy it with sam deploy --template-file NAME), or " \
                            "delete it to get a new one"
        end
        raise BuildError, "#{@template} was not written by megamode, and a build writes its SAM template there " \
                          "(beside the output directory): move it, or choose another output directory"
      end

      def package?(dir)
        marker = File.join(dir, Files::PACKAGE_MARKER)
        File.lstat(marker).file? && Files.package_marker?(File.binread(marker, 256))
      rescue SystemCallError
        false
      end

      # A zip's first local header names its first entry: a package's zip starts with the marker.
      def zip_of_package?(path)
        name = Files::PACKAGE_MARKER
        head = File.binread(path, 30 + name.bytesize).to_s
        head.bytesize == 30 + name.bytesize && head.start_with?("PK\x03\x04") &&
          head.byteslice(26, 2).unpack1("v") == name.bytesize && head.end_with?(name)
      rescue SystemCallError
        false
      end

      def lstat(path)
        File.lstat(path)
      rescue Errno::ENOENT, Errno::ENOTDIR
        nil
      end

      def inside?(path, dir)
        path.start_with?(File.join(dir, ""))
      end
    end
  end
end
