# frozen_string_literal: true

require "rbconfig"

module Megamode
  class Build
    # What the build made, measured against Lambda's limits, with advice where one is near or over.
    class Report
      MB = 1024 * 1024
      ZIP_UPLOAD_LIMIT = 50 * MB       # a zip uploaded directly (larger ones go through S3)
      UNZIPPED_LIMIT = 250 * MB        # the function's code and layers, unzipped
      TMP_DEFAULT = 512 * MB           # ephemeral storage without EphemeralStorage set
      TMP_MAX = 10_240 * MB
      NEAR = 0.8
      ENTRY_OVERHEAD = 4096            # per file in /tmp, as megamode's space check counts it
      LAMBDA_RUBIES = %w[3.2 3.3 3.4].freeze

      class << self
        # The Lambda runtime for the Ruby building the package: the gems' native extensions and
        # their directory (ruby/<ABI>) are this Ruby's, so the function must run the same one.
        def runtime
          minor = RUBY_VERSION[/\A\d+\.\d+/]
          LAMBDA_RUBIES.include?(minor) ? "ruby#{minor}" : "ruby3.3"
        end

        def runtime_matches?
          LAMBDA_RUBIES.include?(RUBY_VERSION[/\A\d+\.\d+/])
        end

        def architecture
          RbConfig::CONFIG["host_cpu"].match?(/aarch64|arm64/) ? "arm64" : "x86_64"
        end

        # Bytes /tmp must hold after a cold start: the staged app and the unpacked gems.
        def tmp_needed(package, manifest)
          app_bytes, app_entries = Tree.size(File.join(package, "app"))
          app_bytes + app_entries * ENTRY_OVERHEAD +
            manifest["unpacked_bytes"] + manifest["files"] * ENTRY_OVERHEAD
        end

        # Ephemeral storage with room to spare (logs, caches, uploads), in Lambda's 512 MB steps.
        def ephemeral_mb(package, manifest)
          wanted = tmp_needed(package, manifest) * 1.5 + 64 * MB
          ((wanted / TMP_DEFAULT).ceil * 512).clamp(512, TMP_MAX / MB)
        end
      end

      def initialize(package:, zip:, template:, manifest:, gems:, log:)
        @package = package
        @zip = zip
        @template = template
        @manifest = manifest
        @gems = gems
        @log = log
      end

      # Prints the report and returns its figures.
      def print
        figures = measure
        say "package #{@package} (#{@gems.packaged.size} gems in the lazy-load bundle)"
        say format("  zip             %8s  (direct upload limit %s)", mb(figures[:zip]), mb(ZIP_UPLOAD_LIMIT))
        say format("  unzipped        %8s  (limit %s with layers)", mb(figures[:unzipped]), mb(UNZIPPED_LIMIT))
        say format("  /tmp at boot    %8s  (default %s; the template asks for %d MB)",
                   mb(figures[:tmp]), mb(TMP_DEFAULT), figures[:ephemeral_mb])
        say "wrote #{@zip} and #{@template}"
        warnings(figures).each { |w| say "warning: #{w}" }
        figures
      end

      private

      def measure
        unzipped, = Tree.size(@package)
        {
          zip: File.size(@zip), unzipped: unzipped, tmp: self.class.tmp_needed(@package, @manifest),
          ephemeral_mb: self.class.ephemeral_mb(@package, @manifest)
        }
      end

      def warnings(figures)
        list = []
        list << limit_warning(figures[:zip], ZIP_UPLOAD_LIMIT, "the zip",
                              "upload it through S3 (sam deploy does), which allows up to #{mb(UNZIPPED_LIMIT)} unzipped")
        list << limit_warning(figures[:unzipped], UNZIPPED_LIMIT, "the unzipped package",
                              "drop gems the app does not need in production (a group in the Gemfile) or " \
                              "large files under public/")
        list << limit_warning(figures[:tmp], TMP_MAX, "what /tmp must hold", "the app and its gems must shrink")
        unless self.class.runtime_matches?
          list << "this build ran on Ruby #{RUBY_VERSION}, which Lambda does not offer (#{LAMBDA_RUBIES.join(", ")}): " \
                  "the gems are laid out for Ruby #{RbConfig::CONFIG["ruby_version"]} and native extensions are " \
                  "built for it; build with the Ruby the function runs (the template says #{self.class.runtime})"
        end
        native = @gems.native
        unless native.empty?
          list << "gems with native extensions (#{native.join(", ")}) are packaged as built on this machine; " \
                  "they work on Lambda only when built on a matching system (Amazon Linux, #{self.class.architecture}, " \
                  "Ruby #{RUBY_VERSION[/\A\d+\.\d+/]}), e.g. in the SAM build image"
        end
        list.compact
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
