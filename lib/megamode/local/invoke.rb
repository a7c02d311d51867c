# frozen_string_literal: true

require "json"
require_relative "../local"
require_relative "identity"

module Megamode::Local
  # One warm Lambda environment on this machine: init, then each event in order through the
  # handler, with Lambda's START/END/REPORT lines around each. What init and the handler are comes
  # from a runtime: Invoke::App (an app directory, through this megamode), Invoke::Package (a built
  # package's handler.rb, through the megamode it carries) or Invoke::NativeLoop (a built package's
  # native Runtime API loop).
  #
  # A runtime answers `init` (may raise; Lambda would report it and try again), `call(event,
  # context)` (`context`: the context's fields, Identity.context_fields), `processes` (the pids of the execution environment: the memory they used is
  # reported, and they are what freezes) and `shutdown`; and may answer `restore_ms` (SnapStart: the
  # init ended with a snapshot restored, which took that long after the restore: the first REPORT
  # then gives Restore Duration and no Init Duration, as Lambda's for a restored environment does).
  #
  # Every local run goes through here: `megamode invoke` and `megamode serve`, for an app or a
  # package, through its handler or its native loop (exe/megamode-handler-process runs it).
  class Invoke
    # `freeze`: between invocations the environment's processes are stopped (SIGSTOP) and continued
    # (SIGCONT) when the next event arrives, as Lambda freezes an idle execution environment: each
    # process group of theirs (the app's server runs in one of its own, with what it started) but
    # this process's.
    def initialize(runtime:, timeout:, out:, log:, freeze: false)
      @runtime = runtime
      @timeout = timeout
      @out = out
      @log = log
      @freeze = freeze
    end

    def run(events)
      with_stdout_as_log do
        init_ms = measure { init }
        restore_ms = @runtime.restore_ms if @runtime.respond_to?(:restore_ms)
        first = true
        # `each`, not `each_with_index`: events may be a lazy stream that arrives one at a time.
        events.each do |event|
          thaw
          @out.puts JSON.generate(invoke(event, init_ms: first && !restore_ms ? init_ms : nil,
                                                restore_ms: first ? restore_ms : nil))
          @out.flush
          first = false
          freeze
        end
      ensure
        thaw
        # Inside, so the server's last lines also go to the log.
        @runtime.shutdown
      end
    end

    # Stops (SIGSTOP) the process groups of `pids` but this process's, as Lambda freezes an
    # environment: the groups that were stopped, for `continue`.
    def self.stop(pids)
      groups = pids.filter_map do |pid|
        Process.getpgid(pid)
      rescue SystemCallError
        nil # it exited
      end
      (groups.uniq - [Process.getpgrp]).select { |group| signal_group("STOP", group) }
    end

    # Continues (SIGCONT) the process groups `stop` stopped.
    def self.continue(groups)
      groups.each { |group| signal_group("CONT", group) }
    end

    # SnapStart's snapshot, taken (the init asked `emulator` for the restore), restored: at once, or
    # after the process groups of `pids` (but this process's) were stopped for `seconds`, as a
    # snapshot restored that much later finds them. Says which on `log`, as "megamode:": both
    # `megamode invoke` and `megamode serve` run it, and it is the same step under either.
    def self.restore(emulator, seconds:, pids:, log:)
      taken = "megamode: SnapStart: the init is over and the snapshot taken"
      unless seconds.positive?
        log.puts "#{taken}; restoring it now"
        return emulator.restore!
      end

      log.puts "#{taken}; restoring it after a freeze of #{format("%g", seconds)} s (every process of " \
               "the environment stopped, as in a snapshot restored that much later)"
      log.flush
      frozen = stop(pids)
      begin
        sleep seconds
      ensure
        continue(frozen)
      end
      emulator.restore!
    end

    # The processes below `pid`, from /proc.
    def self.descendants(pid)
      children = Hash.new { |hash, parent| hash[parent] = [] }
      Dir.glob("/proc/[0-9]*/stat") do |path|
        stat = File.binread(path) # a process's name may have any bytes
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

    def self.signal_group(signal, group)
      Process.kill(signal, -group)
      true
    rescue SystemCallError
      false
    end

    private

    # On Lambda everything written to stdout is the log. Here stdout carries the results, so what the
    # handler, the app or megamode write to it goes to the log (stderr) instead.
    def with_stdout_as_log
      saved = $stdout.dup
      @out = saved if @out.equal?($stdout)
      $stdout.reopen(@log)
      $stdout.sync = true
      yield
    ensure
      $stdout.reopen(saved)
    end

    def freeze
      return unless @freeze

      @frozen = Invoke.stop(@runtime.processes)
    end

    def thaw
      Invoke.continue(@frozen) if @frozen
      @frozen = nil
    end

    def init
      @runtime.init
    rescue StandardError, ScriptError => e
      # Lambda reports init errors on the first invocation; the server is tried again then.
      @log.puts "megamode: init: #{e.class}: #{e.message}"
    end

    def invoke(event, init_ms:, restore_ms: nil)
      trace_id = Identity.trace_id
      context = Identity.context_fields(timeout: @timeout, trace_id: trace_id)
      id = context[:aws_request_id]
      # As Lambda's runtime, the invocation's X-Ray trace header in ENV too, for the handler's own
      # code (X-Ray SDKs read it there); megamode reads it from the context.
      ENV["_X_AMZN_TRACE_ID"] = trace_id
      @log.puts "START RequestId: #{id} Version: $LATEST"
      result = nil
      duration = measure do
        result = @runtime.call(event, context)
      rescue StandardError => e
        @log.puts "ERROR RequestId: #{id} #{e.class}: #{e.message}"
        result = { "errorType" => e.class.name, "errorMessage" => e.message }
      end
      @log.puts "END RequestId: #{id}"
      @log.puts report(id, duration, context, init_ms, restore_ms)
      result
    end

    def report(id, duration, context, init_ms, restore_ms)
      line = "REPORT RequestId: #{id}\tDuration: #{format("%.2f", duration)} ms\t" \
             "Billed Duration: #{duration.ceil} ms\tMemory Size: #{context[:memory_limit_in_mb]} MB\t" \
             "Max Memory Used: #{max_memory_mb} MB"
      line += "\tInit Duration: #{format("%.2f", init_ms)} ms" if init_ms
      if restore_ms
        line += "\tRestore Duration: #{format("%.2f", restore_ms)} ms\tBilled Restore Duration: #{restore_ms.ceil} ms"
      end
      line
    end

    def measure
      start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      yield
      (Process.clock_gettime(Process::CLOCK_MONOTONIC) - start) * 1000
    end

    # Lambda counts the whole environment: the runtime's processes and the app's server.
    def max_memory_mb
      kb = @runtime.processes.sum { |pid| peak_rss_kb(pid) }
      (kb / 1024.0).ceil
    end

    def peak_rss_kb(pid)
      # Bytes: the process's name is on its first line, in whatever encoding it has.
      File.foreach("/proc/#{pid}/status", mode: "rb") { |l| return l.split[1].to_i if l.start_with?("VmHWM:") }
      0
    rescue SystemCallError
      0
    end
  end
end
