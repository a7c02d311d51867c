# frozen_string_literal: true

require "securerandom"
require_relative "../local"

module Megamode::Local
  # The one function every local run pretends to be, in the one account and region: the context a
  # handler gets (Context), the environment a package runs in (LambdaEnvironment), the events the
  # gateway makes (Gateway) and the Runtime API emulator's headers all name it from here.
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

    # A new X-Ray trace header, as Lambda gives each invocation in _X_AMZN_TRACE_ID and the Runtime
    # API's Lambda-Runtime-Trace-Id: a root with the time in hex, a parent, not sampled.
    def trace_id
      "Root=1-#{Time.now.to_i.to_s(16)}-#{SecureRandom.hex(12)};Parent=#{SecureRandom.hex(8)};Sampled=0"
    end
  end
end
