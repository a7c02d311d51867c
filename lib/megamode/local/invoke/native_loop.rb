# frozen_string_literal: true

require "json"
require_relative "../../errors"
require_relative "../invoke"
require_relative "../lambda_environment"
require_relative "../runtime_api_emulator"

module Megamode::Local
  # A built package run the native way (`--mode native`): its exec wrapper (megamode/runtime)
  # starts megamode's Runtime API loop in the Lambda-like environment, against a Runtime API
  # emulator in this process. Answers Invoke's runtime interface, so `megamode invoke` and
  # `megamode serve` log START/END/REPORT around each event and freeze the environment between
  # events, as for the Ruby handler.
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
      raise Megamode::BootError, "the native loop is not running: see the log above" unless running?

      asked = @emulator.next_calls
      result = @emulator.invoke(JSON.generate(event), request_id: context.aws_request_id,
                                                      timeout_ms: context.get_remaining_time_in_millis,
                                                      trace_id: ENV.fetch("_X_AMZN_TRACE_ID", nil))
      raise Megamode::BootError, "the native loop gave no answer: see the log above" unless result

      # As on Lambda, the invocation ends when the runtime asks for the next event: what the loop
      # does after its response (its log lines) belongs to this invocation, and only then may the
      # environment be frozen.
      wait_for_next(asked + 1, context)
      body = JSON.parse(result.body)
      result.kind == :response ? body : body.slice("errorType", "errorMessage")
    end

    # The loop and everything it started (the app's server, in a process group of its own).
    def processes
      @pid ? [@pid, *descendants(@pid)] : []
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
      nil until @emulator.wait_for_next(1, 0.05) || !@emulator.init_errors.empty? || !running?
      error = @emulator.init_errors.first
      raise Megamode::BootError, JSON.parse(error.body)["errorMessage"] if error
      raise Megamode::BootError, "the native loop exited during init: see the log above" unless running?
    end

    def wait_for_next(count, context)
      nil until @emulator.wait_for_next(count, 0.05) || !running? || context.get_remaining_time_in_millis.zero?
    end

    def running?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    # The processes below `pid`, from /proc.
    def descendants(pid)
      children = Hash.new { |hash, parent| hash[parent] = [] }
      Dir.glob("/proc/[0-9]*/stat") do |path|
        stat = File.read(path)
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        children[stat[(stat.rindex(")") + 2)..].split[1].to_i] << stat.to_i
      rescue SystemCallError
        nil # it exited meanwhile
      end
      found = []
      queue = [pid]
      while (parent = queue.shift)
        found.concat(children[parent])
        queue.concat(children[parent])
      end
      found
    end
  end
end
