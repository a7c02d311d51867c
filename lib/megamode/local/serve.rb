# frozen_string_literal: true

require "json"
require "open3"
require "socket"
require_relative "../local"
require_relative "gateway"
require_relative "http_wire"
require_relative "lambda_environment"

module Megamode::Local
  # `megamode serve`: a local gateway. Real HTTP requests on 127.0.0.1 become the events an AWS
  # service would send (Gateway), go through the handler in a handler process of its own (an app
  # directory, or a built package in an environment like Lambda's, through its handler.rb or its
  # native loop), as `megamode invoke` runs them, and the results go back as HTTP.
  # One invocation at a time, as one Lambda execution environment handles them. What a front server
  # refuses (HttpWire's limits, ambiguous framing) is refused here too, without invoking the handler.
  class Serve
    # `snap_start` and `restore_after`: SnapStart's init, its snapshot restored after that freeze
    # (LambdaEnvironment.handler_process).
    def initialize(kind:, dir:, port:, format:, stage:, log: $stderr, timeout: 30.0,
                   read_timeout: HttpWire::READ_TIMEOUT, stream: false, snap_start: false, restore_after: 0)
      @snap_start = snap_start
      @restore_after = restore_after
      @stream = stream
      @kind = kind
      @dir = dir
      @port = port
      @gateway = Gateway.new(format: format, stage: stage, scheme: "http")
      @format = format
      @stage = stage
      @log = log
      @timeout = timeout
      @limits = HttpWire::Limits.new(timeout: read_timeout)
      @lock = Mutex.new
    end

    def run
      server = TCPServer.new("127.0.0.1", @port)
      start_handler
      announce(server.addr[1])
      trap_signals(server)
      loop do
        client = server.accept
        Thread.new(client) { |c| serve_connection(c) }
      end
    rescue IOError, Errno::EBADF
      0 # the server socket was closed by a signal
    ensure
      stop_handler
    end

    private

    def announce(port)
      where = @stage && %w[v1 v2].include?(@format) ? "/#{@stage}/" : "/"
      @log.puts "megamode serve: #{@kind} #{@dir} as #{description}#{" streaming" if @stream} at http://127.0.0.1:#{port}#{where} (Ctrl-C stops)"
      @log.flush
    end

    def description
      { "v2" => "an HTTP API (payload 2.0)", "v1" => "a REST API (payload 1.0)", "alb" => "an ALB target",
        "url" => "a Function URL" }.fetch(@format)
    end

    def trap_signals(server)
      %w[INT TERM].each { |signal| trap(signal) { server.close } }
    end

    # `kind`: app, package or native (a package through its native loop), image or image-native
    # (`dir` is then an image's tag).
    def start_handler
      env, command = LambdaEnvironment.handler_process(@kind, @dir, @timeout, log: @log, stream: @stream,
                                                       snap_start: @snap_start, restore_after: @restore_after)
      @stdin, @stdout, @wait = Open3.popen2(env, *command, chdir: LambdaEnvironment.workdir(@kind, @dir), err: @log)
      # Bytes both ways: the events and results are UTF-8 JSON, whatever the caller's locale.
      [@stdin, @stdout].each(&:binmode)
    end

    def stop_handler
      @stdin&.close unless @stdin&.closed?
      @wait&.join(10)
    rescue IOError
      nil
    end

    def invoke(event)
      @lock.synchronize do
        @stdin.puts(JSON.generate(event))
        @stdin.flush
        line = @stdout.gets
        raise IOError, "the handler process exited" unless line

        JSON.parse(line)
      end
    end

    def serve_connection(client)
      peer = client.peeraddr[3]
    rescue SystemCallError
      client.close
    else
      HttpWire.serve(client, @limits) do |request|
        check_utf8(request)
        respond(Gateway::Request.new(method: request.method, target: request.target, headers: request.headers,
                                     body: request.body, peer: peer))
      end
    ensure
      # A streamed response the client left in the middle of: the rest is read, so the next
      # invocation's lines are its own.
      @streaming&.drain if @lock.owned?
    end

    # An event is JSON, which holds UTF-8 text only: a request line or a header with other bytes
    # (obs-text, such as Latin-1) cannot become one, and is refused before the handler sees it.
    def check_utf8(request)
      where = if !utf8?(request.target) then "the request line"
              elsif (name, = request.headers.find { |(_, value)| !utf8?(value) }) then "the header #{name}"
              end
      raise HttpWire::Refused.new(400, "#{where} has bytes that are not UTF-8, which an event cannot carry") if where
    end

    def utf8?(text)
      text.ascii_only? || text.dup.force_encoding(Encoding::UTF_8).valid_encoding?
    end

    def respond(request)
      event = @gateway.event(request)
      return @gateway.not_found unless event
      return streamed(event) if @stream

      @gateway.response(invoke(event)).tap { |response| advise_on_https(response) }
    rescue IOError => e
      [502, [["content-type", "text/plain"]], "megamode serve: #{e.message}\n"]
    end

    # With --stream: the invocation holds the handler process until its streamed body has been read
    # through (Streamed releases it); a result that did not stream is answered as usual. The client
    # is written to while the invocation holds the handler process, so each write waits at most the
    # read timeout and never past the invocation's deadline (HttpWire.write): a client that stops
    # reading is dropped then, and the rest of its response read and discarded, so the next client
    # is served.
    def streamed(event)
      @lock.lock
      deadline = HttpWire.now + @timeout
      @stdin.puts(JSON.generate(event))
      @stdin.flush
      first = JSON.parse(@stdout.gets || raise(IOError, "the handler process exited"))
      unless first.is_a?(Hash) && first["megamode_stream"] == "prelude"
        @lock.unlock
        return @gateway.response(first)
      end
      @streaming = Streamed.new(@stdout, @lock, @log, deadline)
      prelude = first["prelude"]
      headers = prelude.fetch("headers", {}).map { |name, value| [name, value.to_s] }
      prelude.fetch("cookies", []).each { |cookie| headers << ["set-cookie", cookie] }
      [Integer(prelude.fetch("statusCode", 200)), headers, @streaming]
    rescue IOError
      @lock.unlock if @lock.owned?
      raise
    end

    # The body of a streamed response, read from the handler process as it arrives: a response
    # that broke off (the error trailers) is cut off for the client too, as Lambda does.
    class Streamed
      # When the invocation ends (a monotonic time): no write to the client waits past it.
      attr_reader :deadline

      def initialize(stdout, lock, log, deadline)
        @stdout = stdout
        @lock = lock
        @log = log
        @deadline = deadline
      end

      def each
        while (message = next_message)
          yield message.fetch("data").unpack1("m") if message["megamode_stream"] == "chunk"
        end
        raise HttpWire::Aborted, "the streamed response broke off: #{@failure}" if @failure
      rescue HttpWire::Stalled => e
        @log.puts "megamode serve: #{e.message}: the client is dropped, and the rest of its streamed response discarded"
        raise
      ensure
        drain
      end

      # Reads what is left of the response; releases the handler process.
      def drain
        nil while next_message
      ensure
        @lock.unlock if @lock.owned?
      end

      private

      # The next part, nil at the end of the response.
      def next_message
        return nil if @ended

        line = @stdout.gets
        message = line && JSON.parse(line)
        if message.nil? || message["megamode_stream"] != "chunk"
          @ended = true
          @failure = message && message["errorMessage"]
          @failure ||= "the handler process exited" if message.nil?
          return nil
        end
        message
      end
    end

    # An app that forces HTTPS (Rails' force_ssl) redirects every request here to an https:// URL
    # this plain-HTTP gateway cannot serve: say so once, with the way out.
    def advise_on_https(response)
      status, headers, = response
      location = headers.find { |(n, _)| n.casecmp?("location") }&.last.to_s
      return if @advised || ![301, 302, 307, 308].include?(status) || !location.start_with?("https://127.0.0.1:")

      @advised = true
      @log.puts "megamode serve: the app redirects to HTTPS (#{location}): on Lambda every URL is HTTPS, but " \
                "this gateway is plain HTTP. For Rails' config.force_ssl, let an environment variable turn it " \
                "off locally (config.force_ssl = ENV[\"FORCE_SSL\"] != \"0\"), then serve with FORCE_SSL=0."
    end
  end
end
