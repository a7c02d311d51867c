# frozen_string_literal: true

require "securerandom"
require_relative "../local"

module Megamode::Local
  # A Lambda context object for local runs: the same methods as the Ruby runtime's, with a remaining
  # time that counts down from the invocation's start.
  class Context
    FUNCTION_NAME = "megamode-local"

    attr_reader :aws_request_id, :function_name, :function_version, :memory_limit_in_mb,
                :invoked_function_arn, :log_group_name, :log_stream_name

    def initialize(timeout:, request_id: SecureRandom.uuid, memory_mb: 1024)
      @aws_request_id = request_id
      @deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      @function_name = ENV.fetch("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
      @function_version = "$LATEST"
      @memory_limit_in_mb = memory_mb.to_s
      @invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:#{@function_name}"
      @log_group_name = "/aws/lambda/#{@function_name}"
      @log_stream_name = "#{Time.now.utc.strftime("%Y/%m/%d")}/[$LATEST]#{SecureRandom.hex(16)}"
    end

    # An X-Ray trace header as Lambda sets it in _X_AMZN_TRACE_ID: a root with the time in hex.
    def self.trace_id
      "Root=1-#{Time.now.to_i.to_s(16)}-#{SecureRandom.hex(12)};Parent=#{SecureRandom.hex(8)};Sampled=0"
    end

    # Whole milliseconds, never below zero; infinite for a timeout beyond what a Float holds in ms.
    def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName -- Lambda's name
      ms = (@deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)) * 1000
      ms.infinite? ? ms : ms.floor.clamp(0, nil)
    end
  end
end
