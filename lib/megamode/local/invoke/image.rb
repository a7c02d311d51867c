# frozen_string_literal: true

require "open3"
require "securerandom"
require_relative "native_loop"

module Megamode::Local
  # A container image made by `megamode build --image` (or any image FROM Lambda's base image), run
  # as Lambda runs one: a read-only root with a fresh /tmp, as a user that owns nothing in it, with
  # Lambda's variables and no others, the Runtime API served from outside by the emulator on this
  # machine's loopback (the container shares its network). `mode` handler: the image's CMD through
  # Lambda's runtime client; native: megamode's native loop as the entry point, as the template's
  # ImageConfig sets it on Lambda. The runtime interface is NativeLoop's, so START/END/REPORT and
  # the results are the same, and the container's processes are frozen between events; the
  # container is removed when the run ends, however it ends.
  class Invoke::Image < Invoke::NativeLoop
    # Lambda's sandbox user, as the stand-in's run flavour has it: it owns nothing in the image.
    USER = "993:993"
    NATIVE_ENTRY_POINT = "/var/task/megamode/runtime"

    # `engine`: the container engine's path or name (Megamode::Build::Engine.runnable's);
    # `variables`: the function's own (`--env`), as its configuration gives them on Lambda.
    def initialize(tag, engine:, log:, mode: "handler", stream: nil, variables: {}, restore_after: 0)
      super(tag, log: log, stream: stream, restore_after: restore_after)
      @function_variables = variables
      @tag = tag
      @engine = engine
      @mode = mode
      @name = "megamode-invoke-#{SecureRandom.hex(6)}"
    end

    # Init, then the container's first process as this machine numbers it: its processes (that one
    # and what it started, the app's server) are the environment's, whose memory is reported and
    # which are frozen between events, as a package's are (and, with SnapStart, before the restore).
    def init
      super
      container_pid
    end

    # The container's processes (not this process's children: the engine's).
    def processes
      pid = container_pid
      pid ? [pid, *Invoke.descendants(pid)] : []
    end

    # Removes the container; the engine's client, whose container is gone, then ends by itself (a
    # signal to it would be forwarded to a container no longer there, which it complains of).
    def shutdown
      return @emulator.close unless @pid

      system(@engine, "rm", "-f", "-t", "0", @name, out: File::NULL, err: File::NULL)
      Process.wait(@pid)
    rescue Errno::ECHILD
      nil
    ensure
      @pid = nil
      @emulator.close
    end

    # The engine's command that runs the image.
    def command
      # Podman adds TERM and `container` of its own, which Lambda's environment does not have.
      unset = File.basename(@engine) == "podman" ? %w[--unsetenv TERM --unsetenv container] : []
      entry = @mode == "native" ? ["--entrypoint", NATIVE_ENTRY_POINT] : []
      [@engine, "run", "--rm", "--name", @name, "--read-only", "--tmpfs", "/tmp", "--network", "host",
       "--user", USER, *unset, *entry, *variables.flat_map { |k, v| ["-e", "#{k}=#{v}"] }, @tag,
       # The entry point is the image's CMD's reader: the native loop's gets it too, and ignores it.
       *("handler.handler" if @mode == "native")]
    end

    private

    # The container's first process, once the engine runs it (asked of the engine until then).
    def container_pid
      return @container_pid if @container_pid || !@pid

      pid = Open3.capture2(@engine, "inspect", "--format", "{{.State.Pid}}", @name).first.to_i
      @container_pid = pid if pid.positive?
    end

    def what
      @mode == "native" ? "the image's native loop" : "the image's runtime"
    end

    # Lambda's variables for the function (the image holds the base image's own: PATH, LANG,
    # LAMBDA_TASK_ROOT, ...), after the function's own, which cannot replace them (Lambda reserves them).
    def variables
      vars = {
        "AWS_LAMBDA_RUNTIME_API" => @emulator.address, "AWS_LAMBDA_FUNCTION_NAME" => Identity::FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION" => Identity::FUNCTION_VERSION,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Identity::MEMORY_MB.to_s,
        "AWS_LAMBDA_LOG_GROUP_NAME" => Identity.log_group, "AWS_LAMBDA_LOG_STREAM_NAME" => Identity.log_stream,
        "AWS_REGION" => Identity::REGION, "AWS_DEFAULT_REGION" => Identity::REGION,
        "AWS_LAMBDA_INITIALIZATION_TYPE" => ENV.fetch("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
      }
      vars["MEGAMODE_INVOKE_MODE"] = "response_stream" if @stream
      @function_variables.merge(vars)
    end

    def spawn_loop
      @log.puts "megamode: #{command.join(" ")}" if ENV["MEGAMODE_DEBUG"]
      Process.spawn(*command, out: @log, err: @log, pgroup: true)
    end
  end
end
