# frozen_string_literal: true

require_relative "../megamode"

module Megamode
  # The second way to run on Lambda, beside the Ruby handler (which stays the default): megamode's
  # core polls Lambda's Runtime API itself, over a kept-alive connection, and handles each HTTP
  # event entirely in Rust with the GVL released; Ruby runs nothing per request. It removes the
  # Ruby runtime client's own cost per invocation. Turned on in a package by the exec wrapper
  # `megamode build` writes (AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime).
  module Runtime
    class << self
      # Serves invocations until interrupted. Boot errors are reported to Lambda as init errors.
      # `events`, when given, handles the events that are not HTTP (SQS, S3, EventBridge, ...) in
      # Ruby, called like a Lambda handler: `events.call(event:, context:)`, with a
      # Megamode::Context, and the trace id in ENV["_X_AMZN_TRACE_ID"] too, as Lambda's runtime
      # sets it. An exception it raises is the invocation's error, typed by its class, with a
      # `megamode: Class: message` log line. Without `events` they go to the app's pass-through
      # path, as with the Ruby handler. The binding holds `events` for as long as the loop runs.
      def start(address: ENV.fetch("AWS_LAMBDA_RUNTIME_API", nil), events: nil)
        if address.nil? || address.empty?
          raise ConfigError, "AWS_LAMBDA_RUNTIME_API is not set: Megamode::Runtime.start runs inside Lambda " \
                             "(or against a Runtime API emulator), not on its own"
        end

        Megamode.send(:run_runtime, address, events)
      end
    end
  end
end
