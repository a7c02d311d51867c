# frozen_string_literal: true

# Copying a 2,000-file, 20 MB app (in 200 directories) on tmpfs, as MEGAMODE_COPY_APP does, against
# `cp -a` of the same tree on the same filesystem, in the same run. Run with `rake bench` (after `rake compile`).
require_relative "support"
require "fileutils"

ROUNDS = Integer(ENV.fetch("ROUNDS", 15))
ROOT = File.join(File.directory?("/dev/shm") ? "/dev/shm" : Dir.tmpdir, "megamode-app-copy-bench-#{Process.pid}")
APP = File.join(ROOT, "app")

200.times do |d|
  dir = File.join(APP, "lib", "dir#{d}")
  FileUtils.mkdir_p(dir)
  10.times { |f| File.binwrite(File.join(dir, "file#{f}.rb"), Random.new(d * 10 + f).bytes(10 * 1024)) }
end

def fresh_tmp(n)
  File.join(ROOT, "tmp#{n}").tap { |t| FileUtils.rm_rf(t) }
end

i = 0
copied_app = Bench.sample(ROUNDS) { Bench::NATIVE.copy_app(APP, fresh_tmp(i += 1)) }
copied = Bench.sample(ROUNDS) do
  target = fresh_tmp(i += 1)
  system("cp", "-a", APP, target, exception: true)
end
FileUtils.rm_rf(ROOT)

ms = ->(ns) { ns / 1_000_000.0 }
puts "#{ROUNDS} rounds each, a 2,000-file, 20 MB app on #{File.dirname(ROOT)}; ms"
puts "| copy | median | min | max | ratio |"
puts "| --- | ---: | ---: | ---: | --- |"
puts format("| %-28s | %6.1f | %6.1f | %6.1f | 1.00x (reference) |", "cp -a", ms[Bench.median(copied)], ms[copied.first], ms[copied.last])
puts format("| %-28s | %6.1f | %6.1f | %6.1f | %.2fx |", "Megamode::Native.copy_app", ms[Bench.median(copied_app)], ms[copied_app.first], ms[copied_app.last], Bench.median(copied_app).to_f / Bench.median(copied))
