# frozen_string_literal: true

require "spec_helper"
require "megamode/local/http_wire"
require "megamode/local/runtime_api_emulator"
require "socket"

# HttpWire serving one connection over a socket pair, as `megamode serve` and the Runtime API
# emulator do: requests read within a front server's limits, the rest refused with a status.
RSpec.describe Megamode::Local::HttpWire do
  include RawHttp

  let(:limits) { described_class::Limits.new(timeout: 0.5) }

  # Yields the client's end of a connection that HttpWire serves with an echo of each request.
  def served
    client, server = UNIXSocket.pair
    thread = Thread.new do
      described_class.serve(server, limits) do |request|
        [200, [["content-type", "application/json"]],
         JSON.generate(method: request.method, target: request.target, body: request.body)]
      end
    end
    yield client
  ensure
    client.close
    thread.join
  end

  def echo(socket, bytes)
    JSON.parse(exchange(socket, bytes).body)
  end

  it "reads requests one after the other on a connection: by length, chunked, with bare LF line ends" do
    served do |client|
      client.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" \
                   "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
      expect(echo(client, "")).to eq("method" => "GET", "target" => "/a", "body" => "")
      expect(echo(client, "")).to eq("method" => "POST", "target" => "/b", "body" => "hello")

      chunked = "PUT /c HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n"
      expect(echo(client, chunked)).to eq("method" => "PUT", "target" => "/c", "body" => "hello!")
      expect(echo(client, "\r\nGET /d HTTP/1.0\nConnection: keep-alive\n\n")["target"]).to eq("/d")

      last = exchange(client, "GET /e HTTP/1.1\r\nConnection: close\r\n\r\n")
      expect([last.code, last["connection"]]).to eq(%w[200 close])
      expect(client.read).to eq("")
    end
  end

  it "refuses what a front server refuses, with the status that says why, and closes the connection" do
    threads = []
    expect_refusals do
      client, server = UNIXSocket.pair
      threads << Thread.new { described_class.serve(server, limits) { [200, [], "served"] } }
      client
    end
  ensure
    threads.each(&:join)
  end

  it "says why in the answer's body" do
    expectations = {
      "#{RawHttp::HEAD}Content-Length: #{7 * RawHttp::MB}\r\n\r\n" => "request body over 6291456 bytes",
      "#{RawHttp::HEAD}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n" => "both Content-Length and Transfer-Encoding",
      "GET / HTTP/1.1\r\nX-Big: #{"a" * RawHttp::MB}\r\n\r\n" => "a header over 16384 bytes",
      "GET / HTTP/1.1\r\n" => "the request did not arrive within 0.5 seconds"
    }
    expectations.each do |bytes, why|
      served { |client| expect(exchange(client, bytes).body).to eq("#{why}\n") }
    end
  end

  it "closes a connection that sends nothing within the timeout, without an answer" do
    served { |client| expect(client.read).to eq("") }
  end

  it "tells a client that expects 100 Continue to send its body, and one over the limit that it is too large" do
    served do |client|
      client.write("#{RawHttp::HEAD}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
      expect(client.readpartial(100)).to eq("HTTP/1.1 100 Continue\r\n\r\n")
      expect(echo(client, "ok")["body"]).to eq("ok")

      expect(exchange(client, "#{RawHttp::HEAD}Expect: 100-continue\r\nContent-Length: #{7 * RawHttp::MB}\r\n\r\n").code).to eq("413")
    end
  end

  describe "in the Runtime API emulator" do
    it "refuses a response over 6 MB with Lambda's 413, and the invocation can still report its error" do
      emulator = Megamode::Local::RuntimeApiEmulator.new
      result = Thread.new { emulator.invoke("{}", request_id: "req-big", wait: 10) }
      Net::HTTP.start(*emulator.address.split(":")) do |http|
        expect(http.get("#{Megamode::Local::RuntimeApiEmulator::PREFIX}/invocation/next")["lambda-runtime-aws-request-id"]).to eq("req-big")
      end
      path = "#{Megamode::Local::RuntimeApiEmulator::PREFIX}/invocation/req-big"
      Net::HTTP.start(*emulator.address.split(":")) do |http|
        big = http.post("#{path}/response", "a" * (7 * RawHttp::MB))
        expect([big.code, JSON.parse(big.body)["errorType"]]).to eq(%w[413 RequestEntityTooLarge])
      end
      Net::HTTP.start(*emulator.address.split(":")) do |http|
        expect(http.post("#{path}/error", %({"errorMessage":"too large"})).code).to eq("202")
      end
      expect(result.value.kind).to eq(:error)
    ensure
      emulator&.close
      result&.join
    end
  end
end
