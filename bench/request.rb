# frozen_string_literal: true

# Warm request overhead (issue 9, item 1). A full Megamode.handler call (event Hash in, response
# Hash out) against the same server reached directly, on the hello-world Rack app and on the Rails
# scaffold app, each under puma, in the same run:
# - a raw kept-alive HTTP/1.1 request on a TCP socket (the limit of this design: one loopback hop),
# - Ruby's Net::HTTP on a kept-alive connection,
# - Net::HTTP with a new connection per request (what earlier subprocess adapters did),
# - Megamode.handler over TCP and over a Unix socket.
# Run with `rake bench` (after `rake compile`); ROUNDS sets the requests per row.
require_relative "support"
require "megamode/local/identity"
require "net/http"
require "socket"
require "tmpdir"
require "fileutils"
$LOAD_PATH.unshift File.expand_path("../spec", __dir__)
require "support/rails_app"

ROUNDS = Integer(ENV.fetch("ROUNDS", 3000))
WARMUP = 300
ENV["MEGAMODE_TMP"] ||= Dir.mktmpdir("megamode-bench-")
ENV["SECRET_KEY_BASE"] ||= "bench#{"0" * 64}"
EVENT = JSON.parse(File.read(File.expand_path("../spec/fixtures/events/http_api_v2.json", __dir__)))

def event(path)
  EVENT.merge("rawPath" => path, "rawQueryString" => "")
       .tap { |e| e["requestContext"] = e["requestContext"].merge("http" => e["requestContext"]["http"].merge("path" => path)) }
end

def start(app, transport)
  Megamode.configure do |c|
    c.app_root = app
    c.transport = transport
  end
  Bench.quiet { Megamode.wait_ready }
end

def measure(&block)
  Bench.quiet do
    Bench.sample(WARMUP, &block)
    Bench.sample(ROUNDS, &block)
  end
end

# One request written whole and its response read by length (or chunks): as little client work as
# Ruby allows.
def raw_samples(port, path)
  socket = TCPSocket.new("127.0.0.1", port)
  socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
  request = "GET #{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
  measure do
    socket.write(request)
    head = socket.gets("\r\n\r\n")
    if (length = head[/^content-length:\s*(\d+)/i, 1])
      socket.read(Integer(length))
    else
      while (size = socket.gets("\r\n").to_i(16)).positive?
        socket.read(size + 2)
      end
      socket.read(2)
    end
  end
ensure
  socket&.close
end

def rows_for(name, app, path)
  start(app, "tcp")
  port = Megamode.status["port"]
  raw = raw_samples(port, path)
  http = Net::HTTP.start("127.0.0.1", port)
  kept = measure { http.get(path) }
  http.finish
  fresh = measure { Net::HTTP.start("127.0.0.1", port) { |h| h.get(path) } }
  context = Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: 3600))
  tcp = measure { Megamode.handler(event: event(path), context: context) }
  start(app, "unix")
  unix = measure { Megamode.handler(event: event(path), context: context) }
  Megamode.shutdown
  [["#{name}: raw kept-alive request, TCP (reference)", raw], ["#{name}: Net::HTTP, kept-alive", kept],
   ["#{name}: Net::HTTP, new connection each", fresh], ["#{name}: Megamode.handler, TCP", tcp],
   ["#{name}: Megamode.handler, Unix socket", unix]]
end

def row(name, samples, reference)
  us = ->(ns) { ns / 1000.0 }
  p50 = us[Bench.median(samples)]
  p99 = us[samples[(samples.size * 0.99).floor]]
  ratio = reference.equal?(samples) ? "1.00x" : format("%.2fx", p50 / us[Bench.median(reference)])
  format("| %-56s | %7.1f | %7.1f | %7.1f | %7.1f | %s |", name, p50, p99, us[samples.first], us[samples.last], ratio)
end

hello = rows_for("hello", File.expand_path("../spec/fixtures/apps/rack_hello", __dir__), "/")
rails = rows_for("Rails", RailsApp.path, "/posts")

puts "Ruby #{RUBY_VERSION}, #{ROUNDS} requests per row after #{WARMUP} to warm up, puma; microseconds; " \
     "ratio of p50 to the raw request to the same app"
puts "| call | p50 | p99 | min | max | ratio (p50) |"
puts "| --- | ---: | ---: | ---: | ---: | --- |"
[hello, rails].each do |rows|
  reference = rows.first[1]
  rows.each { |name, samples| puts row(name, samples, reference) }
end
