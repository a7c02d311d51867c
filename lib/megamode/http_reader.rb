# frozen_string_literal: true

module Megamode
  # Reads HTTP/1.1 requests off a socket, for megamode's local servers (`megamode serve`, the
  # Runtime API emulator): the request line, the headers as sent (name and value pairs, in order),
  # and the body by Content-Length or chunked.
  module HttpReader
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
