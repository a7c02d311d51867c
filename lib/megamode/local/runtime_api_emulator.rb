# frozen_string_literal: true

require "json"
require "securerandom"
require "socket"
require "timeout"
require_relative "../local"
require_relative "http_wire"
require_relative "identity"

module Megamode::Local
  # Lambda's Runtime API, emulated for the local tools (`megamode invoke|serve --package --runtime
  # native`), the tests and the benchmarks, as AWS documents it
  # (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): `GET
  # /2018-06-01/runtime/invocation/next` long-polls for an event and answers it with the
  # Lambda-Runtime-* headers; `POST .../invocation/{id}/response` and `.../error` take the result
  # (202; 400 for an unknown or finished request id; 413 past the 6 MB limit, unread); `POST
  # .../runtime/init/error` is accepted before the first `next` (202) and refused after (403).
  # Requests are read within HttpWire's limits, with no timeout: a runtime may stay connected, idle,
  # for as long as it likes (frozen between invocations, say).
  #
  # Since July 2026 `next` also sends `Lambda-Runtime-Invocation-Id`, which a runtime echoes on the
  # response or error (the result records what came back), and `Lambda-Runtime-Aws-Tenant-Id` for a
  # multi-tenant function. A result that arrives after the invocation's deadline gets 410 Gone.
  #
  # Streamed responses (`Lambda-Runtime-Function-Response-Mode: streaming`, chunked) are read as
  # they arrive, each piece handed to the invocation's `on_chunk` at once and its arrival time
  # recorded: for an HTTP integration (content type application/vnd.awslambda.http-integration-response)
  # the JSON prelude up to the 8 NUL bytes, then the body; up to 200 MB, past which the response is
  # cut off (413, and the result is Lambda's `Function.ResponseSizeTooLarge` error). An error after
  # the first byte comes in the trailers Lambda-Runtime-Function-Error-Type and -Body (base64 JSON).
  #
  # With `snap_start: true`, the SnapStart lifecycle AWS documents for container images
  # (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-custom.html): the function
  # starts with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start (`env`); at the end of its init (and its
  # before-snapshot hooks) the runtime calls `GET .../runtime/restore/next`, where Lambda takes the
  # snapshot: the call is held (`wait_for_snapshot` returns once it came) until the harness "restores"
  # (`restore!`, after freezing the processes as long as it likes), then answered 200. After-restore
  # hooks that fail are reported on `POST .../runtime/restore/error` (202, recorded in
  # `restore_errors`, as init errors are). No event is handed out before the restore: a `next` that
  # comes first (an image with the SnapStart label and no hooks) is where the snapshot is taken, and
  # it is held the same way.
  class RuntimeApiEmulator
    PREFIX = "/2018-06-01/runtime"
    LIMITS = HttpWire::Limits.new(body: 6 * 1024 * 1024, timeout: nil) # Lambda's response limit
    STREAM_LIMIT = 200 * 1024 * 1024
    HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
    DELIMITER = ("\0" * 8).b.freeze

    # `kind`: :response, :error, :gone (410: it came after the deadline), :init_error or :restore_error. For a
    # streamed response: `prelude` (the parsed JSON), `body` (what followed the delimiter, or all of
    # it for a stream that is not an HTTP integration), `chunks` ([monotonic time, bytes] per piece
    # as it arrived), and, when it failed after its first byte, `error_type` and `error` (the
    # decoded Error-Body trailer). `invocation_id`: the Lambda-Runtime-Invocation-Id it echoed.
    Result = Struct.new(:kind, :body, :error_type, :streamed, :prelude, :chunks, :error, :content_type,
                        :invocation_id, keyword_init: true)
    Waiting = Struct.new(:done, :deadline, :on_chunk, :on_prelude, :cut_after)

    attr_reader :init_errors, :next_calls, :restore_errors

    def initialize(snap_start: false)
      @snap_start = snap_start
      @snapshot_taken = false # the runtime asked for restore/next (or next) in snap-start mode
      @restored = !snap_start
      @restore_errors = []
      @server = TCPServer.new("127.0.0.1", 0)
      @events = Queue.new
      @waiting = {}
      @lock = Mutex.new
      @asked = ConditionVariable.new # signalled at each `next` and init error
      @init_errors = []
      @next_calls = 0
      @accepting = Thread.new { loop { Thread.new(@server.accept) { |client| serve(client) } } }
    end

    def address
      "127.0.0.1:#{@server.addr[1]}"
    end

    # The variables Lambda gives the function's process for this emulator: its address, and in
    # snap-start mode the initialization type.
    def env
      env = { "AWS_LAMBDA_RUNTIME_API" => address }
      env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start" if @snap_start
      env
    end

    # Snap-start mode: waits until the runtime has finished its init and asked for the restore (or
    # for an event), or has reported an init error, for at most `seconds`: whether it asked.
    def wait_for_snapshot(seconds)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      @lock.synchronize do
        until @snapshot_taken || !@init_errors.empty?
          left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          break if left <= 0

          @asked.wait(@lock, left)
        end
        @snapshot_taken
      end
    end

    # Snap-start mode: the snapshot is restored. The held restore/next is answered; events flow.
    def restore!
      raise ArgumentError, "restore! is for an emulator made with snap_start: true" unless @snap_start

      @lock.synchronize do
        @restored = true
        @restored_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        @asked.broadcast
      end
    end

    # Snap-start mode: the milliseconds from `restore!` to the runtime's first `next` after it (its
    # after-restore hooks, and its readiness check), which is what Lambda's REPORT gives as Restore
    # Duration, less the snapshot's own restore; nil until that `next` came. A `next` held since
    # before the restore (an image without the lifecycle) counts from its release: no hooks ran.
    def restore_ms
      @lock.synchronize { @first_next_at && (@first_next_at - @restored_at) * 1000 }
    end

    # Whether the runtime has asked for restore/next.
    def restore_asked?
      @lock.synchronize { @restore_asked == true }
    end

    # Sends `event` (a JSON text, or anything JSON.generate takes) as one invocation and waits for its
    # result (nil if none came within `wait` seconds). `on_chunk` is called with each piece of a
    # streamed response's body as it arrives, `on_prelude` with its prelude (in the emulator's
    # thread for that connection). With `cut_after`, the connection of a streamed response is closed
    # without an answer once that many body bytes have come (a broken connection to Lambda).
    def invoke(event, request_id: SecureRandom.uuid, timeout_ms: 30_000, trace_id: nil, tenant_id: nil,
               invocation_id: SecureRandom.uuid, on_chunk: nil, on_prelude: nil, wait: 60, cut_after: nil)
      body = event.is_a?(String) ? event : JSON.generate(event)
      done = Queue.new
      # Lambda sends whole milliseconds since the epoch; a timeout beyond any clock stops at u64's end.
      deadline = [[(Time.now.to_f * 1000).to_i + timeout_ms, 0].max, (2**64) - 1].min.floor
      @lock.synchronize { @waiting[request_id] = Waiting.new(done, deadline, on_chunk, on_prelude, cut_after) }
      trace = trace_id || Identity.trace_id
      @events << [request_id, body, deadline, trace, tenant_id, invocation_id]
      Timeout.timeout(wait) { done.pop }
    rescue Timeout::Error
      nil
    end

    # Waits until the runtime has asked for an event `count` times in all, or has reported an init
    # error, for at most `seconds`: whether it has asked that often.
    def wait_for_next(count, seconds)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      @lock.synchronize do
        while @next_calls < count && @init_errors.empty?
          left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          break if left <= 0

          @asked.wait(@lock, left)
        end
        @next_calls >= count
      end
    end

    def close
      @accepting.kill
      @server.close
    end

    private

    def serve(client)
      HttpWire.serve(client, LIMITS, refusal: method(:refusal), defer_body: method(:streamed?)) do |request, reader|
        headers = request.headers.to_h { |(name, value)| [name.downcase, value] }
        status, extra, answer =
          if request.body
            route(request.method, request.target, headers, request.body)
          else
            stream(request, headers, reader)
          end
        [status, [["Content-Type", "application/json"], *extra.to_a], answer]
      end
    end

    RESPONSE_PATH = %r{\A#{PREFIX}/invocation/([^/]+)/response\z}.freeze

    def streamed?(request)
      request.method == "POST" && RESPONSE_PATH.match?(request.target) &&
        HttpWire.header(request.headers, "lambda-runtime-function-response-mode").to_s.casecmp?("streaming")
    end

    # A streamed response, read as it arrives.
    def stream(request, headers, reader)
      id = RESPONSE_PATH.match(request.target)[1]
      waiting = @lock.synchronize { @waiting[id] }
      result = Result.new(kind: :response, streamed: true, body: +"".b, chunks: [],
                          content_type: headers["content-type"], invocation_id: headers["lambda-runtime-invocation-id"])
      http = result.content_type.to_s.casecmp?(HTTP_INTEGRATION)
      head = +"".b
      trailers = begin
        reader.stream_body(request.headers, STREAM_LIMIT) do |data|
          if http && result.prelude.nil?
            head << data
            next unless (at = head.index(DELIMITER))

            result.prelude = JSON.parse(head.byteslice(0, at))
            waiting&.on_prelude&.call(result.prelude)
            data = head.byteslice(at + DELIMITER.bytesize..)
            next if data.empty?
          end
          result.chunks << [HttpWire.now, data.bytesize]
          result.body << data
          waiting&.on_chunk&.call(data)
          # HttpWire.serve closes the connection, answering nothing.
          raise IOError, "cut off on purpose" if waiting&.cut_after && result.body.bytesize >= waiting.cut_after
        end
      rescue HttpWire::Refused => e
        if e.status == 413
          result.kind = :error
          result.error_type = "Function.ResponseSizeTooLarge"
          result.error = { "errorType" => result.error_type, "errorMessage" => "Response payload size exceeded maximum allowed payload size (#{STREAM_LIMIT} bytes)." }
          deliver(id, result, waiting)
        end
        raise
      end
      trailers = trailers.to_h { |(name, value)| [name.downcase, value] }
      if (type = trailers["lambda-runtime-function-error-type"])
        result.error_type = type
        result.error = JSON.parse(trailers.fetch("lambda-runtime-function-error-body", "").unpack1("m"))
      end
      deliver(id, result, waiting)
    end

    # Hands `result` to the invocation waiting for it: 202, or 410 past its deadline, or 400 for an
    # invocation that is not waiting.
    def deliver(id, result, waiting)
      return refuse(400, "InvalidRequestID", "no invocation #{id} is waiting for a result") unless waiting

      @lock.synchronize { @waiting.delete(id) }
      if (Time.now.to_f * 1000) > waiting.deadline
        waiting.done << Result.new(kind: :gone, body: result.body, invocation_id: result.invocation_id)
        return refuse(410, "InvocationGone", "invocation #{id} has ended: its deadline passed")
      end
      waiting.done << result
      [202, {}, %({"status":"OK"})]
    end

    # A request HttpWire refuses, answered in Lambda's shape (its type for 413: RequestEntityTooLarge).
    def refusal(error)
      type = error.status == 413 ? "RequestEntityTooLarge" : HttpWire.reason(error.status).delete(" ")
      _, _, body = refuse(error.status, type, error.message)
      [[["Content-Type", "application/json"]], body]
    end

    def route(method, path, headers, body)
      case [method, path]
      in ["GET", "#{PREFIX}/invocation/next"]
        @lock.synchronize do
          @next_calls += 1
          @snapshot_taken = true
          @asked.broadcast
          @asked.wait(@lock) until @restored
          @first_next_at ||= Process.clock_gettime(Process::CLOCK_MONOTONIC) if @snap_start
        end
        id, event, deadline, trace, tenant, invocation = @events.pop
        headers = { "Lambda-Runtime-Aws-Request-Id" => id, "Lambda-Runtime-Deadline-Ms" => deadline,
                    "Lambda-Runtime-Invoked-Function-Arn" => Identity.function_arn, "Lambda-Runtime-Trace-Id" => trace,
                    "Lambda-Runtime-Invocation-Id" => invocation }
        headers["Lambda-Runtime-Aws-Tenant-Id"] = tenant if tenant
        [200, headers, event]
      in ["POST", %r{\A#{PREFIX}/invocation/[^/]+/(response|error)\z}]
        _, id, kind = path.delete_prefix("#{PREFIX}/").split("/")
        finish(id, kind, headers, body)
      in ["POST", "#{PREFIX}/init/error"]
        return refuse(403, "InvalidStateTransition", "init errors are reported before the first next") if @next_calls.positive?

        @lock.synchronize do
          @init_errors << Result.new(kind: :init_error, body: body, error_type: headers["lambda-runtime-function-error-type"])
          @asked.broadcast
        end
        [202, {}, %({"status":"OK"})]
      in ["GET", "#{PREFIX}/restore/next"]
        restore_next
      in ["POST", "#{PREFIX}/restore/error"]
        restore_error(headers, body)
      else
        refuse(404, "UnknownResource", "#{method} #{path}")
      end
    end

    # Held until `restore!`; only once, before the first event, and only in snap-start mode.
    def restore_next
      @lock.synchronize do
        unless @snap_start
          return refuse(403, "InvalidStateTransition",
                        "restore/next is only for an initialization type of snap-start")
        end
        if @restore_asked || @next_calls.positive?
          return refuse(403, "InvalidStateTransition", "restore/next comes once, before the first next")
        end

        @restore_asked = true
        @snapshot_taken = true
        @asked.broadcast
        @asked.wait(@lock) until @restored
      end
      [200, {}, ""]
    end

    # Accepted after restore/next and before the first next, as init errors are before it.
    def restore_error(headers, body)
      @lock.synchronize do
        unless @restore_asked && @next_calls.zero?
          return refuse(403, "InvalidStateTransition", "restore errors are reported after restore/next, before the first next")
        end

        @restore_errors << Result.new(kind: :restore_error, body: body, error_type: headers["lambda-runtime-function-error-type"])
        @asked.broadcast
      end
      [202, {}, %({"status":"OK"})]
    end

    def finish(id, kind, headers, body)
      waiting = @lock.synchronize { @waiting[id] }
      deliver(id, Result.new(kind: kind.to_sym, body: body, error_type: headers["lambda-runtime-function-error-type"],
                             invocation_id: headers["lambda-runtime-invocation-id"]), waiting)
    end

    def refuse(status, type, message)
      [status, {}, JSON.generate(errorMessage: message, errorType: type)]
    end
  end
end
