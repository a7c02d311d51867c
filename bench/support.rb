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

  def quiet
    saved = $stdout.dup
    $stdout.reopen(File::NULL)
    yield
  ensure
    $stdout.reopen(saved)
  end
end
