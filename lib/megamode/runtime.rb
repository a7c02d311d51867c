# frozen_string_literal: true

require_relative "../megamode"

module Megamode
  # The second way to run on Lambda, beside the Ruby handler (which stays the default): megamode's
  # core polls Lambda's Runtime API itself, over a kept-alive connection, and handles each HTTP
  # event entirely in Rust with the GVL released; Ruby runs nothing per request. It removes the
  # Ruby runtime client's own cost per invocation. Turned on in a package by the exec wrapper
  # `megamode build` writes (AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime).
  module Runtime
    # Serves invocations until interrupted. Boot errors are reported to Lambda as init errors.
    def self.start(address: ENV.fetch("AWS_LAMBDA_RUNTIME_API", nil))
      if address.nil? || address.empty?
        raise ConfigError, "AWS_LAMBDA_RUNTIME_API is not set: Megamode::Runtime.start runs inside Lambda " \
                           "(or against a Runtime API emulator), not on its own"
      end

      Megamode.run_runtime(address)
    end
  end
end
