# frozen_string_literal: true

# How fast megamode notices that the app's server is ready, and that it died during boot. The server
# is a small Ruby script that records, on the monotonic clock the whole machine shares, the moment it
# starts listening (or exits); the lag is from that moment to when Megamode.wait_ready returns (or
# raises BootError). Run with `rake bench` (after `rake compile`).
require_relative "support"
require "tmpdir"

ROUNDS = Integer(ENV.fetch("ROUNDS", 30))
DIR = Dir.mktmpdir("megamode-boot-")
ENV["MEGAMODE_TMP"] ||= File.join(DIR, "tmp")
STAMP = File.join(DIR, "stamp")
File.write(File.join(DIR, "config.ru"), "run ->(_) { [200, {}, []] }\n")

# Sleeps a little (so megamode is polling, as during a real boot), then listens on $PORT or
# $MEGAMODE_SOCKET, or exits, and writes when.
SERVER = <<~'RUBY'
  require "socket"
  sleep 0.2
  now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) }
  if ARGV[0] == "exit"
    File.write(ENV.fetch("STAMP"), now.call.to_s)
    exit 1
  end
  server = ENV["MEGAMODE_SOCKET"] ? UNIXServer.new(ENV["MEGAMODE_SOCKET"]) : TCPServer.new("127.0.0.1", Integer(ENV["PORT"]))
  File.write(ENV.fetch("STAMP"), now.call.to_s)
  loop { server.accept.close }
RUBY
File.write(File.join(DIR, "server.rb"), SERVER)
ENV["STAMP"] = STAMP

def lag_after
  File.delete(STAMP) if File.exist?(STAMP)
  yield
  Bench.now_ns - Integer(File.read(STAMP))
end

def ready_lag(transport)
  ROUNDS.times.map do
    Megamode.configure do |c|
      c.app_root = DIR
      c.command = "exec ruby server.rb # $MEGAMODE_SOCKET"
      c.transport = transport
    end
    lag_after { Megamode.wait_ready }.tap { Megamode.shutdown }
  end.sort
end

def failure_lag
  ROUNDS.times.map do
    Megamode.configure do |c|
      c.app_root = DIR
      c.command = "exec ruby server.rb exit"
      c.transport = "tcp"
    end
    lag = lag_after do
      Megamode.wait_ready
    rescue Megamode::BootError
      nil
    end
    Megamode.shutdown
    lag
  end.sort
end

def row(name, samples)
  ms = ->(ns) { ns / 1_000_000.0 }
  format("| %-44s | %6.2f | %6.2f | %6.2f |", name, ms[Bench.median(samples)], ms[samples.first], ms[samples.last])
end

rows = Bench.quiet { [["listening -> ready, TCP", ready_lag("tcp")], ["listening -> ready, Unix socket", ready_lag("unix")], ["exit during boot -> BootError", failure_lag]] }
puts "Ruby #{RUBY_VERSION}, #{ROUNDS} boots each; ms"
puts "| lag | median | min | max |"
puts "| --- | ---: | ---: | ---: |"
rows.each { |name, samples| puts row(name, samples) }
FileUtils.rm_rf(DIR)
