# frozen_string_literal: true

# The demo (bin/demo): megamode's main job on the example Rails app in examples/notes. It builds the
# app's Lambda package with `rake megamode:build`, runs the package as Lambda would (read-only task
# root, fresh /tmp, Lambda's environment, handler.rb) receiving a handful of API Gateway events, and
# prints the Lambda log, each response in short and the cold start breakdown. Then, where a container
# engine runs, the same package as a container image (the Dockerfile `megamode build --image` writes,
# FROM Lambda's base image for the package's runtime) answers the same events through
# `megamode invoke --image`, in both modes, and once more with SnapStart (--snapstart: init,
# snapshot, restore).
#
#   ruby examples/demo.rb [build|run|image]
#
# With no argument it does all three; bin/demo does `build` in the Lambda stand-in's build flavour,
# `run` in its runtime flavour (bin/lambda-root), so the package it shows is one that would run on
# Lambda, and `image` on this machine, where the engine is (the stand-in has none), FROM the
# stand-in's image for ruby3.4 (bin/lambda-image makes it). What `build` makes stays in tmp/demo for
# the others. A package built by a Ruby Lambda does not offer (`ruby examples/demo.rb` on this
# host) is for local runs: no Lambda base image runs it, and `image` says so and does nothing.
require "fileutils"
require "json"
require "open3"
require "tmpdir"
require_relative "../lib/megamode/local/gateway"
require_relative "../lib/megamode/runtime/package_target"

ROOT = File.expand_path("..", __dir__)
LIB = File.join(ROOT, "lib")
EXE = File.join(ROOT, "exe", "megamode")
SECRET = { "SECRET_KEY_BASE" => "demo-#{"5" * 64}" }.freeze

def step(title)
  puts "\n== #{title}"
end

def run!(env, *command, chdir:)
  out, status = Open3.capture2e(env, *command, chdir: chdir)
  abort "demo: `#{command.join(" ")}` failed:\n#{out}" unless status.success?
  out
end

# Whether this Ruby has bootsnap, which the example app uses, as every app `rails new` makes does.
BOOTSNAP = !Gem::Specification.find_all_by_name("bootsnap").empty?
phase = ARGV.first
abort "usage: ruby examples/demo.rb [build|run|image]" unless [nil, "build", "run", "image"].include?(phase)

# Kept after the demo (tmp/ is not tracked), so `megamode serve --package` can open the package.
work = File.join(ROOT, "tmp", "demo")
app = File.join(work, "notes")
package = File.join(work, "build", "notes")

if [nil, "build"].include?(phase)
  FileUtils.rm_rf(work)
  FileUtils.mkdir_p(work)
  FileUtils.cp_r(File.join(ROOT, "examples", "notes"), app)
  unless BOOTSNAP
    # The Lambda stand-in (bin/lambda-root) has no bootsnap: its C source is not in the archive
    # reachable where megamode is tested. The app goes without, as an app may.
    File.write(File.join(app, "Gemfile"), File.read(File.join(app, "Gemfile")).sub(/^gem "bootsnap".*\n/, ""))
    boot = File.join(app, "config", "boot.rb")
    File.write(boot, File.read(boot).sub(%r{^require "bootsnap/setup".*\n}, ""))
  end

  step "The example app: examples/notes (Rails #{run!({}, "rails", "--version", chdir: work)[/[\d.]+/]}, " \
       "Ruby #{RUBY_VERSION} from #{RbConfig::CONFIG["prefix"]}), its gems resolved from this machine and its database migrated"
  puts "(without bootsnap, which this Ruby has not)" unless BOOTSNAP
  run!({}, "bundle", "lock", "--local", chdir: app)
  run!(SECRET.merge("RAILS_ENV" => "production", "RUBYLIB" => LIB), "bundle", "exec", "rake", "db:migrate", chdir: app)
  puts "ok"

  step "rake megamode:build APP=#{app} OUT=#{package}"
  puts run!({}, "rake", "-f", File.join(ROOT, "Rakefile"), "megamode:build", "APP=#{app}", "OUT=#{package}", chdir: ROOT)
    .lines.grep(/megamode build:/).join
  exit if phase == "build"
end
abort "demo: no package in #{package}: run `ruby examples/demo.rb build` first" unless File.directory?(package)

# The events API Gateway (an HTTP API with a `dev` stage) would send for these requests.
gateway = Megamode::Local::Gateway.new(format: "v2", stage: "dev")
host = "abc123.execute-api.us-east-1.amazonaws.com"
request = lambda do |method, target, body = nil, type = nil|
  headers = [["Host", host], ["User-Agent", "megamode-demo"], ["Accept", "text/html"]]
  headers << ["Content-Type", type] if type
  gateway.event(Megamode::Local::Gateway::Request.new(method: method, target: target, headers: headers,
                                                      body: body.to_s.b, peer: "203.0.113.7"))
end
events = {
  "prewarm (boots the app before traffic)" => { "_prewarm" => true },
  "GET /dev/notes" => request.call("GET", "/dev/notes"),
  "POST /dev/notes (the form)" => request.call("POST", "/dev/notes", "note%5Btext%5D=Hello+from+Lambda",
                                               "application/x-www-form-urlencoded"),
  "GET /dev/notes/1" => request.call("GET", "/dev/notes/1"),
  "GET /dev/notes.json" => request.call("GET", "/dev/notes.json"),
  "GET /dev/megamode.png" => request.call("GET", "/dev/megamode.png")
}
# Beside the package's directory, not in it: where the package runs (the stand-in's run flavour, as
# Lambda's /var/task) the checkout is read-only.
events_dir = Dir.mktmpdir("megamode-demo-events-")
at_exit { FileUtils.rm_rf(events_dir) }
files = events.values.each_with_index.map do |event, i|
  File.join(events_dir, "event-#{i}.json").tap { |f| File.write(f, JSON.generate(event)) }
end

# Each response in short, after its event's name.
def responses(names, out)
  names.zip(out.lines.map { |l| JSON.parse(l) }).each do |name, result|
    summary =
      if result.key?("prewarmed_at") then "prewarmed, boot #{result["boot_ms"]} ms"
      elsif result.key?("errorType") then "#{result["errorType"]}: #{result["errorMessage"]}"
      else
        headers = result["headers"] || {}
        body = result["isBase64Encoded"] ? result["body"].unpack1("m0") : result["body"].to_s
        text = "#{result["statusCode"]} #{headers["content-type"]} #{body.bytesize} bytes"
        text += " -> #{headers["location"]}" if headers["location"]
        text += ": #{body.strip[0, 90]}" if headers["content-type"].to_s.include?("json")
        text += " (base64)" if result["isBase64Encoded"]
        links = body.scan(/href="([^"]+)"/).flatten.uniq.first(3)
        text += ", links #{links.join(" ")}" if headers["content-type"].to_s.include?("html") && !links.empty?
        text
      end
    puts format("%-42s %s", name, summary)
  end
end

def cold_start(log)
  puts log.lines.grep(/cold start|copied the app|unpacked the gem bundle|Init Duration/).map { |l| l.strip[0, 200] }
end

def elapsed(started)
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(1)
end

if phase != "image"
  step "megamode invoke --package #{package}: the Lambda log"
  out, log, status = Open3.capture3(SECRET, RbConfig.ruby, EXE, "invoke", "--package", package,
                                    *files.flat_map { |f| ["--event", f] })
  puts log
  abort "demo: megamode invoke failed" unless status.success?

  step "The responses, in short"
  responses(events.keys, out)

  step "The cold start"
  cold_start(log)

  step "Open the same app in a browser"
  # In the Lambda stand-in (bin/demo), the package is for its Ruby: serve it there.
  stand_in = RbConfig::CONFIG["prefix"] == "/var/lang" && File.exist?(File.join(ROOT, "bin", "lambda-root"))
  runtime = "ruby#{RUBY_VERSION[/\A\d+\.\d+/]}"
  lambda_root = stand_in ? " in the Lambda stand-in it was built for" : ""
  serve = stand_in ? "bin/lambda-root #{runtime} run -- env " : ""
  puts <<~TEXT
    The package stays in #{package.delete_prefix("#{ROOT}/")}. Serve it as API Gateway would, with a `dev` stage#{lambda_root}:

      #{serve}SECRET_KEY_BASE=dev ruby -Ilib exe/megamode serve --package #{package.delete_prefix("#{ROOT}/")} --stage dev

    then open http://127.0.0.1:3000/dev/notes (Ctrl-C stops it).
  TEXT
  exit if phase == "run"
end

step "The same package as a container image (megamode build --image's Dockerfile), answering the same events"
target = Megamode::PackageTarget.read(File.join(package, Megamode::PackageTarget::PATH))
if target["local"]
  puts "Skipped: this package is for local runs (built by Ruby #{target["built_with_ruby"]}, which Lambda does not " \
       "offer), and no Lambda base image runs it. bin/demo builds the package for ruby3.4 in the Lambda stand-in, " \
       "and its image here."
  exit
end
require_relative "../lib/megamode/build"
engine = begin
  Megamode::Build::Engine.runnable(instead: "leave the image out, as the demo does now (on Debian, bin/setup installs " \
                                            "Podman; then `ruby examples/demo.rb image` runs this part alone)")
rescue Megamode::BuildError => e
  puts "Skipped: #{e.message}"
  exit
end
base = Megamode::Build::Image.base(target["runtime"])
lambda_image = File.join(ROOT, "bin", "lambda-image")
if Process.euid.zero? && File.executable?(lambda_image)
  # There is no registry here: the base image is the Lambda stand-in's, tagged with AWS's name, made
  # from its layers (or found up to date) by bin/lambda-image.
  made = run!({ "MEGAMODE_CONTAINER_ENGINE" => engine }, lambda_image, target["runtime"], chdir: ROOT)
  puts made.lines.grep(%r{public\.ecr\.aws/lambda/}).map { |l| l.strip.sub(/ \(megamode\.stand-in=\h+\)\z/, "") }
end
tag = Megamode::Build::Image.default_tag(app)
image_id = lambda do |name|
  id, status = Open3.capture2e(engine, "image", "inspect", "--format", "{{.Id}}", name)
  id.strip if status.success?
end
before = image_id.call(tag)
# What `megamode build --image` does after the package: its Dockerfile (FROM the runtime's base image,
# the package tree in /var/task), then the image.
Megamode::Build::Image.write(package, runtime: target["runtime"], version: Megamode::VERSION)
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
begin
  Megamode::Build::Image.new(dir: package, tag: tag, arch: target["arch"]).build(engine)
rescue Megamode::BuildError => e
  abort "demo: #{e.message}"
end
# The image the last demo made, now untagged, goes.
system(engine, "rmi", before, out: File::NULL, err: File::NULL) if before && before != image_id.call(tag)
size = Open3.capture2(engine, "image", "inspect", "--format", "{{.Size}}", tag).first.to_i
puts "#{File.basename(engine)} build: #{tag} (#{(size / 1e6).round} MB) FROM #{base}, " \
     "from #{package.delete_prefix("#{ROOT}/")}/Dockerfile, in #{elapsed(started)} s"

puts "It runs as Lambda runs an image: read-only but for a fresh /tmp, as a user that owns nothing, with Lambda's " \
     "variables and no others but the function's own (--env SECRET_KEY_BASE=...), the Runtime API served from here."
secret = SECRET.map { |name, value| "#{name}=#{value}" }
{ "handler" => "the image's CMD, handler.handler, through Lambda's runtime client",
  "native" => "megamode's native loop as the entry point, as the template's ImageConfig sets it" }.each do |mode, how|
  step "megamode invoke --image #{tag} --mode #{mode}: #{how}"
  out, log, status = Open3.capture3(RbConfig.ruby, EXE, "invoke", "--image", tag, "--mode", mode,
                                    *secret.flat_map { |s| ["--env", s] }, *files.flat_map { |f| ["--event", f] })
  abort "#{log}\ndemo: megamode invoke --image failed" unless status.success?
  responses(events.keys, out)
  cold_start(log)
end

# SnapStart (`megamode build --image --snapstart` for Lambda): the init ends with the booted app in a
# snapshot, and a new environment starts from it. Here the snapshot is "restored" after the
# environment was frozen for 3 s, longer than puma keeps an idle connection.
step "megamode invoke --image #{tag} --snapstart --restore-after 3: init, snapshot, a restore 3 s later, the same events"
out, log, status = Open3.capture3(RbConfig.ruby, EXE, "invoke", "--image", tag, "--mode", "native", "--snapstart",
                                  "--restore-after", "3", *secret.flat_map { |s| ["--env", s] },
                                  *files.flat_map { |f| ["--event", f] })
abort "#{log}\ndemo: megamode invoke --image --snapstart failed" unless status.success?
responses(events.keys, out)
puts log.lines.grep(/SnapStart|Restore Duration/).map { |l| l.strip.sub(/\tMemory Size.*?(Restore Duration)/, "\t\\1")[0, 200] }
puts <<~TEXT

  Serve the image as API Gateway would, with a `dev` stage:

    ruby -Ilib exe/megamode serve --image #{tag} --env SECRET_KEY_BASE=dev --stage dev

  then open http://127.0.0.1:3000/dev/notes (Ctrl-C stops it and removes its container).
TEXT
