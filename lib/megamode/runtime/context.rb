# frozen_string_literal: true

module Megamode
  # A Lambda context object: every method of the one Lambda's Ruby runtime gives a handler (its
  # runtime interface client's LambdaContext), plus `tenant_id` (a multi-tenant function's tenant,
  # which Lambda's other runtimes' contexts carry) and `trace_id`, the invocation's X-Ray header,
  # which Lambda's Ruby runtime puts in ENV["_X_AMZN_TRACE_ID"] instead. megamode reads the trace id
  # from a context that answers `trace_id`, and from that variable only for a context that does not
  # (Lambda's own).
  #
  # The native loop gives one to the Ruby handler of events that are not HTTP; the local tools give
  # one to every handler they call (Megamode::Local::Identity.context_fields). Plain Ruby with no
  # dependencies: it ships in packages, and the local tools use the one the megamode under test
  # loaded.
  class Context
    # Lambda's, in its order, then megamode's.
    FIELDS = %i[aws_request_id invoked_function_arn log_group_name log_stream_name function_name
                memory_limit_in_mb function_version identity client_context deadline_ms tenant_id
                trace_id].freeze

    attr_reader(*FIELDS)

    # `deadline_ms`: when the invocation ends, in milliseconds since the epoch, as the Runtime API
    # sends it (an Integer); locally it may be a Float, infinite for a timeout beyond any clock.
    # `identity` and `client_context` are the parsed JSON of their Runtime API headers.
    # `memory_limit_in_mb` is text, as Lambda's context reads it from the environment.
    def initialize(aws_request_id:, deadline_ms:, **fields)
      unknown = fields.keys - FIELDS
      raise ArgumentError, "unknown Lambda context fields: #{unknown.join(", ")}" unless unknown.empty?

      @aws_request_id = aws_request_id
      @deadline_ms = deadline_ms
      fields.each { |name, value| instance_variable_set(:"@#{name}", value) }
      # The wall clock at this moment, less the monotonic one: the remaining time then counts on the
      # monotonic clock (as Lambda's context does), which a change of the wall clock does not move.
      @clock_diff = Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond) -
                    Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond)
    end

    # Whole milliseconds, never below zero; infinite for an infinite deadline.
    def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName -- Lambda's name
      remaining = deadline_ms - (Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond) + @clock_diff)
      (remaining.infinite? ? remaining : remaining.floor).clamp(0, nil)
    end
  end
end
