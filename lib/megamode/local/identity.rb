# frozen_string_literal: true

require "securerandom"
require_relative "../local"

module Megamode::Local
  # The one function every local run pretends to be, in the one account and region: the context a
  # handler gets (context_fields), the environment a package runs in (LambdaEnvironment), the
  # events the gateway makes (Gateway) and the Runtime API emulator's headers all name it from here.
  module Identity
    ACCOUNT = "123456789012" # the account id of AWS's own samples
    REGION = "us-east-1"
    FUNCTION_NAME = "megamode-local"
    FUNCTION_VERSION = "$LATEST"
    MEMORY_MB = 1024 # what megamode's SAM template gives a function

    module_function

    def function_arn(name = FUNCTION_NAME)
      "arn:aws:lambda:#{REGION}:#{ACCOUNT}:function:#{name}"
    end

    def log_group(name = FUNCTION_NAME)
      "/aws/lambda/#{name}"
    end

    # The log stream of this execution environment (this process), named as Lambda names one:
    # the day, the version and a random id.
    def log_stream
      @log_stream ||= "#{Time.now.utc.strftime("%Y/%m/%d")}/[#{FUNCTION_VERSION}]#{SecureRandom.hex(16)}"
    end

    # The fields of a Lambda context (Megamode::Context.new's keywords) for an invocation with
    # `timeout` seconds left (any Float: one beyond any clock leaves an infinite time), as Lambda's
    # runtime makes them: the function's name, version, memory and log group and stream from
    # Lambda's environment variables (set for a package by LambdaEnvironment), falling back on this
    # identity; `function_arn` is the one the Runtime API named (default: the function's).
    #
    # A plain Hash, not the context itself: a local tool loads nothing else of megamode, so the
    # class is the one the megamode under test loaded (the app's, or the package's own), and the
    # runtime that calls the handler makes the context of it (Invoke's runtimes).
    def context_fields(timeout:, request_id: SecureRandom.uuid, function_arn: nil, trace_id: nil)
      name = ENV.fetch("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
      { aws_request_id: request_id,
        deadline_ms: Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond) + (timeout * 1000.0),
        invoked_function_arn: function_arn || function_arn(name),
        function_name: name,
        function_version: ENV.fetch("AWS_LAMBDA_FUNCTION_VERSION", FUNCTION_VERSION),
        memory_limit_in_mb: ENV.fetch("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_s),
        log_group_name: ENV.fetch("AWS_LAMBDA_LOG_GROUP_NAME") { log_group(name) },
        log_stream_name: ENV.fetch("AWS_LAMBDA_LOG_STREAM_NAME") { log_stream },
        trace_id: trace_id }
    end

    # A new X-Ray trace header, as Lambda gives each invocation in _X_AMZN_TRACE_ID and the Runtime
    # API's Lambda-Runtime-Trace-Id: a root with the time in hex, a parent, not sampled.
    def trace_id
      "Root=1-#{Time.now.to_i.to_s(16)}-#{SecureRandom.hex(12)};Parent=#{SecureRandom.hex(8)};Sampled=0"
    end
  end
end
