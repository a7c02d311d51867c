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
  class RuntimeApiEmulator
    PREFIX = "/2018-06-01/runtime"
    LIMITS = HttpWire::Limits.new(body: 6 * 1024 * 1024, timeout: nil) # Lambda's response limit

    Result = Struct.new(:kind, :body, :error_type, keyword_init: true)

    attr_reader :init_errors, :next_calls

    def initialize
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

    # Sends `event` (a JSON text, or anything JSON.generate takes) as one invocation and waits for its
    # result (nil if none came within `wait` seconds).
    def invoke(event, request_id: SecureRandom.uuid, timeout_ms: 30_000, trace_id: nil, wait: 60)
      body = event.is_a?(String) ? event : JSON.generate(event)
      done = Queue.new
      @lock.synchronize { @waiting[request_id] = done }
      # Lambda sends whole milliseconds since the epoch; a timeout beyond any clock stops at u64's end.
      deadline = [(Time.now.to_f * 1000).to_i + timeout_ms, (2**64) - 1].min.floor
      trace = trace_id || Identity.trace_id
      @events << [request_id, body, deadline, trace]
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
      HttpWire.serve(client, LIMITS, refusal: method(:refusal)) do |request|
        headers = request.headers.to_h { |(name, value)| [name.downcase, value] }
        status, extra, answer = route(request.method, request.target, headers, request.body)
        [status, [["Content-Type", "application/json"], *extra.to_a], answer]
      end
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
          @asked.broadcast
        end
        id, event, deadline, trace = @events.pop
        [200, { "Lambda-Runtime-Aws-Request-Id" => id, "Lambda-Runtime-Deadline-Ms" => deadline,
                "Lambda-Runtime-Invoked-Function-Arn" => Identity.function_arn, "Lambda-Runtime-Trace-Id" => trace }, event]
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
      else
        refuse(404, "UnknownResource", "#{method} #{path}")
      end
    end

    def finish(id, kind, headers, body)
      done = @lock.synchronize { @waiting.delete(id) }
      return refuse(400, "InvalidRequestID", "no invocation #{id} is waiting for a result") unless done

      done << Result.new(kind: kind.to_sym, body: body, error_type: headers["lambda-runtime-function-error-type"])
      [202, {}, %({"status":"OK"})]
    end

    def refuse(status, type, message)
      [status, {}, JSON.generate(errorMessage: message, errorType: type)]
    end
  end
end
