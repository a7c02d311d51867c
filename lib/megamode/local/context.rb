# frozen_string_literal: true

require "securerandom"
require_relative "../local"
require_relative "identity"

module Megamode::Local
  # A Lambda context object for local runs: the same methods as the Ruby runtime's, with a remaining
  # time that counts down from the invocation's start. Like the Ruby runtime's, it takes the
  # function's name, version, memory and log group and stream from Lambda's environment variables
  # (set for a package by LambdaEnvironment), and falls back on the local Identity.
  class Context
    attr_reader :aws_request_id, :function_name, :function_version, :memory_limit_in_mb,
                :invoked_function_arn, :log_group_name, :log_stream_name

    # `timeout`: the invocation's remaining time in seconds; `function_arn`: the one the Runtime API
    # named (default: the function's, in the local account and region).
    def initialize(timeout:, request_id: SecureRandom.uuid, function_arn: nil)
      @aws_request_id = request_id
      @deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      @function_name = ENV.fetch("AWS_LAMBDA_FUNCTION_NAME", Identity::FUNCTION_NAME)
      @function_version = ENV.fetch("AWS_LAMBDA_FUNCTION_VERSION", Identity::FUNCTION_VERSION)
      @memory_limit_in_mb = ENV.fetch("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", Identity::MEMORY_MB.to_s)
      @invoked_function_arn = function_arn || Identity.function_arn(@function_name)
      @log_group_name = ENV.fetch("AWS_LAMBDA_LOG_GROUP_NAME") { Identity.log_group(@function_name) }
      @log_stream_name = ENV.fetch("AWS_LAMBDA_LOG_STREAM_NAME") { Identity.log_stream }
    end

    # The context of an invocation the Runtime API announced with these headers (names in lower
    # case, as Net::HTTP gives them), as Lambda's Ruby runtime client makes it.
    def self.from_runtime_api(headers)
      remaining_ms = Integer(headers.fetch("lambda-runtime-deadline-ms")) - (Time.now.to_f * 1000)
      new(timeout: remaining_ms / 1000, request_id: headers.fetch("lambda-runtime-aws-request-id"),
          function_arn: headers["lambda-runtime-invoked-function-arn"])
    end

    # Whole milliseconds, never below zero; infinite for a timeout beyond what a Float holds in ms.
    def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName -- Lambda's name
      ms = (@deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)) * 1000
      ms.infinite? ? ms : ms.floor.clamp(0, nil)
    end
  end
end
