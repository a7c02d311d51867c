# frozen_string_literal: true

# Runs a block in a forked child with a hard limit on its memory and a generous deadline, and
# returns what the block returned (through Marshal). For specs of "bounded work": code that would
# take the machine's memory gets NoMemoryError in the child instead, and code that would hang is
# killed; either fails the spec, which asserts on what the block returns, never on how fast.
module BoundedChild
  class Exceeded < StandardError; end

  module_function

  # `memory`: bytes of address space the child may add to what it has at the fork.
  def run(seconds: 120, memory: 1 << 30)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      Process.setrlimit(:AS, vm_size + memory)
      result = begin
        [:ok, yield]
      rescue NoMemoryError, StandardError => e
        [:raised, "#{e.class}: #{e.message[0, 500]}"]
      end
      writer.binmode.write(Marshal.dump(result))
      writer.close
      exit!(0)
    end
    writer.close
    outcome, status = read_within(reader.binmode, pid, seconds)
    kind, value = outcome.empty? ? [:raised, "the child died without an answer (#{status})"] : Marshal.load(outcome) # rubocop:disable Security/MarshalLoad
    raise Exceeded, "in a child limited to #{memory >> 20} MB more: #{value}" if kind == :raised

    value
  ensure
    reader&.close
  end

  def read_within(reader, pid, seconds)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    data = +"".b
    loop do
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      unless left.positive? && reader.wait_readable(left)
        Process.kill(:KILL, pid)
        Process.wait(pid)
        raise Exceeded, "the child was still working after #{seconds} s (a hang)"
      end
      chunk = reader.read_nonblock(1 << 16, exception: false)
      break if chunk.nil?

      data << chunk unless chunk == :wait_readable
    end
    [data, Process.wait2(pid).last]
  end

  def vm_size
    File.read("/proc/self/status")[/^VmSize:\s+(\d+) kB/, 1].to_i * 1024
  end
end
