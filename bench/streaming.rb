# frozen_string_literal: true

# Response streaming through the native loop (issue 19), against buffered mode in the same run:
# one Runtime API emulator in this process (it reads a streamed response as Lambda does), the
# streaming fixture app under puma, a Function URL event. Per row: time to the first body byte
# (for a buffered result: the whole result, which is its first byte), total time, and the native
# loop's peak resident memory (VmHWM) after the row, each loop process fresh for its mode.
# Rows: a 10 MiB download (buffered mode answers it with megamode's own 502: over 6 MB), a 4 MiB one
# (both modes can: base64 makes it 5.6 MB), and 5 Server-Sent Events 50 ms apart. Run with `ruby bench/streaming.rb` after
# `rake compile`; ROUNDS sets the invocations per row.
require_relative "support"
require "megamode/local/gateway"
require "megamode/local/runtime_api_emulator"
require "rbconfig"
require "tmpdir"
require "fileutils"

ROUNDS = Integer(ENV.fetch("ROUNDS", 15))
ROOT = File.expand_path("..", __dir__)
APP = File.join(ROOT, "spec", "fixtures", "apps", "streaming")
TMP = Dir.mktmpdir("megamode-bench-streaming-")
at_exit { FileUtils.rm_rf(TMP) }

def event(target)
  request = Megamode::Local::Gateway::Request.new(method: "GET", target: target, peer: "203.0.113.9", body: "".b,
                                                  headers: [["Host", "api.example.com"]])
  JSON.generate(Megamode::Local::Gateway.new(format: "url").event(request))
end

# The native loop on the streaming app in `mode`; yields the emulator and the loop's pid.
def with_loop(mode)
  env = { "MEGAMODE_APP_ROOT" => APP, "MEGAMODE_INVOKE_MODE" => mode, "MEGAMODE_TMP" => File.join(TMP, mode),
          "RUBYLIB" => File.join(ROOT, "lib") }
  command = [RbConfig.ruby, "-e", 'require "megamode/runtime"; Megamode::Runtime.start']
  Bench.with_function(command, env) { |emulator, pid| yield emulator, pid }
end

def peak_rss_mb(pid)
  File.read("/proc/#{pid}/status")[/^VmHWM:\s+(\d+)/, 1].to_i / 1024.0
end

# [first-byte ns, total ns, what came back] for one invocation.
def once(emulator, target)
  start = Bench.now_ns
  first = nil
  result = emulator.invoke(event(target), request_id: "r#{start}", on_chunk: ->(_) { first ||= Bench.now_ns })
  total = Bench.now_ns - start
  raise "no result for #{target}" unless result

  what = result.streamed ? "#{result.body.bytesize} B streamed" : "status #{JSON.parse(result.body)["statusCode"]}"
  [first ? first - start : total, total, what]
end

ROWS = [["10 MiB download", "/download?mb=10"], ["4 MiB download", "/download?mb=4"],
        ["5 SSE events, 50 ms apart", "/ticks?n=5&ms=50"]].freeze

results = {}
%w[buffered response_stream].each do |mode|
  with_loop(mode) do |emulator, pid|
    once(emulator, "/cookies") # boots the app
    base = peak_rss_mb(pid)
    ROWS.each do |name, target|
      once(emulator, target)
      runs = Array.new(ROUNDS) { once(emulator, target) }
      results[[mode, name]] = { first: Bench.median(runs.map(&:first).sort) / 1e6, total: Bench.median(runs.map { |r| r[1] }.sort) / 1e6,
                                what: runs.last[2], rss: peak_rss_mb(pid), base: base }
    end
  end
end

puts "| row | mode | first byte (ms) | total (ms) | loop peak RSS (MB) | answer | first byte vs buffered |"
puts "| --- | --- | ---: | ---: | ---: | --- | ---: |"
ROWS.each do |name, _|
  reference = results[["buffered", name]]
  %w[buffered response_stream].each do |mode|
    r = results[[mode, name]]
    puts format("| %s | %s | %.1f | %.1f | %.1f | %s | %.2fx |", name, mode, r[:first], r[:total], r[:rss], r[:what],
                r[:first] / reference[:first])
  end
end
puts "Loop peak RSS after booting the app, before the rows: " +
     %w[buffered response_stream].map { |m| format("%s %.1f MB", m, results[[m, ROWS.first[0]]][:base]) }.join(", ")
