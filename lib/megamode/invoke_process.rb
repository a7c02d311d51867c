# frozen_string_literal: true

# The handler process of `megamode invoke --package` and `megamode serve`, the process Lambda would
# start: ARGV is `app DIR` or `package DIR`, then the remaining time per invocation in seconds.
# Events arrive on stdin as JSON lines, one invocation each, and each result leaves on stdout as a
# JSON line as soon as it is known; the Lambda-style log goes to stderr. For a package, nothing of
# this megamode but the local runtime is loaded: the package's handler.rb brings its own.
require "json"
require_relative "local_invoke"

kind, dir, timeout = ARGV
runtime =
  if kind == "package"
    require_relative "local_invoke/package"
    Dir.chdir(dir)
    Megamode::LocalInvoke::Package.new(dir)
  else
    require_relative "local_invoke/app"
    Megamode::LocalInvoke::App.new(dir)
  end
events = $stdin.each_line.lazy.reject { |line| line.strip.empty? }.map { |line| JSON.parse(line) }
# A package runs as on Lambda: its environment is frozen between invocations.
Megamode::LocalInvoke.new(runtime: runtime, timeout: Float(timeout), out: $stdout, log: $stderr,
                          freeze: kind == "package").run(events)
