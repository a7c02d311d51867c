# frozen_string_literal: true

module Megamode
  class Build
    # What the build made, measured against Lambda's limits, with advice where one is near or over.
    class Report
      MB = 1024 * 1024
      ZIP_UPLOAD_LIMIT = 50 * MB       # a zip uploaded directly (larger ones go through S3)
      UNZIPPED_LIMIT = 250 * MB        # the function's code and layers, unzipped
      TMP_DEFAULT = 512 * MB           # ephemeral storage without EphemeralStorage set
      TMP_MAX = 10_240 * MB
      # SnapStart refuses a function with more ephemeral storage than Lambda's default.
      SNAPSTART_TMP_MAX = 512 * MB
      # Room /tmp keeps beyond what a cold start puts there: logs, caches, uploads.
      TMP_ROOM = 64 * MB
      NEAR = 0.8
      ENTRY_OVERHEAD = 4096            # per file in /tmp, as megamode's space check counts it

      attr_reader :figures

      # Measures the package once (one walk of its tree); the template and the report both use it.
      # `target` and `verify`: what the package is for and what its verification found. `snapstart`:
      # the template turns SnapStart on, which caps ephemeral storage at 512 MB.
      def initialize(package:, zip:, manifest:, gems:, log:, target:, verify:, snapstart: false)
        @snapstart = snapstart
        @package = package
        @zip = zip
        @gems = gems
        @log = log
        @target = target
        @verify = verify
        @figures = measure(manifest)
      end

      # Where the measured package and zip were put, for what the report says.
      def placed(package:, zip:)
        @package = package
        @zip = zip
      end

      # Ephemeral storage with room to spare (logs, caches, uploads), in Lambda's 512 MB steps. With
      # SnapStart, 512 MB, its most: a package whose cold start would not leave /tmp TMP_ROOM there is
      # refused (BuildError).
      def ephemeral_mb
        @snapstart ? snapstart_ephemeral_mb : sized_mb
      end

      # Prints the report (`template`: where the SAM template was written) and returns its figures.
      def print(template)
        figures = @figures.merge(ephemeral_mb: ephemeral_mb)
        say "package #{@package} (#{@gems.packaged.size} gems in the lazy-load bundle)"
        say format("  zip             %8s  (direct upload limit %s)", mb(figures[:zip]), mb(ZIP_UPLOAD_LIMIT))
        say format("  unzipped        %8s  (limit %s with layers)", mb(figures[:unzipped]), mb(UNZIPPED_LIMIT))
        say format("  /tmp at boot    %8s  (default %s; the template asks for %d MB%s)",
                   mb(figures[:tmp]), mb(TMP_DEFAULT), figures[:ephemeral_mb], @snapstart ? ", SnapStart's most" : "")
        say "wrote #{@zip} and #{template}"
        @verify.summary.each { |line| say line }
        warnings(figures).each { |w| say "warning: #{w}" }
        local_verification.each { |line| say line }
        figures
      end

      private

      def snapstart_ephemeral_mb
        needed = @figures[:tmp] + TMP_ROOM
        return SNAPSTART_TMP_MAX / MB if needed <= SNAPSTART_TMP_MAX

        raise BuildError, "SnapStart refuses ephemeral storage above 512 MB, and this package needs #{mb(needed)} of " \
                          "/tmp: #{mb(@figures[:tmp])} at cold start (the app copied there and its gems unpacked) and " \
                          "#{mb(TMP_ROOM)} of room for logs and caches. Make the package smaller (gems the app does " \
                          "not need in production in a Gemfile group, large files under public/), or build without " \
                          "--snapstart (the template then asks for #{sized_mb} MB)"
      end

      def sized_mb
        wanted = @figures[:tmp] * 1.5 + TMP_ROOM
        ((wanted / TMP_DEFAULT).ceil * 512).clamp(512, TMP_MAX / MB)
      end

      # The zip's size, the unzipped package's, and the bytes /tmp must hold after a cold start: the
      # copied app and the unpacked gems, each file counted with megamode's space-check overhead.
      def measure(manifest)
        unzipped = 0
        app_bytes = 0
        app = File.join(@package, "app")
        Tree.walk(@package) do |path, stat|
          unzipped += stat.size if stat.file?
          app_bytes += (stat.file? ? stat.size : 0) + ENTRY_OVERHEAD if path.start_with?("#{app}/")
        end
        tmp = app_bytes + manifest["unpacked_bytes"] + manifest["files"] * ENTRY_OVERHEAD
        { zip: File.size(@zip), unzipped: unzipped, tmp: tmp }
      end

      def warnings(figures)
        list = []
        list << limit_warning(figures[:zip], ZIP_UPLOAD_LIMIT, "the zip",
                              "upload it through S3 (sam deploy does), which allows up to #{mb(UNZIPPED_LIMIT)} unzipped")
        list << limit_warning(figures[:unzipped], UNZIPPED_LIMIT, "the unzipped package",
                              "drop gems the app does not need in production (a group in the Gemfile) or " \
                              "large files under public/")
        list << limit_warning(figures[:tmp], TMP_MAX, "what /tmp must hold", "the app and its gems must shrink")
        list.compact
      end

      # A local package's verification: reported, not enforced.
      def local_verification
        return [] if !@target.local? || @verify.passed?

        ["warning: this package is for local runs only: as it is, it could not run on Lambda's #{@target.runtime} " \
         "(#{@target.arch}), for these reasons (a build with --runtime refuses them):", *@verify.offence_lines]
      end

      def limit_warning(value, limit, what, advice)
        return nil if value < limit * NEAR

        state = value > limit ? "is over" : "is near"
        "#{what} (#{mb(value)}) #{state} Lambda's limit of #{mb(limit)}: #{advice}"
      end

      def mb(bytes)
        format("%.1f MB", bytes.to_f / MB)
      end

      def say(message)
        @log.puts "megamode build: #{message}"
      end
    end
  end
end
