# frozen_string_literal: true

require "io/wait"
require "net/http"
require_relative "../local"

module Megamode::Local
  # HTTP/1.1 on a socket for megamode's local servers (`megamode serve`, the Runtime API emulator):
  # serving a connection, reading its requests (the request line, the headers as sent, in order, and
  # the body by Content-Length or chunked) within limits, and writing responses.
  module HttpWire
    # What a client may send, as a front server in AWS allows it. The sizes are an Application Load
    # Balancer's (its quotas: request line 16 KB, one header 16 KB, all request headers 64 KB; an
    # HTTP API is stricter: 10 KB for the request line and the headers together). ALB documents no
    # header count: 100 is Apache's LimitRequestFields. The body: Lambda's 6 MB for a synchronous
    # invocation, past which API Gateway and Function URLs answer 413.
    MAX_REQUEST_LINE = 16 * 1024   # past it: 414
    MAX_HEADER = 16 * 1024         # one header line; past it: 431
    MAX_HEADERS_BYTES = 64 * 1024  # all the header lines; past it: 431
    MAX_HEADERS = 100              # past it: 431
    MAX_BODY = 6 * 1024 * 1024     # past it: 413
    # Seconds for a request's line and headers to arrive, and for each wait on its body; past it:
    # 408. A connection idle for as long before a request's first byte is closed without an answer.
    # Also how long a client may leave a response's bytes untaken (its socket's buffers full) at any
    # one time: past it, the client is dropped (Stalled), so that one that stops reading holds no one.
    READ_TIMEOUT = 30
    MAX_CHUNK_LINE = 4 * 1024      # a chunk's size line, extensions included; past it: 400
    LINGER = 2                     # seconds a refused client's further bytes are read and dropped
    READ_SIZE = 16 * 1024          # one read; a body's are up to 16 times larger

    Limits = Struct.new(:request_line, :header, :headers_bytes, :headers, :body, :timeout, keyword_init: true) do
      def initialize(request_line: MAX_REQUEST_LINE, header: MAX_HEADER, headers_bytes: MAX_HEADERS_BYTES,
                     headers: MAX_HEADERS, body: MAX_BODY, timeout: READ_TIMEOUT)
        super
      end
    end

    Request = Struct.new(:method, :target, :version, :headers, :body, keyword_init: true) do
      # Whether the client keeps the connection open after this request.
      def keep_alive?
        options = HttpWire.header(headers, "connection").to_s.downcase.split(/\s*,\s*/)
        version == "HTTP/1.1" ? !options.include?("close") : options.include?("keep-alive")
      end
    end

    # A request refused with `status`; the message says why.
    class Refused < StandardError
      attr_reader :status

      def initialize(status, message)
        @status = status
        super(message)
      end
    end

    TOKEN = /\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\z/.freeze
    REQUEST_LINE = %r{\A([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7F]+) (HTTP/1\.[01])\z}n.freeze
    CONTROL = /[\x00-\x08\x0A-\x1F\x7F]/n.freeze

    module_function

    # Serves one connection: reads its requests one after the other, answers each with what the block
    # returns for it ([status, [[name, value], ...], body]), and closes it when the client asks, at its
    # end, or after refusing a request. A refusal is answered with its status, a body that says why
    # (`refusal` turns the Refused into [headers, body]) and `Connection: close`. A request for which
    # `defer_body` answers true comes with no body: the block reads it with the reader it also gets
    # (Reader#stream_body), as it arrives.
    def serve(io, limits = Limits.new, refusal: method(:refusal), defer_body: nil)
      reader = Reader.new(io, limits)
      while (request = reader.read(defer_body: defer_body))
        status, headers, body = yield request, reader
        write_response(io, status, headers, body, keep_alive: request.keep_alive?, timeout: limits.timeout)
        break unless request.keep_alive?
      end
    rescue Refused => e
      refuse(io, e, refusal)
    rescue IOError, SystemCallError
      nil
    ensure
      io.close
    end

    def refusal(error)
      [[["content-type", "text/plain"]], "#{error.message}\n"]
    end

    # After the answer, what the client still sends is read and dropped for a moment, so that it gets
    # the answer rather than a connection reset while it writes.
    def refuse(io, error, refusal)
      write_response(io, error.status, *refusal.call(error), keep_alive: false, timeout: LINGER)
      io.close_write
      deadline = now + LINGER
      while (wait = deadline - now).positive? && io.wait_readable(wait)
        break if io.read_nonblock(64 * 1024, exception: false).nil?
      end
    rescue IOError, SystemCallError
      nil
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # Writes a response with its length; `headers` are name and value pairs (framing headers of
    # their own are replaced). A body that is not a String is streamed: chunked, each piece it
    # yields written at once. When it raises Aborted, the response is cut off without its last
    # chunk, so the client sees it broken, not complete. Each write waits at most `timeout` seconds
    # (nil: without end) for the client to take bytes, and for a streamed body that answers
    # `deadline` (a monotonic time) never past it; then raises Stalled.
    def write_response(io, status, headers, body, keep_alive: true, timeout: READ_TIMEOUT)
      headers = headers.reject { |(n, _)| %w[content-length transfer-encoding connection].include?(n.downcase) }
      out = +"HTTP/1.1 #{status} #{reason(status)}\r\n"
      headers.each { |(name, value)| out << "#{name}: #{value.to_s.delete("\r\n")}\r\n" }
      return write_chunked(io, out, body, keep_alive, timeout) unless body.is_a?(String)

      out << "content-length: #{body.bytesize}\r\n"
      out << "connection: #{keep_alive ? "keep-alive" : "close"}\r\n\r\n"
      write(io, out.b << body.b, timeout)
    end

    # A streamed body broke off: the response must end unfinished.
    class Aborted < IOError; end

    # The client took none of a response's bytes in time: it is dropped.
    class Stalled < IOError; end

    def write_chunked(io, head, body, keep_alive, timeout)
      deadline = body.deadline if body.respond_to?(:deadline)
      head << "transfer-encoding: chunked\r\n"
      head << "connection: #{keep_alive ? "keep-alive" : "close"}\r\n\r\n"
      write(io, head.b, timeout, deadline)
      body.each do |piece|
        write(io, "#{piece.bytesize.to_s(16)}\r\n".b << piece.b << "\r\n", timeout, deadline) unless piece.empty?
      end
      write(io, "0\r\n\r\n".b, timeout, deadline)
    end

    # Writes `data` to the client, waiting at most `timeout` seconds at a time for it to take more
    # (nil: no limit), and never past `deadline`; raises Stalled past either. A blocking write would
    # wait for as long as a client that stopped reading pleases, holding what the writer holds.
    def write(io, data, timeout, deadline = nil)
      until data.empty?
        written = io.write_nonblock(data, exception: false)
        unless written == :wait_writable
          data = data.byteslice(written..)
          next
        end
        wait = [timeout, deadline && deadline - now].compact.min
        next if io.wait_writable(wait&.clamp(0..))

        why = deadline && deadline <= now ? "before the invocation's deadline" : "for #{timeout} s"
        raise Stalled, "the client took nothing of the response #{why}"
      end
    end

    # "See Other" from Net::HTTPSeeOther, "URI Too Long" from Net::HTTPURITooLong, worked out once
    # per status.
    REASONS = Hash.new do |reasons, status|
      name = Net::HTTPResponse::CODE_TO_OBJ[status.to_s]&.name&.sub(/\ANet::HTTP/, "")
      reasons[status] = name&.gsub(/(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/, " ") || "Status"
    end

    def reason(status)
      REASONS[status]
    end

    def header(headers, name)
      headers.find { |(n, _)| n.casecmp?(name) }&.last
    end

    # Reads the requests of one connection into a buffer of its own, which never holds more than a
    # limit plus one read: what a client sends past a limit is refused, never kept.
    class Reader
      def initialize(io, limits = Limits.new)
        @io = io
        @limits = limits
        @buffer = +"".b
      end

      # The next request; nil when the connection ends, or stays idle past the timeout, before the
      # first byte of one. Raises Refused for a request it refuses, EOFError when the client leaves
      # in the middle of one.
      def read(defer_body: nil)
        @head_deadline = @limits.timeout && HttpWire.now + @limits.timeout
        return nil if @buffer.empty? && fill != :data

        method, target, version = request_line
        headers = fields
        @head_deadline = nil
        request = Request.new(method: method, target: target, version: version, headers: headers)
        request.body = body(headers) unless defer_body&.call(request)
        request
      end

      # The body of a request read with a deferred body, yielded piece by piece as it arrives, up to
      # `limit` bytes (past it: Refused 413); returns the trailers of a chunked body (name and value
      # pairs), or none.
      def stream_body(headers, limit)
        length = length(headers)
        unless length == :chunked
          yield take(length) if length.positive?
          return []
        end
        total = 0
        loop do
          size = chunk_size(line(MAX_CHUNK_LINE) { Refused.new(400, "a chunk size line over #{MAX_CHUNK_LINE} bytes") })
          break if size.zero?
          raise Refused.new(413, "body over #{limit} bytes") if total + size > limit

          total += size
          while size.positive?
            more(size) if @buffer.empty?
            piece = @buffer.slice!(0, size)
            size -= piece.bytesize
            yield piece
          end
          raise Refused.new(400, "a chunk not followed by CRLF") unless take(2) == "\r\n"
        end
        fields
      end

      private

      # One empty line before it is ignored, as RFC 9112 advises.
      def request_line
        too_long = -> { Refused.new(414, "request line over #{@limits.request_line} bytes") }
        line = line(@limits.request_line, &too_long)
        line = line(@limits.request_line, &too_long) if line.empty?
        match = REQUEST_LINE.match(line)
        raise Refused.new(400, "malformed request line") unless match

        match.captures
      end

      # Header lines up to the empty line, as name and value pairs (the trailers of a chunked body too).
      def fields
        fields = []
        bytes = 0
        loop do
          room = @limits.headers_bytes - bytes
          line = line([@limits.header, room].min) do
            Refused.new(431, room < @limits.header ? "headers over #{@limits.headers_bytes} bytes in all" :
                                                     "a header over #{@limits.header} bytes")
          end
          return fields if line.empty?
          raise Refused.new(431, "more than #{@limits.headers} headers") if fields.size == @limits.headers

          bytes += line.bytesize
          fields << field(line)
        end
      end

      def field(line)
        raise Refused.new(400, "a header folded over lines") if line.start_with?(" ", "\t")

        name, value = line.split(":", 2)
        raise Refused.new(400, "malformed header name #{name[0, 64].inspect}") unless value && TOKEN.match?(name)

        value = value.gsub(/\A[ \t]+|[ \t]+\z/, "")
        raise Refused.new(400, "a control character in the header #{name}") if CONTROL.match?(value)

        [name, value]
      end

      def body(headers)
        length = length(headers)
        return "".b if length == 0

        continue(headers)
        length == :chunked ? chunked : take(length)
      end

      # The body's framing: its length or :chunked. What a server and the app behind it could read two
      # ways is refused.
      def length(headers)
        lengths = values(headers, "content-length")
        codings = values(headers, "transfer-encoding")
        unless codings.empty?
          raise Refused.new(400, "both Content-Length and Transfer-Encoding") unless lengths.empty?
          unless codings.map(&:downcase) == ["chunked"]
            raise Refused.new(400, "Transfer-Encoding #{codings.join(", ")[0, 64].inspect}: only chunked is accepted")
          end

          return :chunked
        end
        return 0 if lengths.empty?
        raise Refused.new(400, "more than one Content-Length") if lengths.size > 1
        declared = lengths.first
        raise Refused.new(400, "Content-Length #{declared[0, 64].inspect} is not a length") unless /\A\d+\z/.match?(declared)

        Integer(declared, 10).tap { |n| raise too_large if n > @limits.body }
      end

      # Every value of the header, comma-separated lists split.
      def values(headers, name)
        headers.select { |(n, _)| n.casecmp?(name) }.flat_map { |(_, v)| v.empty? ? [v] : v.split(",", -1).map(&:strip) }
      end

      # A client that waits for 100 Continue before it sends the body (curl does) is told to go on.
      def continue(headers)
        return unless @buffer.empty? && HttpWire.header(headers, "expect").to_s.casecmp?("100-continue")

        HttpWire.write(@io, "HTTP/1.1 100 Continue\r\n\r\n".b, @limits.timeout)
      end

      def chunked
        body = +"".b
        loop do
          size = chunk_size(line(MAX_CHUNK_LINE) { Refused.new(400, "a chunk size line over #{MAX_CHUNK_LINE} bytes") })
          raise too_large if body.bytesize + size > @limits.body
          break if size.zero?

          body << take(size)
          raise Refused.new(400, "a chunk not followed by CRLF") unless take(2) == "\r\n"
        end
        fields # the trailers, dropped
        body
      end

      def chunk_size(line)
        hex = line.split(";", 2).first.to_s.strip
        raise Refused.new(400, "bad chunk size #{hex[0, 64].inspect}") unless /\A\h{1,15}\z/.match?(hex)

        hex.to_i(16)
      end

      def too_large
        Refused.new(413, "request body over #{@limits.body} bytes")
      end

      # One line without its end (CRLF, or LF alone), from the buffer and what arrives; the block's
      # Refused when it is over `limit` bytes, known before more than one read past it.
      def line(limit)
        scanned = 0
        loop do
          if (found = @buffer.index("\n", scanned))
            line = @buffer.slice!(0, found + 1).chomp
            raise yield if line.bytesize > limit
            raise Refused.new(400, "a CR inside a line") if line.include?("\r")

            return line
          end
          raise yield if @buffer.bytesize > limit + 1

          scanned = @buffer.bytesize
          more
        end
      end

      # The next `size` bytes.
      def take(size)
        more(size - @buffer.bytesize) while @buffer.bytesize < size
        @buffer.slice!(0, size)
      end

      def more(wanted = READ_SIZE)
        case fill(wanted)
        when :end then raise EOFError, "the client left in the middle of a request"
        when :timeout then raise Refused.new(408, "the request did not arrive within #{@limits.timeout} seconds")
        end
      end

      # Adds what arrives to the buffer: :data, or :end, or :timeout when nothing came in time (the
      # head has until its deadline, the body the timeout at each wait).
      def fill(wanted = READ_SIZE)
        deadline = @head_deadline || (@limits.timeout && HttpWire.now + @limits.timeout)
        loop do
          data = @io.read_nonblock(wanted.clamp(READ_SIZE, 16 * READ_SIZE), exception: false)
          return :end if data.nil?
          unless data == :wait_readable
            @buffer << data
            return :data
          end

          wait = deadline && deadline - HttpWire.now
          return :timeout if (wait && !wait.positive?) || !@io.wait_readable(wait)
        end
      end
    end
  end
end
