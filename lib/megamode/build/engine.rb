# frozen_string_literal: true

require "open3"

module Megamode
  class Build
    # The container engine megamode runs images with (`build --container`, and what runs images):
    # which one, and whether it can run containers here.
    #
    # MEGAMODE_CONTAINER_ENGINE names one (a name on PATH, or a path); else the first of NAMES on
    # PATH that can run containers. An engine on PATH is not enough: a Docker client without its
    # daemon (common in CI images and dev containers) is found first and runs nothing, so each is
    # asked (`ENGINE info`, which needs the daemon, or for Podman its storage and runtime) and one
    # that cannot is skipped for the next that can. The verdict is kept for the process: `info` is
    # asked once per engine.
    #
    # megamode passes the engine no options of its own: how it runs containers on a host (Podman's
    # OCI runtime, cgroup manager, ulimits) is the engine's configuration, containers.conf for
    # Podman (README, "Container engine"; bin/setup writes what a host like the test machines needs).
    module Engine
      # Looked for on PATH in this order.
      NAMES = %w[docker podman finch].freeze
      VARIABLE = "MEGAMODE_CONTAINER_ENGINE"
      # How long `info` may take before the engine counts as not answering (a daemon that hangs).
      INFO_TIMEOUT = 60

      # An engine's verdict: `ok`, and when not, `cause` (the first line of what it said that reads as
      # the error) and `command` (what was asked).
      Verdict = Struct.new(:ok, :cause, :command, keyword_init: true)

      @verdicts = {}
      @lock = Mutex.new

      class << self
        # The engine by name alone, not run: MEGAMODE_CONTAINER_ENGINE when set, else the first of
        # NAMES on PATH. What a dry run names. Raises BuildError, saying what was looked for, when
        # there is none.
        def find(env: ENV)
          forced(env) || on_path(env).first || raise(BuildError, none_message(env))
        end

        # The engine that can run containers: MEGAMODE_CONTAINER_ENGINE's (which must), else the first
        # of NAMES on PATH that can. Raises BuildError leading with the engine's own error when none can.
        # `instead`: what to do without an engine, where there is none (default: build --container's).
        def runnable(env: ENV, instead: nil)
          if (engine = forced(env))
            verdict = check(engine, env: env)
            return engine if verdict.ok

            raise BuildError, refusal([[engine, verdict]], forced: true)
          end
          found = on_path(env)
          raise BuildError, none_message(env, instead: instead) if found.empty?

          failed = []
          found.each do |engine|
            verdict = check(engine, env: env)
            return engine if verdict.ok

            failed << [engine, verdict]
          end
          raise BuildError, refusal(failed, forced: false)
        end

        # Whether `engine` can run containers, asked once per process (per path on `env`'s PATH).
        def check(engine, env: ENV)
          path = resolve(engine, env) || engine
          @lock.synchronize { @verdicts[path] ||= ask(path) }
        end

        # Forgets the verdicts (for the specs, whose fake engines change).
        def forget
          @lock.synchronize { @verdicts.clear }
        end

        def which(name, path)
          path.split(File::PATH_SEPARATOR).map { |dir| File.join(dir, name) }.find { |f| executable?(f) }
        end

        def executable?(file)
          File.file?(file) && File.executable?(file)
        end

        private

        def forced(env)
          name = env[VARIABLE].to_s
          return if name.empty?
          return name if resolve(name, env)

          raise BuildError, "#{VARIABLE}=#{name} names no executable (looked on PATH: #{env.fetch("PATH", "")}): " \
                            "set it to docker, podman or finch, or to an engine's path, or unset it"
        end

        def on_path(env)
          NAMES.select { |name| which(name, env.fetch("PATH", "")) }
        end

        def resolve(engine, env)
          return (executable?(engine) ? engine : nil) if engine.include?("/")

          which(engine, env.fetch("PATH", ""))
        end

        def none_message(env, instead: nil)
          instead ||= "build without --container, with Lambda's Ruby for the runtime (or --local)"
          "no container engine: found none of #{NAMES.join(", ")} on PATH (#{env.fetch("PATH", "")}): install " \
            "Docker (Docker Desktop on macOS), Podman or Finch and start it, or #{instead}"
        end

        # `ENGINE info`, its output on stdout ignored, its stderr kept for the cause.
        def ask(path)
          command = "#{File.basename(path)} info"
          Open3.popen3(path, "info") do |stdin, stdout, stderr, waiter|
            stdin.close
            readers = [stdout, stderr].map { |io| Thread.new { io.read } }
            unless waiter.join(INFO_TIMEOUT)
              Process.kill("KILL", waiter.pid)
              waiter.join
              readers.each(&:join)
              return Verdict.new(ok: false, cause: "`#{command}` did not answer within #{INFO_TIMEOUT} s",
                                 command: command)
            end
            said = readers.map(&:value).last.to_s
            status = waiter.value
            return Verdict.new(ok: true, command: command) if status.success?

            Verdict.new(ok: false, cause: cause(said, status), command: command)
          end
        rescue SystemCallError => e
          Verdict.new(ok: false, cause: "it does not start: #{e.message}", command: command)
        end

        # The line of what the engine said that names the error: the first that says error (Podman's
        # "Error: ...", a daemon's "ERROR: ...") or that the daemon cannot be reached, else the first.
        def cause(said, status)
          lines = said.lines.map(&:strip).reject(&:empty?)
          line = lines.find { |l| l.match?(/\A(error|erro\b)|cannot connect|permission denied/i) } || lines.first
          line || "`info` exited with status #{status.exitstatus || status} and said nothing"
        end

        # What the BuildError says: each engine's cause, its name, and what to do.
        def refusal(failed, forced:)
          first_engine, first = failed.first
          lines = failed.map { |engine, verdict| "#{engine}: #{verdict.cause} (`#{verdict.command}` failed)" }
          names = failed.map { |engine, _| File.basename(engine) }
          others = NAMES - names
          hint = []
          hint << "start Docker's daemon (Docker Desktop on macOS)" if names.include?("docker")
          hint << "start Finch's VM (`finch vm start`)" if names.include?("finch")
          if names.include?("podman")
            hint << "make Podman run containers as this user (`podman info` says why it cannot; on a host without " \
                    "systemd, containers.conf needs runtime runc, cgroup_manager cgroupfs and default_ulimits = []: " \
                    "see README, \"Container engine\")"
          end
          hint << "set #{VARIABLE}=#{others.first} to use #{others.first}" unless others.empty?
          hint << "install Podman (apt-get install podman runc)" unless names.include?("podman")
          what = if forced
                   "#{first_engine} (#{VARIABLE}) cannot run containers here"
                 elsif failed.size == 1
                   "#{first_engine}, the only container engine on PATH, cannot run containers here"
                 else
                   "none of the container engines on PATH (#{names.join(", ")}) can run containers here"
                 end
          "#{first.cause}: #{what}#{failed.size > 1 ? " (#{lines.join("; ")})" : ""}. To fix it: #{hint.join(", or ")}"
        end
      end
    end
  end
end
