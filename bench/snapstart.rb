# frozen_string_literal: true

# SnapStart (issue 30): the first request after a restore against the same app's cold start, in one
# run. The Rails 7.2 blog package (spec/support/built_rails.rb: the scaffold Post on SQLite,
# production) built for ruby3.4 in the stand-in, and its image FROM the stand-in's
# public.ecr.aws/lambda/ruby:3.4; each configuration runs one `megamode invoke ... --get /posts` (a
# page that queries and renders a view) per round, in a new execution environment, the
# configurations in turn, their order rotated from round to round (and a second GET /posts in the
# same environment, warm, for comparison):
#
# - zip, cold start, handler and native: `megamode invoke --package` in the ruby3.4 stand-in
#   (bin/lambda-root ruby3.4 build: the host's Ruby 3.1 is not a Lambda runtime);
# - zip with bootsnap's cache, cold start: the same app with bootsnap, as `rails new` makes it, built
#   and run in the Debian 13 root (bin/debian13: Ruby 3.3, Debian's Rails 7.2 and bootsnap; the
#   stand-in has no bootsnap), handler and native, and with DISABLE_BOOTSNAP as that root's own
#   reference; the package is made as bench/cold_start.rb makes its "shipped cache" one;
# - image, cold start, handler and native: `megamode invoke --image` with podman;
# - image with SnapStart, restored at once, handler and native, without priming, with
#   MEGAMODE_PRIME=/up (Rails' health check, what `megamode build --snapstart` primes for a Rails
#   app by default) and with MEGAMODE_PRIME=/posts (the page asked for): Restore Duration, the
#   first request's Duration and their sum, and megamode's before-snapshot and after-restore
#   milliseconds and its priming requests' from its log lines.
#
# What a caller waits for the first request: Init Duration + Duration for a cold start (for an image
# that includes the container's start, which on Lambda is the image's own cold start), Restore
# Duration + Duration after a restore (Lambda's own restore of the microVM comes on top and cannot
# be measured here). Medians, and ratios against a reference in the same run.
#
# Run as root on the host (podman, and both roots made), after `rake compile` here and, for the
# Debian 13 part, `bin/debian13 rake compile` (that root's Ruby needs its own build of the extension):
#
#   PACKAGE=DIR ruby bench/snapstart.rb       (ROUNDS=5 by default)
#
# PACKAGE is the blog package built for ruby3.4 (DIR/blog/blog after `bin/lambda-root ruby3.4 build
# -- sh -c 'rake compile && ruby spec/prebuild_packages.rb DIR blog'`; default tmp/pk34/blog/blog in
# this checkout), by this checkout: the package carries its megamode (handler.rb, the native loop),
# and an older one may lack what a row measures. ONLY=REGEXP runs the configurations it matches
# (and the reference). The image and every directory the run makes are removed at its end. `ruby bench/snapstart.rb
# --bootsnap-package OUT` (in bin/debian13) is the step that builds the bootsnap package.
require "fileutils"
require "json"
require "open3"
require "rbconfig"
require "securerandom"
require "tmpdir"

ROOT = File.expand_path("..", __dir__)
EXE = File.join(ROOT, "exe", "megamode")
APP_ENV = { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "bench#{"0" * 64}", "FORCE_SSL" => "0" }.freeze
FIRST_REQUEST = "/posts"

# In the Debian 13 root: the blog app (BuiltRails's, with its extras) with bootsnap, as `rails new`
# makes it, built with `megamode build` into OUT, which boots it to make bootsnap's cache and ships it.
if ARGV.first == "--bootsnap-package"
  out = ARGV.fetch(1)
  $LOAD_PATH.unshift File.join(ROOT, "spec"), File.join(ROOT, "lib")
  module SpecHelpers
    ROOT = ::ROOT
  end
  require "support/rails_app"
  require "support/package_build"
  require "support/built_rails"
  app = File.join(Dir.mktmpdir("megamode-snapbench-"), "blog")
  FileUtils.cp_r(RailsApp.with_bootsnap, app)
  BuiltRails.send(:add_extras, app)
  status, log = PackageBuild.build(app, out)
  raise "megamode build failed:\n#{log}" unless status.success? && log.include?("bootsnap: made its cache")

  bootsnap = Gem::Specification.find_by_name("bootsnap").version
  puts "Ruby #{RUBY_VERSION}, Rails #{RailsApp.rails_version}, bootsnap #{bootsnap}"
  exit
end

$LOAD_PATH.unshift File.join(ROOT, "lib")
require "megamode"
require "megamode/build"
require "megamode/local/cli"

abort "bench/snapstart.rb: needs root (podman, bin/lambda-root, bin/debian13)" unless Process.euid.zero?
ROUNDS = Integer(ENV.fetch("ROUNDS", 5))
PACKAGE = File.expand_path(ENV.fetch("PACKAGE", File.join(ROOT, "tmp", "pk34", "blog", "blog")))
unless File.file?(File.join(PACKAGE, "megamode", "runtime"))
  abort "bench/snapstart.rb: no blog package in #{PACKAGE}: build it with `bin/lambda-root ruby3.4 build -- sh -c " \
        "'rake compile && ruby spec/prebuild_packages.rb $PWD/tmp/pk34 blog'` or give PACKAGE=DIR"
end
ENGINE = Megamode::Build::Engine.runnable
# `invoke --snapstart` where this megamode has it; before it, the environment variable, which
# invoke passes on to the function (to the container for an image) all the same.
SNAPSTART_FLAG = Megamode::Local::CLI::USAGE.include?("--snapstart")

# Under the checkout, which both roots mount at the same path, readable by Lambda's user, as
# /var/task is.
FileUtils.mkdir_p(File.join(ROOT, "tmp"))
WORK = Dir.mktmpdir("snapstart-bench-", File.join(ROOT, "tmp")).tap { |dir| File.chmod(0o755, dir) }
TAG = "localhost/megamode-snapbench:#{SecureRandom.hex(6)}"
at_exit do
  system(ENGINE, "rm", "-f", *Open3.capture2(ENGINE, "ps", "-a", "-q", "--filter", "ancestor=#{TAG}").first.split,
         out: File::NULL, err: File::NULL)
  system(ENGINE, "rmi", "-f", TAG, out: File::NULL, err: File::NULL)
  FileUtils.rm_rf(WORK)
end

def elapsed_ms
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  yield
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000
end

# megamode's cold start line (its bootsnap part where the app has bootsnap).
COLD_START = /cold start: copy (\d+) ms, lazy-load (\d+) ms, spawn to ready (\d+) ms(?: \(([^)]*)\))?, first response (\d+) ms/

# The numbers of one `megamode invoke`'s log (the first invocation's REPORT, the cold start line, the
# SnapStart lines; the second invocation's Duration), or a failure with the log unless both answers
# were 200s.
def measure(command, env: {})
  out = log = status = nil
  wall = elapsed_ms { out, log, status = Open3.capture3(env, *command) }
  results = out.lines.map { |line| JSON.parse(line) if line.start_with?("{") }
  unless status.success? && results.size == 2 && results.all? { |r| r && r["statusCode"] == 200 }
    said = results.map { |r| r&.slice("statusCode", "errorType", "errorMessage") }
    raise "#{command.join(" ")} failed (#{status}; #{said}):\n#{log}"
  end

  report, warm = log.scan(/^REPORT RequestId: .*$/)
  field = ->(name, line = report) { line[/\t#{name}: ([\d.]+) ms/, 1]&.to_f }
  cold = log.match(COLD_START)
  { wall: wall, duration: field["Duration"], warm: warm && field["Duration", warm], init: field["Init Duration"],
    restore: field["Restore Duration"],
    copy: cold && cold[1].to_f, lazy: cold && cold[2].to_f, ready: cold && cold[3].to_f, bootsnap: cold && cold[4],
    first: cold && cold[5].to_f, before_snapshot: log[/SnapStart: before-snapshot (\d+) ms/, 1]&.to_f,
    after_restore: log[/SnapStart: restored after a \d+ ms wait; after-restore (\d+) ms/, 1]&.to_f,
    primed: log.scan(/SnapStart: primed GET \S+: [^\n]*? in (\d+) ms/).then { |a| a.sum { |(ms)| ms.to_f } unless a.empty? },
    priming: log.lines.grep(/SnapStart: (?:primed|warning: priming) GET/).map(&:strip) }
end

def env_args(env)
  env.map { |k, v| "#{k}=#{v}" }
end

# A zip package run by `megamode invoke --package` in a root, whose command starts with `root`
# (bin/debian13 and bin/lambda-root pass no environment: `env` gives it).
def zip_round(root, package, mode, env = {})
  measure([*root, "env", *env_args(APP_ENV.merge(env)), "ruby", EXE, "invoke", "--package", package, "--mode", mode,
           "--get", FIRST_REQUEST, "--get", FIRST_REQUEST])
end

def image_round(mode, snapstart: false, prime: nil)
  variables = APP_ENV.merge(prime ? { "MEGAMODE_PRIME" => prime } : {})
  flag = snapstart && SNAPSTART_FLAG ? ["--snapstart"] : []
  env = snapstart && !SNAPSTART_FLAG ? { "AWS_LAMBDA_INITIALIZATION_TYPE" => "snap-start" } : {}
  measure([RbConfig.ruby, EXE, "invoke", "--image", TAG, "--mode", mode, *flag,
           *variables.flat_map { |pair| ["--env", pair.join("=")] }, "--get", FIRST_REQUEST, "--get", FIRST_REQUEST],
          env: env)
end

stand_in = [File.join(ROOT, "bin", "lambda-root"), "ruby3.4", "build", "--"]
debian13 = [File.join(ROOT, "bin", "debian13")]

# The package, copied: the image's Dockerfile goes into its directory, the build context.
package = File.join(WORK, "blog")
FileUtils.cp_r(PACKAGE, package)
said = nil
image_s = elapsed_ms do
  Megamode::Build::Image.write(package, runtime: "ruby3.4", version: Megamode::VERSION)
  said = Megamode::Build::Image.new(dir: package, tag: TAG, arch: "x86_64").build(ENGINE)
end
warn format("snapstart bench: the image %s built in %.1f s", said, image_s / 1000)
bootsnap_package = File.join(WORK, "bootsnap", "blog")
versions = nil
bootsnap_s = elapsed_ms do
  versions, log, status = Open3.capture3(*debian13, "ruby", File.join("bench", "snapstart.rb"), "--bootsnap-package",
                                         bootsnap_package)
  raise "building the bootsnap package in bin/debian13 failed:\n#{log}" unless status.success?
end
warn format("snapstart bench: the bootsnap package built in bin/debian13 in %.1f s (%s)", bootsnap_s / 1000,
            versions.strip)
stand_in_ruby = Open3.capture2(*stand_in, "ruby", "-e", "print RUBY_VERSION").first
stand_in_rails = File.read(File.join(package, "app", "Gemfile.lock"))[/^    rails \(([^)]+)\)/, 1]

# name => [kind, what it runs]; kind :cold or :snap.
CONFIGS = {
  "zip, handler (reference)" => [:cold, -> { zip_round(stand_in, package, "handler") }],
  "zip, native" => [:cold, -> { zip_round(stand_in, package, "native") }],
  "zip + bootsnap's cache, handler (Debian 13)" => [:cold, -> { zip_round(debian13, bootsnap_package, "handler") }],
  "zip + bootsnap's cache, native (Debian 13)" => [:cold, -> { zip_round(debian13, bootsnap_package, "native") }],
  "zip, bootsnap disabled, handler (Debian 13)" =>
    [:cold, -> { zip_round(debian13, bootsnap_package, "handler", "DISABLE_BOOTSNAP" => "1") }],
  "image, handler" => [:cold, -> { image_round("handler") }],
  "image, native" => [:cold, -> { image_round("native") }],
  "image + SnapStart, handler" => [:snap, -> { image_round("handler", snapstart: true) }],
  "image + SnapStart, native" => [:snap, -> { image_round("native", snapstart: true) }],
  "image + SnapStart + MEGAMODE_PRIME=/up, handler" => [:snap, -> { image_round("handler", snapstart: true, prime: "/up") }],
  "image + SnapStart + MEGAMODE_PRIME=/up, native" => [:snap, -> { image_round("native", snapstart: true, prime: "/up") }],
  "image + SnapStart + MEGAMODE_PRIME=/posts, handler" =>
    [:snap, -> { image_round("handler", snapstart: true, prime: "/posts") }],
  "image + SnapStart + MEGAMODE_PRIME=/posts, native" =>
    [:snap, -> { image_round("native", snapstart: true, prime: "/posts") }]
}.freeze
only = ENV["ONLY"] && Regexp.new(ENV["ONLY"])
configs = only ? CONFIGS.select { |name, _| name == CONFIGS.keys.first || name.match?(only) } : CONFIGS

# What a caller waits for the first request: the init (a cold start) or megamode's part of the
# restore (Restore Duration; before invoke reported it, the after-restore work megamode logs), and
# the request itself.
def waits(kind, round)
  before = kind == :cold ? round[:init] : round[:restore] || round[:after_restore]
  before && round[:duration] && before + round[:duration]
end

runs = configs.transform_values { [] }
ROUNDS.times do |i|
  configs.keys.rotate(i).each do |name|
    kind, run = configs[name]
    round = run.call
    runs[name] << round
    said = round.reject { |k, v| k == :priming || v.nil? }.map { |k, v| "#{k} #{v.is_a?(Float) ? v.round(1) : v}" }
    warn format("snapstart bench: round %d, %s: waits %s ms (%s)", i + 1, name, waits(kind, round)&.round(1) || "-",
                said.join(", "))
    round[:priming].each { |line| warn "  #{line}" }
  end
end

median = ->(values) { (v = values.compact.sort).empty? ? nil : v[v.size / 2] }
cell = ->(value) { value ? format("%.0f", value) : "-" }
range = ->(s) { s[:waits] ? "#{cell[s[:waits]]} (#{cell[s[:min]]}-#{cell[s[:max]]})" : "-" }
ratio = ->(a, b) { a && b ? format("%.2fx", a / b) : "-" }
summary = configs.to_h do |name, (kind, _)|
  rounds = runs[name]
  all = rounds.map { |r| waits(kind, r) }.compact
  [name, { kind: kind, waits: median[all], min: all.min, max: all.max, init: median[rounds.map { |r| r[:init] }],
           restore: median[rounds.map { |r| r[:restore] }], duration: median[rounds.map { |r| r[:duration] }],
           warm: median[rounds.map { |r| r[:warm] }],
           first: median[rounds.map { |r| r[:first] }], ready: median[rounds.map { |r| r[:ready] }],
           before: median[rounds.map { |r| r[:before_snapshot] }], primed: median[rounds.map { |r| r[:primed] }],
           after: median[rounds.map { |r| r[:after_restore] }], wall: median[rounds.map { |r| r[:wall] }] }]
end
reference = summary.values.first[:waits]

puts
puts "#{ROUNDS} rounds, the #{configs.size} configurations in turn (order rotated each round); the ruby3.4 stand-in's " \
     "Ruby #{stand_in_ruby}, Rails #{stand_in_rails}; Debian 13: #{versions.strip}; SnapStart through " \
     "#{SNAPSTART_FLAG ? "invoke --snapstart" : "AWS_LAMBDA_INITIALIZATION_TYPE=snap-start"}, restored at once; " \
     "first request GET #{FIRST_REQUEST}; milliseconds, medians"
puts "| configuration | caller waits (min-max) | Init Duration | Restore Duration | first Duration | second Duration | " \
     "megamode: first response after spawn | before-snapshot | after-restore | " \
     "vs #{summary.keys.first.sub(" (reference)", "")} | " \
     "vs the image's cold start, same mode |"
puts "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
summary.each do |name, s|
  same = summary[name.sub(/image \+ SnapStart(?: \+ MEGAMODE_PRIME=\S+)?, /, "image, ")] if s[:kind] == :snap
  puts "| #{name} | #{range[s]} | #{cell[s[:init]]} | #{cell[s[:restore]]} | " \
       "#{cell[s[:duration]]} | #{cell[s[:warm]]} | #{s[:kind] == :cold ? cell[s[:first]] : "-"} | " \
       "#{cell[s[:before]]} | #{cell[s[:after]]} | " \
       "#{ratio[s[:waits], reference]} | #{same ? ratio[s[:waits], same[:waits]] : "-"} |"
end
puts
summary.each do |name, s|
  next unless s[:kind] == :snap

  if name.include?("MEGAMODE_PRIME") && !s[:primed]
    puts "#{name}: no priming line in megamode's log: this megamode does not prime (MEGAMODE_PRIME ignored)"
  end
  if s[:before]
    priming = s[:primed] ? ", priming #{cell[s[:primed]]} ms" : ""
    puts format("%s: the init before the snapshot: spawn to ready %s ms%s, before-snapshot %s ms", name,
                cell[s[:ready]], priming, cell[s[:before]])
  else
    puts "#{name}: no SnapStart lifecycle ran (no before-snapshot line): its first request booted the app, as a cold start"
  end
end
puts "Restore Duration is not in this megamode's REPORT: \"caller waits\" after a restore counts the after-restore " \
     "ms instead." \
  if summary.values.any? { |s| s[:kind] == :snap && s[:waits] && !s[:restore] }
runs.each do |name, rounds|
  said = rounds.map { |r| r[:bootsnap] }.compact.uniq
  puts "#{name}: the cold start line says (#{said.join("; ")})" unless said.empty?
end
