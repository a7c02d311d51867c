# frozen_string_literal: true

# What every benchmark in bench/ shares: the checkout's megamode, timing on the monotonic clock, and
# silencing the app's log lines (megamode writes them to stdout) while measuring.
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "megamode"
require "json"

module Bench
  # megamode's internal binding, whose single steps the benchmarks time (built by `rake bench` with
  # the bench feature).
  NATIVE = Megamode.const_get(:Native)

  module_function

  def now_ns
    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
  end

  # Nanoseconds each of `rounds` runs of the block took, sorted.
  def sample(rounds)
    rounds.times.map do
      start = now_ns
      yield
      now_ns - start
    end.sort
  end

  def median(sorted)
    sorted[sorted.size / 2]
  end

  # Runs `command` as a function's process against a new Runtime API emulator, with `env` and the
  # emulator's address; yields the emulator, the process's pid and the moment it was spawned, then
  # stops both.
  def with_function(command, env)
    require "megamode/local/runtime_api_emulator"
    emulator = Megamode::Local::RuntimeApiEmulator.new
    started = now_ns
    pid = Process.spawn(env.merge("AWS_LAMBDA_RUNTIME_API" => emulator.address), *command,
                        out: File::NULL, err: File::NULL, pgroup: true)
    yield emulator, pid, started
  ensure
    Process.kill("TERM", -pid) if pid
    Process.wait(pid) if pid
    emulator&.close
  end

  def quiet
    saved = $stdout.dup
    $stdout.reopen(File::NULL)
    yield
  ensure
    $stdout.reopen(saved)
  end
end
