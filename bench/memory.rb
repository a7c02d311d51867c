# frozen_string_literal: true

# Memory (issue 9, item 6): the RSS megamode adds to the handler process, and whether it grows over
# 10,000 requests to the hello-world app. The baseline is this process with megamode loaded but no
# engine yet; the app's server is a process of its own and not counted.
require_relative "support"
require "megamode/local/identity"
require "rbconfig"
require "tmpdir"

REQUESTS = Integer(ENV.fetch("REQUESTS", 10_000))
ENV["MEGAMODE_TMP"] ||= Dir.mktmpdir("megamode-bench-")
EVENT = JSON.parse(File.read(File.expand_path("../spec/fixtures/events/http_api_v2.json", __dir__)))
  .merge("rawPath" => "/", "rawQueryString" => "")

def rss_kb
  File.foreach("/proc/self/status") { |l| return l.split[1].to_i if l.start_with?("VmRSS:") }
end

# A Ruby process of the same kind without megamode, for what loading megamode itself costs.
bare = Integer(`#{RbConfig.ruby} -e 'require "json"; GC.start; puts File.read("/proc/self/status")[/VmRSS:\\s+(\\d+)/, 1]'`)
GC.start
baseline = rss_kb
Megamode.configure { |c| c.app_root = File.expand_path("../spec/fixtures/apps/rack_hello", __dir__) }
context = Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: 3600))
marks = {}
Bench.quiet do
  Megamode.wait_ready
  marks[0] = rss_kb
  (1..REQUESTS).each do |i|
    Megamode.handler(event: EVENT, context: context)
    marks[i] = rss_kb if [1000, 2000, 5000, REQUESTS].include?(i)
  end
end
Megamode.shutdown

mb = ->(kb) { kb / 1024.0 }
puts "Ruby #{RUBY_VERSION}, #{REQUESTS} handler calls; RSS of the handler process in MB"
puts "| after | RSS | added by megamode |"
puts "| --- | ---: | ---: |"
puts format("| Ruby without megamode (another process) | %.1f | - |", mb[bare])
puts format("| megamode loaded, no engine (baseline) | %.1f | %.1f to load it |", mb[baseline], mb[baseline - bare])
marks.each do |n, kb|
  name = n.zero? ? "server ready" : "#{n} requests"
  puts format("| %s | %.1f | %.1f |", name, mb[kb], mb[kb - baseline])
end
puts format("growth from 1,000 to %d requests: %.1f MB", REQUESTS, mb[marks[REQUESTS] - marks[1000]])
