# frozen_string_literal: true

require "optparse"
require_relative "../runtime/errors"

module Megamode
  class Build
    # `megamode build`'s options and its part of the usage text. Megamode::CLI hands it the
    # command; the packager itself (megamode/build) is loaded only when a build runs, so the usage
    # text costs nothing of it.
    class CLI
      # The build's part of `megamode help` (Megamode::CLI puts the parts together).
      USAGE = <<~TEXT
        megamode build [--app DIR] [--out DIR] [--runtime ruby3.3|ruby3.4|ruby4.0] [--arch x86_64|arm64] [--local]
                       [--container [--dry-run]] [--image [--tag TAG] [--snapstart [--prime PATH ...]]] [--stream]
                       [--keep-secret PATH ...] [--no-boot-check]
            Makes a Lambda package of the app (default: the current directory) in DIR (default:
            APP/build/megamode), with DIR.zip and a SAM template.yaml beside it. It replaces only
            what megamode made, and refuses a DIR that holds the app or files of someone else's.
            The package is verified for its runtime (default: the build Ruby's, when Lambda offers
            it) and refused when a file could not run there; --local packages for local runs only.
            --container runs the whole build in Lambda's SAM build image for the runtime and arch,
            with docker, podman or finch (MEGAMODE_CONTAINER_ENGINE chooses); --dry-run prints its
            commands and runs nothing. --stream writes a template whose responses stream: the
            native loop, the Function URL in RESPONSE_STREAM mode, and a streaming REST API.
            Secrets stay out of the package (config/master.key, config/credentials/*.key, .env*
            but their templates): --keep-secret PATH (relative to the app; repeatable) packages one anyway.
            The build boots the package once, in production, with this shell's environment, and
            refuses an app that does not boot (naming why) or, for Rails, lacks its production
            SQLite database or its precompiled assets (naming the command that makes them);
            --no-boot-check packages it anyway, with a warning.
            --snapstart (with --image) writes a template with Lambda SnapStart on: each deploy publishes
            a version (AutoPublishAlias: live), which Lambda snapshots after its init, the app booted;
            /tmp stays within SnapStart's 512 MB. --prime PATH (repeatable, or PATH,PATH) names paths
            megamode requests before the snapshot, so what they load is in it (default: a Rails app's
            health check, /up, when its routes have it).
      TEXT

      # `argv`: what follows `build`. `usage_error`: says what is wrong with the arguments, with the
      # whole usage text, and gives the exit status (Megamode::CLI#usage_error).
      def initialize(argv, usage_error:, out: $stdout, err: $stderr)
        @argv = argv.dup
        @usage_error = usage_error
        @out = out
        @err = err
      end

      def run
        options = { keep_secrets: [], prime: [] }
        OptionParser.new do |o|
          o.on("--app DIR") { |v| options[:app] = v }
          o.on("--out DIR") { |v| options[:out] = v }
          o.on("--keep-secret PATH") { |v| options[:keep_secrets] << v }
          o.on("--runtime RUNTIME") { |v| options[:runtime] = v }
          o.on("--arch ARCH") { |v| options[:arch] = v }
          o.on("--local") { options[:local] = true }
          o.on("--container") { options[:container] = true }
          o.on("--dry-run") { options[:dry_run] = true }
          o.on("--stream") { options[:stream] = true }
          o.on("--image") { options[:image] = true }
          o.on("--tag TAG") { |v| options[:tag] = v }
          o.on("--snapstart") { options[:snapstart] = true }
          o.on("--prime PATH") { |v| options[:prime].concat(v.split(",").map(&:strip).reject(&:empty?)) }
          o.on("--no-boot-check") { options[:boot_check] = false }
        end.parse!(@argv)
        return @usage_error.call("unexpected arguments: #{@argv.join(" ")}") unless @argv.empty?
        return @usage_error.call("--dry-run goes with --container") if options[:dry_run] && !options[:container]
        return @usage_error.call("--tag goes with --image") if options[:tag] && !options[:image]

        require_relative "../build"
        Build.new(app: options[:app] || Dir.pwd, out: options[:out], log: @err, runtime: options[:runtime],
                  arch: options[:arch], local: options.fetch(:local, false),
                  container: options.fetch(:container, false), dry_run: options.fetch(:dry_run, false),
                  stdout: @out, stream: options.fetch(:stream, false),
                  keep_secrets: options[:keep_secrets], boot_check: options.fetch(:boot_check, true),
                  image: options.fetch(:image, false), tag: options[:tag],
                  snapstart: options.fetch(:snapstart, false), prime: options[:prime]).run
        0
      rescue OptionParser::ParseError => e
        @usage_error.call(e.message)
      rescue BuildError => e
        @err.puts "megamode build: #{e.message}"
        1
      end
    end
  end
end
