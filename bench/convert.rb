# frozen_string_literal: true

# The Ruby Hash -> Rust -> Ruby Hash conversion of a Lambda event on its own, against the same
# round trip through JSON text (JSON.generate + JSON.parse), measured in the same run.
# Run with `rake bench` (after `rake compile`).
require_relative "support"

ROUNDS = Integer(ENV.fetch("ROUNDS", 20_000))
event = JSON.parse(File.read(File.expand_path("../spec/fixtures/events/http_api_v2.json", __dir__)))

def row(name, samples, reference = nil)
  median = Bench.median(samples) / 1000.0
  ratio = reference ? format("%.2fx", median / (Bench.median(reference) / 1000.0)) : "1.00x (reference)"
  format("| %-42s | %8.2f | %8.2f | %8.2f | %s |", name, median, samples.first / 1000.0, samples.last / 1000.0, ratio)
end

raise "round trip changed the event" unless Bench::NATIVE.round_trip(event) == event

Bench.sample(2_000) { Bench::NATIVE.round_trip(event) } # warm-up
Bench.sample(2_000) { JSON.parse(JSON.generate(event)) }
json = Bench.sample(ROUNDS) { JSON.parse(JSON.generate(event)) }
native = Bench.sample(ROUNDS) { Bench::NATIVE.round_trip(event) }

puts "Ruby #{RUBY_VERSION}, #{ROUNDS} rounds each, a #{JSON.generate(event).bytesize}-byte HTTP API 2.0 event; us"
puts "| conversion (both ways)                     |   median |      min |      max | ratio |"
puts "| --- | ---: | ---: | ---: | --- |"
puts row("JSON.generate + JSON.parse", json)
puts row("Megamode::Native.round_trip", native, json)
