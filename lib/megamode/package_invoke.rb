# frozen_string_literal: true

# Run by `megamode invoke --package` as a process of its own (the handler process Lambda would
# start): ARGV is the package directory and the remaining time per invocation; the events arrive
# as one JSON array on stdin. Loads nothing of megamode but the local runtime: the package's
# handler.rb brings its own.
require "json"
require_relative "local_invoke"
require_relative "local_invoke/package"

package, timeout = ARGV
events = JSON.parse($stdin.read)
Dir.chdir(package)
Megamode::LocalInvoke.new(runtime: Megamode::LocalInvoke::Package.new(package), timeout: Float(timeout),
                          out: $stdout, log: $stderr).run(events)
