# frozen_string_literal: true

# Copying a real Rails app, as MEGAMODE_COPY_APP does: the scaffold app the specs generate offline
# with this machine's `rails`, against `cp -a` of it on the same filesystem, in the same run. Run with `rake bench`.
require_relative "support"
require "fileutils"
require "tmpdir"
require_relative "../spec/support/rails_app"

ROUNDS = Integer(ENV.fetch("ROUNDS", 15))
base = File.directory?("/dev/shm") ? "/dev/shm" : Dir.tmpdir
app = File.join(base, "megamode-rails-bench-#{Process.pid}")
FileUtils.cp_r(RailsApp.path, app)
files = Dir.glob("#{app}/**/*", File::FNM_DOTMATCH).count { |f| File.file?(f) }
bytes = Dir.glob("#{app}/**/*", File::FNM_DOTMATCH).sum { |f| File.file?(f) ? File.size(f) : 0 }

n = 0
fresh = ->(name) { File.join(base, "megamode-rails-bench-#{Process.pid}-#{name}#{n += 1}").tap { |d| FileUtils.rm_rf(d) } }
targets = []
copied_app = Bench.sample(ROUNDS) { targets << fresh.call("t"); Bench::NATIVE.copy_app(app, targets.last) }
copied = Bench.sample(ROUNDS) { targets << fresh.call("c"); system("cp", "-a", app, targets.last, exception: true) }
(targets + [app]).each { |t| FileUtils.rm_rf(t) }

ms = ->(ns) { ns / 1_000_000.0 }
puts "Rails #{RailsApp.rails_version} scaffold app: #{files} files, #{format("%.1f", bytes / 1e6)} MB (gems not vendored); #{ROUNDS} rounds on #{base}; ms"
puts "| copy | median | min | max | ratio |"
puts "| --- | ---: | ---: | ---: | --- |"
puts format("| %-24s | %6.2f | %6.2f | %6.2f | 1.00x (reference) |", "cp -a", ms[Bench.median(copied)], ms[copied.first], ms[copied.last])
puts format("| %-24s | %6.2f | %6.2f | %6.2f | %.2fx |", "Megamode::Native.copy_app", ms[Bench.median(copied_app)], ms[copied_app.first], ms[copied_app.last], Bench.median(copied_app).to_f / Bench.median(copied))
