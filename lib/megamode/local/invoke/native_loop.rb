# frozen_string_literal: true

require "json"
require_relative "../../errors"
require_relative "../invoke"
require_relative "../lambda_environment"
require_relative "../runtime_api_emulator"

module Megamode::Local
  # A built package run the native way (`--runtime native`): its exec wrapper (megamode/runtime)
  # starts megamode's Runtime API loop in the Lambda-like environment, against a Runtime API
  # emulator in this process. Answers Invoke's runtime interface, so `megamode invoke` prints
  # the same START/END/REPORT log around each event as for the Ruby handler.
  class Invoke::NativeLoop
    def initialize(package, log:)
      @package = package
      @log = log
      @emulator = RuntimeApiEmulator.new
    end

    # Starts the loop; init ends when it asks for its first event (or fails).
    def init
      wrapper = File.join(@package, "megamode", "runtime")
      raise Megamode::BootError, "#{@package} has no megamode/runtime: rebuild it with this megamode" unless File.file?(wrapper)

      environment = LambdaEnvironment.new(@package)
      @log.puts "megamode: #{environment.limits}" if environment.limits
      env = environment.env.merge("AWS_LAMBDA_RUNTIME_API" => @emulator.address)
      @pid = Process.spawn(env, *environment.command(["/bin/sh", wrapper], ruby: false),
                           chdir: @package, out: @log, err: @log, pgroup: true)
      wait_for_first_next
    end

    def call(event, context)
      result = @emulator.invoke(JSON.generate(event), request_id: context.aws_request_id,
                                                      timeout_ms: context.get_remaining_time_in_millis,
                                                      trace_id: ENV.fetch("_X_AMZN_TRACE_ID", nil))
      raise Megamode::BootError, "the native loop gave no answer: see the log above" unless result

      body = JSON.parse(result.body)
      result.kind == :response ? body : body.slice("errorType", "errorMessage")
    end

    def server_pid
      nil
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

    def wait_for_first_next
      sleep 0.002 while @emulator.next_calls.zero? && @emulator.init_errors.empty? && running?
      error = @emulator.init_errors.first
      raise Megamode::BootError, JSON.parse(error.body)["errorMessage"] if error
      raise Megamode::BootError, "the native loop exited during init: see the log above" unless running?
    end

    def running?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end
  end
end
