# frozen_string_literal: true

# What the SnapStart specs share, included in their example groups: the record the snapstart
# fixture app writes (spec/fixtures/apps/snapstart; `record` is the group's path of it), waiting
# for it, and the snapshot as a test can make one.
module SnapshotHarness
  # What the app recorded, one Hash a line.
  def received
    File.exist?(record) ? File.readlines(record).map { |l| JSON.parse(l) } : []
  end

  # The block's value once it is truthy, polled; an error after `seconds`.
  def wait_until(seconds = 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    until (value = yield)
      raise "timed out" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
    value
  end

  # The process groups of the environment: `pid`'s, and its children's (the app's server runs in
  # a group of its own).
  def groups(pid)
    children = Dir.glob("/proc/[0-9]*/stat").filter_map do |stat|
      fields = File.read(stat).rpartition(")").last.split
      fields[1].to_i == pid ? Integer(File.basename(File.dirname(stat))) : nil
    rescue Errno::ENOENT, Errno::ESRCH
      nil
    end
    [pid, *children].map { |p| Process.getpgid(p) }.uniq
  end

  # The snapshot, as the test can make one: every process of the environment stopped for longer
  # than puma keeps an idle connection (2 s in the fixture), then let go, and the restore answered.
  def freeze_and_restore(emulator, pid)
    frozen = groups(pid)
    expect(frozen.size).to be >= 2
    frozen.each { |group| Process.kill("STOP", -group) }
    sleep 3
    frozen.each { |group| Process.kill("CONT", -group) }
    emulator.restore!
  end
end
