# frozen_string_literal: true

require "json"
require_relative "../../runtime/errors"
require_relative "../invoke"
require_relative "../lambda_environment"
require_relative "../runtime_api_emulator"

module Megamode::Local
  # A built package run the native way (`--mode native`): its exec wrapper (megamode/runtime)
  # starts megamode's Runtime API loop in the Lambda-like environment, against a Runtime API
  # emulator in this process. Answers Invoke's runtime interface, so `megamode invoke` and
  # `megamode serve` log START/END/REPORT around each event and freeze the environment between
  # events, as for the Ruby handler.
  #
  # With `stream` (an IO: `megamode serve --stream`), the loop runs with
  # MEGAMODE_INVOKE_MODE=response_stream, and a streamed response is passed on as it arrives, one
  # JSON line per part: `{"megamode_stream": "prelude", "prelude": {...}}`, then `{"megamode_stream":
  # "chunk", "data": <base64>}` for each piece, and as the result `{"megamode_stream": "end"}`, with
  # `errorType` and `errorMessage` when it broke off. `app: true` runs an app directory's native loop
  # with this megamode (no package, no Lambda-like environment).
  #
  # SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start in this environment): the snapshot the init
  # ends with is restored before the first event, after `restore_after` seconds in which every
  # process of the environment is stopped, as an environment restored long after its snapshot was
  # (its clocks jump, its peers closed what it held open).
  class Invoke::NativeLoop
    LIB = File.expand_path("../../..", __dir__)

    def initialize(package, log:, stream: nil, app: false, restore_after: 0)
      @package = package
      @log = log
      @stream = stream
      @app = app
      @restore_after = restore_after
      # AWS_LAMBDA_INITIALIZATION_TYPE reaches the function from this environment (LambdaEnvironment).
      @snap_start = ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
      @emulator = RuntimeApiEmulator.new(snap_start: @snap_start)
    end

    # Starts the loop; init ends when it asks for its first event (or fails). With SnapStart, the
    # snapshot the init ends with is restored, after the freeze `restore_after` asks for.
    def init
      @pid = spawn_loop
      restore_snapshot if @snap_start
      wait_for_first_next
    end

    def call(event, context)
      # The loop ends after posting its init's error (or, with SnapStart, its restore's), as the
      # environment does on Lambda: every event gets that error, at once, not once the loop has
      # gone (it may still be stopping the app's server) or after the wait for an answer.
      failure = init_failure
      raise Megamode::BootError, failure if failure
      raise Megamode::BootError, "#{what} is not running: see the log above" unless running?

      asked = @emulator.next_calls
      result = @emulator.invoke(JSON.generate(event), request_id: context[:aws_request_id],
                                                      timeout_ms: remaining_ms(context),
                                                      trace_id: context[:trace_id], **streaming)
      raise Megamode::BootError, "#{what} gave no answer: see the log above" unless result

      # As on Lambda, the invocation ends when the runtime asks for the next event: what the loop
      # does after its response (its log lines) belongs to this invocation, and only then may the
      # environment be frozen.
      wait_for_next(asked + 1, context)
      outcome(result, context)
    end

    # The loop and everything it started (the app's server, in a process group of its own).
    def processes
      @pid ? [@pid, *Invoke.descendants(@pid)] : []
    end

    # SnapStart: the milliseconds from the restore to the loop's first `next` (RuntimeApiEmulator),
    # for the first invocation's REPORT; nil without SnapStart or before that `next`.
    def restore_ms
      @emulator.restore_ms if @snap_start
    end

    def shutdown
      if @pid
        Process.kill("TERM", -@pid)
        Process.wait(@pid)
      end
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      @pid = nil
      @emulator.close
    end

    private

    # What runs the events, as the errors name it.
    def what
      "the native loop"
    end

    # Starts the process that runs the loop, against the emulator; its pid.
    def spawn_loop
      env, command = @app ? app_loop : package_loop
      env = env.merge("AWS_LAMBDA_RUNTIME_API" => @emulator.address)
      env["MEGAMODE_INVOKE_MODE"] = "response_stream" if @stream
      Process.spawn(env, *command, chdir: @package, out: @log, err: @log, pgroup: true)
    end

    def package_loop
      wrapper = File.join(@package, "megamode", "runtime")
      raise Megamode::BootError, "#{@package} has no megamode/runtime: rebuild it with this megamode" unless File.file?(wrapper)

      environment = LambdaEnvironment.new(@package)
      @log.puts "megamode: #{environment.limits}" if environment.limits
      [environment.env, environment.command(["/bin/sh", wrapper], ruby: false)]
    end

    def app_loop
      [{ "MEGAMODE_APP_ROOT" => File.expand_path(@package) },
       [RbConfig.ruby, "-I", LIB, "-e", 'require "megamode/runtime"; Megamode::Runtime.start']]
    end

    def streaming
      return {} unless @stream

      { on_prelude: ->(prelude) { stream_line("megamode_stream" => "prelude", "prelude" => prelude) },
        on_chunk: ->(data) { stream_line("megamode_stream" => "chunk", "data" => [data].pack("m0")) } }
    end

    def stream_line(message)
      @stream.puts(JSON.generate(message))
      @stream.flush
    end

    def outcome(result, context)
      case result.kind
      when :gone
        { "errorType" => "Sandbox.Timedout",
          "errorMessage" => "Task timed out: the result of #{context[:aws_request_id]} came after its deadline" }
      when :response
        return JSON.parse(result.body) unless result.streamed
        return { "megamode_stream" => "end" }.merge(result.error&.slice("errorType", "errorMessage") || {}) if @stream

        whole(result)
      else
        (result.error || JSON.parse(result.body)).slice("errorType", "errorMessage")
      end
    end

    # A streamed response shown whole, in a Function URL's buffered shape (`megamode invoke` of a
    # package whose environment asks for streaming), or the error it broke off with.
    def whole(result)
      return result.error.slice("errorType", "errorMessage") if result.error

      body = result.body.dup.force_encoding(Encoding::UTF_8)
      text = body.valid_encoding?
      (result.prelude || {}).merge("body" => text ? body : [result.body].pack("m0"), "isBase64Encoded" => !text)
    end

    # SnapStart: once the init asked for the restore (or, without the lifecycle, for its first
    # event), the snapshot is taken and restored: at once, or after the environment's processes were
    # stopped for `restore_after` seconds (Invoke.stop, as between events).
    def restore_snapshot
      nil until @emulator.wait_for_snapshot(0.05) || !@emulator.init_errors.empty? || !running?
      return unless @emulator.init_errors.empty? && running?

      Invoke.restore(@emulator, seconds: @restore_after, pids: processes, log: @log)
    end

    def wait_for_first_next
      nil until @emulator.wait_for_next(1, 0.05) || !@emulator.init_errors.empty? || !running?
      failure = init_failure
      raise Megamode::BootError, failure if failure
      raise Megamode::BootError, "#{what} exited during init: see the log above" unless running?
    end

    # The message of the error the loop posted for its init or its restore, or nil.
    def init_failure
      error = @emulator.init_errors.first || @emulator.restore_errors.first
      error && JSON.parse(error.body)["errorMessage"]
    end

    def wait_for_next(count, context)
      nil until @emulator.wait_for_next(count, 0.05) || !running? || !remaining_ms(context).positive?
    end

    # The milliseconds left of the invocation whose context's fields are `context` (the loop, in
    # its own process, makes the context object itself).
    def remaining_ms(context)
      context[:deadline_ms] - Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond)
    end

    def running?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end
  end
end
