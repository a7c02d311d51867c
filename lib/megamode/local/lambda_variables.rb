# frozen_string_literal: true

require_relative "../local"

module Megamode::Local
  # The names of every environment variable Lambda gives a Ruby function's process, and no other:
  # what a package may find set where it runs without the function's configuration setting it.
  # The one list of them: the Lambda stand-in's run flavour (bin/lambda-root) is checked against it
  # (spec/end_to_end/lambda_stand_in_spec.rb), and LambdaEnvironment sets those a local run needs.
  #
  # Sources: the Lambda Developer Guide, "Defined runtime environment variables"
  # (docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime:
  # the reserved ones, then LANG, PATH, LD_LIBRARY_PATH, the runtime's GEM_PATH/RUBYLIB, and the
  # X-Ray ones), and the ENV lines of the ruby3.x base images' Dockerfiles
  # (github.com/aws/aws-lambda-base-images). AWS_LAMBDA_EXEC_WRAPPER is the function's own setting
  # (megamode's template sets it for the native loop); AWS_LAMBDA_RUNTIME_API is set for the
  # runtime client.
  LAMBDA_VARIABLES = %w[
    _HANDLER _X_AMZN_TRACE_ID AWS_DEFAULT_REGION AWS_REGION AWS_EXECUTION_ENV
    AWS_LAMBDA_FUNCTION_NAME AWS_LAMBDA_FUNCTION_MEMORY_SIZE AWS_LAMBDA_FUNCTION_VERSION
    AWS_LAMBDA_INITIALIZATION_TYPE AWS_LAMBDA_LOG_GROUP_NAME AWS_LAMBDA_LOG_STREAM_NAME
    AWS_ACCESS_KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
    AWS_LAMBDA_RUNTIME_API AWS_LAMBDA_EXEC_WRAPPER LAMBDA_TASK_ROOT LAMBDA_RUNTIME_DIR
    AWS_XRAY_CONTEXT_MISSING AWS_XRAY_DAEMON_ADDRESS _AWS_XRAY_DAEMON_ADDRESS _AWS_XRAY_DAEMON_PORT
    AWS_LAMBDA_LOG_FORMAT AWS_LAMBDA_LOG_LEVEL
    TZ LANG PATH LD_LIBRARY_PATH GEM_PATH RUBYLIB
  ].freeze
end
