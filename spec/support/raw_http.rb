# frozen_string_literal: true

require "net/http"

# Requests no well-behaved client sends, written as raw bytes, and the answers read back with
# Net::HTTP's own parser; for example groups that include it.
module RawHttp
  MB = 1024 * 1024
  HEAD = "POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\n"

  # What a front server refuses, and its answer: [what, the bytes, status]. The 408s assume a read
  # timeout short enough for a test.
  REFUSED = [
    ["a Content-Length that is not a number", "#{HEAD}Content-Length: 12x\r\n\r\n", 400],
    ["two Content-Lengths", "#{HEAD}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400],
    ["a list of Content-Lengths", "#{HEAD}Content-Length: 3, 3\r\n\r\nabc", 400],
    ["Content-Length with Transfer-Encoding", "#{HEAD}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400],
    ["Transfer-Encoding: xchunked", "#{HEAD}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400],
    ["Transfer-Encoding: chunked, gzip", "#{HEAD}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400],
    ["a chunk size that is not hexadecimal", "#{HEAD}Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400],
    ["a malformed request line", "GET /\r\nHost: 127.0.0.1\r\n\r\n", 400],
    ["a header name with a space", "#{HEAD}Bad Name: x\r\nContent-Length: 0\r\n\r\n", 400],
    ["a body declared over 6 MB, not sent", "#{HEAD}Content-Length: #{7 * MB}\r\n\r\n", 413],
    ["chunks past 6 MB, the last one not sent",
     "#{HEAD}Transfer-Encoding: chunked\r\n\r\n#{(4 * MB).to_s(16)}\r\n#{"a" * (4 * MB)}\r\n#{(3 * MB).to_s(16)}\r\n", 413],
    ["a request line over 16 KB", "GET /#{"a" * 20_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414],
    ["101 headers", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n#{(1..100).map { |i| "X-#{i}: #{i}\r\n" }.join}\r\n", 431],
    ["a 1 MB header", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: #{"a" * MB}\r\n\r\n", 431],
    ["headers over 64 KB in all", "GET / HTTP/1.1\r\n#{(1..5).map { |i| "X-#{i}: #{"a" * 15_000}\r\n" }.join}\r\n", 431],
    ["a head cut short", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", 408],
    ["a body cut short", "#{HEAD}Content-Length: 10\r\n\r\nabc", 408]
  ].freeze

  # Writes `bytes` and reads one answer, through one buffer per socket (a server that gives none
  # within 5 s fails the example rather than hanging it).
  def exchange(socket, bytes)
    begin
      socket.write(bytes)
    rescue Errno::EPIPE, Errno::ECONNRESET
      nil # refused before all was written: the answer is there to read
    end
    io = ((@raw_buffers ||= {})[socket] ||= Net::BufferedIO.new(socket, read_timeout: 5))
    Net::HTTPResponse.read_new(io).tap { |response| response.reading_body(io, true) {} }
  end

  # Every refused request gets its status, a body that says why, `Connection: close`, and the end
  # of the connection; the block opens a new connection for each.
  def expect_refusals
    REFUSED.each do |what, bytes, status|
      socket = yield
      response = exchange(socket, bytes)
      expect([response.code, response["connection"]]).to eq([status.to_s, "close"]), what
      expect(response.body.to_s.strip).not_to be_empty, what
      expect(socket.read).to eq(""), what
    ensure
      socket&.close
    end
  end
end
