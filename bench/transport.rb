# frozen_string_literal: true

# A full Megamode.handler call (event Hash in, response Hash out) on the hello-world Rack app under
# puma, with megamode reaching puma over loopback TCP and over a Unix socket; the reference is
# Net::HTTP on a kept-alive connection to the same puma over TCP, measured in the same run.
# Run with `rake bench` (after `rake compile`).
require_relative "support"
require "megamode/local_context"
require "net/http"
require "tmpdir"

ROUNDS = Integer(ENV.fetch("ROUNDS", 3000))
APP = File.expand_path("../spec/fixtures/apps/rack_hello", __dir__)
EVENT = JSON.parse(File.read(File.expand_path("../spec/fixtures/events/http_api_v2.json", __dir__)))
  .merge("rawPath" => "/", "rawQueryString" => "")
ENV["MEGAMODE_TMP"] ||= Dir.mktmpdir("megamode-bench-")

def handler_samples(transport)
  Megamode.configure do |c|
    c.app_root = APP
    c.transport = transport
  end
  Bench.quiet do
    Megamode.wait_ready
    context = Megamode::LocalContext.new(timeout: 3600)
    Bench.sample(300) { Megamode.handler(event: EVENT, context: context) }
    Bench.sample(ROUNDS) { Megamode.handler(event: EVENT, context: context) }
  end
end

def net_http_samples
  Megamode.configure do |c|
    c.app_root = APP
    c.transport = "tcp"
  end
  Bench.quiet do
    Megamode.wait_ready
    http = Net::HTTP.start("127.0.0.1", Megamode.status["port"])
    Bench.sample(300) { http.get("/") }
    result = Bench.sample(ROUNDS) { http.get("/") }
    http.finish
    result
  end
end

def row(name, samples, reference)
  p50 = Bench.median(samples) / 1000.0
  p99 = samples[(samples.size * 0.99).floor] / 1000.0
  ratio = reference.equal?(samples) ? "1.00x (reference)" : format("%.2fx", p50 / (Bench.median(reference) / 1000.0))
  format("| %-52s | %7.1f | %7.1f | %7.1f | %7.1f | %s |", name, p50, p99, samples.first / 1000.0, samples.last / 1000.0, ratio)
end

reference = net_http_samples
tcp = handler_samples("tcp")
unix = handler_samples("unix")
Megamode.shutdown

puts "Ruby #{RUBY_VERSION}, #{ROUNDS} requests each after 300 to warm up, the hello-world Rack app under puma; us"
puts "| call | p50 | p99 | min | max | ratio (p50) |"
puts "| --- | ---: | ---: | ---: | ---: | --- |"
puts row("Net::HTTP, kept-alive TCP connection (reference)", reference, reference)
puts row("Megamode.handler, TCP", tcp, reference)
puts row("Megamode.handler, Unix socket", unix, reference)
