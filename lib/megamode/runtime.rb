# frozen_string_literal: true

require_relative "../megamode"

module Megamode
  # The second way to run on Lambda, beside the Ruby handler (which stays the default): megamode's
  # core polls Lambda's Runtime API itself, over a kept-alive connection, and handles each HTTP
  # event entirely in Rust with the GVL released; Ruby runs nothing per request. It removes the
  # Ruby runtime client's own cost per invocation. Turned on in a package by the exec wrapper
  # `megamode build` writes (AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime).
  module Runtime
    # The context a Ruby handler of non-HTTP events gets: the methods of Lambda's.
    Context = Struct.new(:aws_request_id, :deadline_ms, :invoked_function_arn) do
      def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName -- Lambda's name
        [deadline_ms - (Time.now.to_f * 1000).to_i, 0].max
      end

      def function_name
        ENV.fetch("AWS_LAMBDA_FUNCTION_NAME", nil)
      end
    end

    class << self
      # Serves invocations until interrupted. Boot errors are reported to Lambda as init errors.
      # `events`, when given, handles the events that are not HTTP (SQS, S3, EventBridge, ...) in
      # Ruby, called like a Lambda handler: `events.call(event:, context:)`; without it they go to
      # the app's pass-through path, as with the Ruby handler.
      def start(address: ENV.fetch("AWS_LAMBDA_RUNTIME_API", nil), events: nil)
        if address.nil? || address.empty?
          raise ConfigError, "AWS_LAMBDA_RUNTIME_API is not set: Megamode::Runtime.start runs inside Lambda " \
                             "(or against a Runtime API emulator), not on its own"
        end

        @events = events
        Megamode.send(:run_runtime, address, !events.nil?)
      end

      # Called by the native loop, with the GVL, for an event that is not HTTP. Like Lambda's Ruby
      # runtime, it sets the invocation's X-Ray trace id for the handler.
      def dispatch(event, request_id, deadline_ms, function_arn, trace_id)
        ENV["_X_AMZN_TRACE_ID"] = trace_id if trace_id
        { "result" => @events.call(event: event, context: Context.new(request_id, deadline_ms, function_arn)) }
      rescue StandardError => e
        warn "megamode: #{e.class}: #{e.message}"
        { "errorType" => e.class.name, "errorMessage" => e.message }
      end
    end
  end
end
