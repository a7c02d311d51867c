# frozen_string_literal: true

# Per-invocation cost of megamode's two ways of running (issue 10), through one Runtime API
# emulator in this process, same event, same puma app, in the same run. Each figure is the time
# from handing the event to the emulator to receiving the result:
# - the emulator's floor: a raw client on one kept-alive connection that answers at once;
# - a Ruby runtime client (new connections per invocation, as AWS's does) calling a trivial handler;
# - the same client calling Megamode.handler (the default way);
# - megamode's native Runtime API loop (Megamode::Runtime.start).
# Run with `rake bench` (after `rake compile`); ROUNDS sets the invocations per row.
require_relative "support"
require "megamode/local/gateway"
require "megamode/local/runtime_api_emulator"
require "rbconfig"
require "tmpdir"
require "fileutils"

ROUNDS = Integer(ENV.fetch("ROUNDS", 2000))
WARMUP = 200
ROOT = File.expand_path("..", __dir__)
LIB = File.join(ROOT, "lib")
CLIENT = File.join(ROOT, "spec", "fixtures", "runtime", "ruby_runtime_client.rb")
APP = File.join(ROOT, "spec", "fixtures", "apps", "rack_hello")
TMP = Dir.mktmpdir("megamode-bench-runtime-")
request = Megamode::Local::Gateway::Request.new(method: "GET", target: "/", peer: "203.0.113.9", body: "".b,
                                                headers: [["Host", "api.example.com"]])
EVENT = JSON.generate(Megamode::Local::Gateway.new(format: "v2").event(request))

FLOOR = <<~'RUBY'
  require "socket"
  host, port = ENV.fetch("AWS_LAMBDA_RUNTIME_API").split(":")
  socket = TCPSocket.new(host, Integer(port))
  socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
  read = lambda do
    head = socket.gets("\r\n\r\n")
    body = socket.read(head[/^content-length: (\d+)/i, 1].to_i)
    [head, body]
  end
  loop do
    socket.write("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
    head, = read.call
    id = head[/^lambda-runtime-aws-request-id: (\S+)/i, 1]
    socket.write("POST /2018-06-01/runtime/invocation/#{id}/response HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\n\r\n{}")
    read.call
  end
RUBY

NATIVE = [RbConfig.ruby, "-e", 'require "megamode/runtime"; Megamode::Runtime.start'].freeze
TRIVIAL = %(def handler(event:, context:) = { "statusCode" => 200, "body" => "ok" }\n)
MEGAMODE = <<~RUBY
  require "megamode"
  Megamode.boot
  def handler(event:, context:) = Megamode.handler(event: event, context: context)
RUBY

# Runs `command` as the function's process on the hello app against a new emulator; yields the
# emulator and the moment the process was spawned, then stops both.
def with_function(command)
  env = { "MEGAMODE_APP_ROOT" => APP, "MEGAMODE_TMP" => File.join(TMP, "tmp"), "RUBYLIB" => LIB }
  Bench.with_function(command, env) { |emulator, _pid, started| yield emulator, started }
end

def samples(command)
  with_function(command) do |emulator|
    invoke = -> { emulator.invoke(EVENT, request_id: "r#{Bench.now_ns}") or raise "no result" }
    Bench.sample(WARMUP) { invoke.call }
    Bench.sample(ROUNDS) { invoke.call }
  end
end

# Milliseconds from spawning the native loop (Ruby's own start, loading megamode, starting the app's
# server without waiting for it) to its first request for an event.
def init_ms
  with_function(NATIVE) do |emulator, started|
    sleep 0.0005 while emulator.next_calls.zero?
    (Bench.now_ns - started) / 1e6
  end
end

def handler_file(name, text)
  File.join(TMP, name).tap { |f| File.write(f, text) }
end

rows = [
  ["emulator floor: raw client, kept-alive (reference)", samples([RbConfig.ruby, "-e", FLOOR])],
  ["Ruby runtime client, trivial handler", samples([RbConfig.ruby, CLIENT, handler_file("trivial.rb", TRIVIAL)])],
  ["Ruby runtime client, Megamode.handler", samples([RbConfig.ruby, CLIENT, handler_file("megamode.rb", MEGAMODE)])],
  ["Megamode::Runtime.start (native loop)", samples(NATIVE)]
]
inits = Array.new(15) { init_ms }.sort
FileUtils.rm_rf(TMP)

us = ->(ns) { ns / 1000.0 }
floor = Bench.median(rows.first[1])
puts "Ruby #{RUBY_VERSION}, #{ROUNDS} invocations per row after #{WARMUP}, the hello-world Rack app under puma; " \
     "microseconds from event to result through the emulator"
puts "| way | p50 | p99 | min | above the floor (p50) |"
puts "| --- | ---: | ---: | ---: | ---: |"
rows.each do |name, s|
  puts format("| %-52s | %7.1f | %7.1f | %7.1f | %7.1f |", name, us[Bench.median(s)], us[s[(s.size * 0.99).floor]],
              us[s.first], us[Bench.median(s) - floor])
end
puts format("Native loop, spawn to its first /next (init): median %.1f ms, min %.1f, max %.1f (15 starts)",
            inits[inits.size / 2], inits.first, inits.last)
