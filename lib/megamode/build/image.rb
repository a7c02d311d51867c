# frozen_string_literal: true

require "open3"
require_relative "container"
require_relative "engine"

module Megamode
  class Build
    # `megamode build --image`: the package as a container image FROM Lambda's base image for its
    # runtime. The Dockerfile goes into the package directory (the image's build context), which
    # holds the package as the zip does; the image is that tree copied as it is into /var/task, so it
    # boots the way the zip boots (the lazy bundle unpacked into /tmp, the app copied there: /var/task
    # is read-only for an image as for a zip), and one image runs both ways: Lambda's runtime client
    # calls handler.handler (the image's CMD), or megamode's native loop runs as the entry point
    # (NATIVE_ENTRY_POINT, which the template sets as the function's ImageConfig). The base image's
    # entry point runs the runtime's bootstrap directly, so AWS_LAMBDA_EXEC_WRAPPER, which turns the
    # native loop on for a zip, does nothing in an image.
    #
    # SnapStart needs nothing in the image: Lambda publishes a SnapStart version of an image only if
    # the image calls the Runtime API's restore/next or carries the label
    # com.amazonaws.lambda.feature.snapstart="Allow" (which makes Lambda snapshot at the first
    # /next, running no hooks). megamode calls restore/next itself, from handler.rb or the native
    # loop, between the app's before-snapshot and after-restore hooks, so the image has no label.
    class Image
      DOCKERFILE = "Dockerfile"
      # What the build context holds that the image must not: the files that make it.
      DOCKERIGNORE = ".dockerignore"
      NATIVE_ENTRY_POINT = "/var/task/megamode/runtime"
      # Lambda's base images, by runtime (one name for both architectures, chosen by --platform).
      BASE = "public.ecr.aws/lambda/ruby"

      def self.base(runtime)
        "#{BASE}:#{runtime.delete_prefix("ruby")}"
      end

      # The tag an app's image gets when --tag gives none: megamode-APP:latest, APP the app
      # directory's name as an image name may spell it.
      def self.default_tag(app)
        name = File.basename(app).downcase.gsub(/[^a-z0-9._-]+/, "-").gsub(/\A[^a-z0-9]+|[^a-z0-9]+\z/, "")
        "megamode-#{name.empty? ? "app" : name}:latest"
      end

      def self.dockerfile(runtime, version)
        <<~DOCKERFILE
          # Written by megamode build #{version}: the package in this directory as a Lambda container
          # image. Build it here with `docker build -t TAG .` (or podman, finch); megamode build --image
          # builds it when an engine runs. Both ways of running a package work from it: the CMD is
          # the Ruby handler; the entry point #{NATIVE_ENTRY_POINT} runs megamode's native loop.
          FROM #{base(runtime)}
          # The package as the zip holds it, readable by Lambda's user, who owns none of it.
          COPY . ${LAMBDA_TASK_ROOT}/
          CMD ["handler.handler"]
        DOCKERFILE
      end

      # Writes the Dockerfile and .dockerignore into `package` (a directory of the package).
      def self.write(package, runtime:, version:)
        File.write(File.join(package, DOCKERFILE), dockerfile(runtime, version))
        File.write(File.join(package, DOCKERIGNORE), "#{DOCKERFILE}\n#{DOCKERIGNORE}\n")
      end

      # `dir`: the package with its Dockerfile; `arch`: x86_64 or arm64.
      def initialize(dir:, tag:, arch:)
        @dir = dir
        @tag = tag
        @arch = arch
      end

      # Builds the image with the engine that runs (raises BuildError with Engine's message when none
      # does, and with the engine's output, its failing step first, when the build fails).
      def build(engine = Engine.runnable)
        platform = Container::PLATFORMS.fetch(@arch)
        argv = [engine, "build", "--platform", platform, "-t", @tag, @dir]
        said, status = Open3.capture2e(*argv)
        return @tag if status.success?

        raise BuildError, failure(said, status, argv)
      end

      private

      # The step that failed (the engine's "STEP n/m: ..." or "#n [k/m] ..." line last before the
      # error), then the engine's error line, then all it said.
      def failure(said, status, argv)
        lines = said.lines.map(&:rstrip)
        step = lines.grep(/\A(STEP \d+\/\d+:|#\d+ \[)/).last
        error = lines.reverse.find { |l| l.match?(/\A(error|ERROR)\b|failed/i) } || lines.last
        engine = File.basename(argv.first)
        [base_missing(engine, step, error) ||
          "#{engine} build of #{@dir} failed (#{status.exitstatus ? "exit status #{status.exitstatus}" : status})",
         ("  at #{step}" if step), ("  #{error}" if error), "  the command: #{argv.join(" ")}", "  its output:",
         *lines.map { |l| "    #{l}" }].compact.join("\n")
      end

      # When the step that failed is the FROM: the base image is not on this machine and the engine
      # could not pull it (no network, no login, a tag AWS does not publish). Says which, and what to do.
      def base_missing(engine, step, error)
        base = step && step[/\A(?:STEP \d+\/\d+:|#\d+ \[[^\]]*\])\s*FROM\s+(?:--\S+\s+)*(\S+)/i, 1]
        return unless base

        "the base image #{base} is not on this machine and #{engine} could not pull it: pull it where the " \
          "registry can be reached (#{engine} pull #{base}), or build the image on a machine that can " \
          "(this package's Dockerfile is in #{@dir}); the engine said why below"
      end
    end
  end
end
