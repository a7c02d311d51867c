# frozen_string_literal: true

# The Ruby Hash -> Rust -> Ruby Hash conversion of a Lambda event on its own, against the same
# round trip through JSON text (JSON.generate + JSON.parse), measured in the same run.
# Run with `rake bench` (after `rake compile`).
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "megamode"
require "json"

ROUNDS = Integer(ENV.fetch("ROUNDS", 20_000))
event = JSON.parse(File.read(File.expand_path("../spec/fixtures/events/http_api_v2.json", __dir__)))

def sample(rounds)
  rounds.times.map do
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    yield
    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - start
  end.sort
end

def row(name, samples, reference = nil)
  median = samples[samples.size / 2] / 1000.0
  ratio = reference ? format("%.2fx", median / (reference[reference.size / 2] / 1000.0)) : "1.00x (reference)"
  format("| %-42s | %8.2f | %8.2f | %8.2f | %s |", name, median, samples.first / 1000.0, samples.last / 1000.0, ratio)
end

raise "round trip changed the event" unless Megamode::Native.round_trip(event) == event

sample(2_000) { Megamode::Native.round_trip(event) } # warm-up
sample(2_000) { JSON.parse(JSON.generate(event)) }
json = sample(ROUNDS) { JSON.parse(JSON.generate(event)) }
native = sample(ROUNDS) { Megamode::Native.round_trip(event) }

puts "Ruby #{RUBY_VERSION}, #{ROUNDS} rounds each, a #{JSON.generate(event).bytesize}-byte HTTP API 2.0 event; us"
puts "| conversion (both ways)                     |   median |      min |      max | ratio |"
puts "| --- | ---: | ---: | ---: | --- |"
puts row("JSON.generate + JSON.parse", json)
puts row("Megamode::Native.round_trip", native, json)
