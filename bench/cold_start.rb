# frozen_string_literal: true

# Cold start of the Rails scaffold app (issue 9, item 3): from its package built with `megamode
# build`, run by `megamode invoke --package` in the Lambda-like environment (read-only task root,
# a fresh tmpfs /tmp each round, so every round is a new execution environment), against the app's
# own boot to its first response with plain `bundle exec puma` from a writable copy, in the same run.
# Then (issue 20) the same app with bootsnap, as `rails new` makes it, from its package: with the
# cache the build ships, with an empty cache (the package without it) and with bootsnap disabled
# (DISABLE_BOOTSNAP), in turn in each round, copied where Lambda copies the app (MEGAMODE_TMP's default); and
# (issue 27) from the package of the same app booted in place before the build (its own cache in tmp/).
# Run with `rake bench` (after `rake compile`); ROUNDS sets the rounds, COLD_START=bootsnap runs only
# the bootsnap part. Under `bench/cpu_share SHARE`, every process of it is held to that share of one
# CPU, as Lambda holds a function to its memory's (1769 MB: one vCPU; 1024 MB: 0.58).
require_relative "support"
require "fileutils"
require "net/http"
require "open3"
require "socket"
require "tmpdir"
$LOAD_PATH.unshift File.expand_path("../spec", __dir__)
module SpecHelpers
  ROOT = File.expand_path("..", __dir__)
end
require "support/rails_app"
require "support/package_build"
require "support/built_rails"
require "megamode/build"

ROUNDS = Integer(ENV.fetch("ROUNDS", 7))
SECRET = { "SECRET_KEY_BASE" => "bench#{"0" * 64}", "FORCE_SSL" => "0" }.freeze
WORK = Dir.mktmpdir("megamode-cold-", File.directory?("/dev/shm") ? "/dev/shm" : Dir.tmpdir)
at_exit { FileUtils.rm_rf(WORK) }

event = File.join(WORK, "event.json")
File.write(event, JSON.generate(PackageBuild.staged_event("/posts")))

# Milliseconds of each phase, from megamode's own log lines. `tmp`: MEGAMODE_TMP (nil: its default).
def megamode_round(package, event, tmp, env = {})
  out, log, status = Open3.capture3(SECRET.merge("MEGAMODE_TMP" => tmp).merge(env), RbConfig.ruby,
                                    PackageBuild::EXE, "invoke", "--package", package, "--event", event)
  raise "megamode invoke failed:\n#{log}" unless status.success? && JSON.parse(out)["statusCode"] == 200

  cold = log[/cold start: copy (\d+) ms, lazy-load (\d+) ms, spawn to ready (\d+) ms(?: \([^)]*\))?, first response (\d+) ms/]
  raise "no cold start line in:\n#{log}" unless cold

  copy, lazy, ready, first = Regexp.last_match.captures.map(&:to_f)
  init = log[/Init Duration: ([\d.]+) ms/, 1].to_f
  duration = log[/REPORT RequestId: \S+\tDuration: ([\d.]+) ms/, 1].to_f
  { copy: copy, lazy: lazy, ready: ready, first: first, total: copy + lazy + first, init: init,
    lambda: init + duration, bootsnap: log[/cold start: .*spawn to ready \d+ ms \(([^)]*)\)/, 1] }
end

# Spawn of `bundle exec puma` in a writable copy of the app to its first answer to GET /posts.
def plain_round(app)
  port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
  started = Bench.now_ns
  pid = Process.spawn(SECRET.merge("RAILS_ENV" => "production", "RAILS_LOG_TO_STDOUT" => "1"),
                      "bundle", "exec", "puma", "-b", "tcp://127.0.0.1:#{port}", "config.ru",
                      chdir: app, out: File::NULL, err: File::NULL, pgroup: true)
  begin
    Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/posts")).code == "200" or raise "not 200"
  rescue Errno::ECONNREFUSED
    raise "puma exited during boot in #{app}" if Process.waitpid(pid, Process::WNOHANG)

    sleep 0.002
    retry
  end
  (Bench.now_ns - started) / 1e6
ensure
  begin
    Process.kill("TERM", -pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end

median = ->(values) { values.sort[values.size / 2] }
line = ->(name, values) { format("| %-72s | %7.1f | %7.1f | %7.1f |", name, median[values], values.min, values.max) }

unless ENV["COLD_START"] == "bootsnap"
  package = BuiltRails.package
  # The developer's own app, with the system's gems, as they run it.
  app = File.join(WORK, "plain")
  FileUtils.cp_r(RailsApp.path, app)
  plain = Array.new(ROUNDS) { plain_round(app) }.sort
  rounds = Array.new(ROUNDS) { |i| megamode_round(package, event, File.join(WORK, "lambda-tmp-#{i}")) }
  FileUtils.rm_rf(Dir.glob(File.join(WORK, "lambda-tmp-*")))

  column = ->(key) { rounds.map { |r| r[key] }.sort }
  puts "Ruby #{RUBY_VERSION}, Rails #{RailsApp.rails_version}, #{ROUNDS} rounds each; milliseconds (median, min, max)"
  puts "| phase | median | min | max |"
  puts "| --- | ---: | ---: | ---: |"
  puts line["plain puma: spawn to first response (reference)", plain]
  puts line["megamode: copying the app into /tmp", column[:copy]]
  puts line["megamode: unpacking the gem bundle", column[:lazy]]
  puts line["megamode: spawn to ready (readiness included)", column[:ready]]
  puts line["megamode: spawn to first response", column[:first]]
  puts line["megamode: copying + unpacking + spawn to first response", column[:total]]
  puts line["megamode: Lambda's Init Duration + first Duration", column[:lambda]]
  added = median[column[:first]] - median[plain]
  puts format("megamode adds %.1f ms to the app's own boot to first response (%.1f ms with the copy), plus " \
              "%.1f ms unpacking the gems", added, added + median[column[:copy]], median[column[:lazy]])
end

# bootsnap: the app as `rails new` makes it, packaged with the cache the build makes; and (issue 27)
# the same app booted in place first, as every app on a developer's machine has been, so that it
# brings a tmp/cache/bootsnap of its own to the build.
build_dir = File.join(WORK, "bootsnap")
FileUtils.mkdir_p(build_dir)
FileUtils.cp_r(RailsApp.with_bootsnap, File.join(build_dir, "blog"))
booted_app = File.join(build_dir, "booted", "blog")
FileUtils.mkdir_p(File.dirname(booted_app))
FileUtils.cp_r(RailsApp.with_bootsnap, booted_app)
output, status = Open3.capture2e(SECRET.merge("RAILS_ENV" => "production"), "bin/rails", "runner", "Post.count",
                                 chdir: booted_app)
raise "booting the app in place failed:\n#{output}" unless status.success? &&
                                                           Dir.exist?(File.join(booted_app, "tmp", "cache", "bootsnap"))

build = lambda do |app, out|
  status, build_log = PackageBuild.build(app, out)
  raise "megamode build failed:\n#{build_log}" unless status.success? && build_log.include?("bootsnap: made its cache")

  out
end
shipped = build[File.join(build_dir, "blog"), File.join(build_dir, "out", "blog")]
booted = build[booted_app, File.join(build_dir, "out-booted", "blog")]

empty = File.join(build_dir, "empty")
FileUtils.cp_r(shipped, empty)
FileUtils.rm_rf(%w[bootsnap megamode-bootsnap.json].map { |f| File.join(empty, "app", "tmp", "cache", f) })
variants = { "shipped cache" => [shipped, {}], "shipped cache, app booted in place" => [booted, {}],
             "empty cache" => [empty, {}], "bootsnap disabled" => [shipped, { "DISABLE_BOOTSNAP" => "1" }] }
# As root each run gets a fresh tmpfs at /tmp/megamode; without root, the copies there are removed.
fresh = -> { FileUtils.rm_rf(Megamode::Build::BootsnapCache::RUNTIME_TMP) unless Process.euid.zero? }
runs = variants.transform_values { [] }
ROUNDS.times do
  variants.each do |name, (package_dir, env)|
    fresh.call
    runs[name] << megamode_round(package_dir, event, nil, env)
  end
end
fresh.call

puts
puts "bootsnap (Ruby #{RUBY_VERSION}, Rails #{RailsApp.rails_version}, bootsnap #{Gem::Specification.find_by_name("bootsnap").version}), " \
     "#{ROUNDS} rounds, the four in turn; milliseconds (median, min, max)"
puts "| phase | median | min | max |"
puts "| --- | ---: | ---: | ---: |"
runs.each do |name, results|
  col = ->(key) { results.map { |r| r[key] }.sort }
  puts line["#{name}: copying the app into /tmp", col[:copy]]
  puts line["#{name}: unpacking the gem bundle", col[:lazy]]
  puts line["#{name}: spawn to ready", col[:ready]]
  puts line["#{name}: spawn to first response", col[:first]]
  puts line["#{name}: copying + unpacking + first response", col[:total]]
end
first = runs.transform_values { |results| median[results.map { |r| r[:first] }] }
total = runs.transform_values { |results| median[results.map { |r| r[:total] }] }
runs.each { |name, results| puts "#{name}: the cold start line says (#{results.map { |r| r[:bootsnap] }.uniq.join("; ")})" }
puts format("shipped cache / empty cache: %.2fx spawn to first response, %.2fx with copying and unpacking " \
            "(goal: at most 0.65x); bootsnap disabled / empty cache: %.2fx",
            first["shipped cache"] / first["empty cache"], total["shipped cache"] / total["empty cache"],
            first["bootsnap disabled"] / first["empty cache"])
["shipped cache", "shipped cache, app booted in place", "empty cache"].each do |name|
  puts format("%s / bootsnap disabled: %.2fx spawn to first response, %.2fx with copying and unpacking", name,
              first[name] / first["bootsnap disabled"], total[name] / total["bootsnap disabled"])
end

