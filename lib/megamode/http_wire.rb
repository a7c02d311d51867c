# frozen_string_literal: true

require "net/http"

module Megamode
  # HTTP/1.1 on a socket for megamode's local servers (`megamode serve`, the Runtime API emulator):
  # reading requests (the request line, the headers as sent, in order, and the body by
  # Content-Length or chunked) and writing responses.
  module HttpWire
    Request = Struct.new(:method, :target, :version, :headers, :body, keyword_init: true)

    module_function

    # The next request, or nil at the end of the connection. `max_body`: bytes past which the body
    # is refused with an IOError that says `limit_name`.
    def read(io, max_body: nil, limit_name: "the limit")
      line = io.gets("\r\n", 16 * 1024)
      return nil if line.nil? || line.strip.empty?

      method, target, version = line.strip.split(" ", 3)
      headers = read_headers(io)
      body = read_body(io, headers, max_body, limit_name)
      Request.new(method: method, target: target, version: version, headers: headers, body: body)
    end

    # Writes a response with its length; `headers` are name and value pairs (framing headers of
    # their own are replaced).
    def write_response(io, status, headers, body, keep_alive: true)
      headers = headers.reject { |(n, _)| %w[content-length transfer-encoding connection].include?(n.downcase) }
      out = +"HTTP/1.1 #{status} #{reason(status)}\r\n"
      headers.each { |(name, value)| out << "#{name}: #{value.to_s.delete("\r\n")}\r\n" }
      out << "content-length: #{body.bytesize}\r\n"
      out << "connection: #{keep_alive ? "keep-alive" : "close"}\r\n\r\n"
      io.write(out.b, body.b)
    end

    # "See Other" from Net::HTTPSeeOther, worked out once per status.
    REASONS = Hash.new do |reasons, status|
      name = Net::HTTPResponse::CODE_TO_OBJ[status.to_s]&.name
      reasons[status] = name&.sub(/\ANet::HTTP/, "")&.gsub(/(?<=[a-z])(?=[A-Z])/, " ") || "Status"
    end

    def reason(status)
      REASONS[status]
    end

    def header(headers, name)
      headers.find { |(n, _)| n.casecmp?(name) }&.last
    end

    def read_headers(io)
      headers = []
      while (line = io.gets("\r\n", 64 * 1024)) && line != "\r\n"
        name, value = line.chomp("\r\n").split(":", 2)
        headers << [name.strip, value.to_s.strip] if name && !name.strip.empty?
      end
      headers
    end

    def read_body(io, headers, max_body, limit_name)
      chunked = headers.any? { |(n, v)| n.casecmp?("transfer-encoding") && v.downcase.include?("chunked") }
      return read_chunked(io, max_body, limit_name) if chunked

      length = header(headers, "content-length")
      return "".b if length.nil?

      size = Integer(length)
      raise IOError, "request body over #{limit_name}" if max_body && size > max_body

      io.read(size).to_s.b
    end

    def read_chunked(io, max_body, limit_name)
      body = +"".b
      loop do
        size = io.gets("\r\n").to_s.to_i(16)
        break if size.zero?

        body << io.read(size)
        io.read(2)
        raise IOError, "request body over #{limit_name}" if max_body && body.bytesize > max_body
      end
      io.gets("\r\n")
      body
    end
  end
end
