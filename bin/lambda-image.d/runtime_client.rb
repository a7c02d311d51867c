# frozen_string_literal: true

# The runtime client of megamode's stand-in for Lambda's Ruby base image (bin/lambda-image), started
# by /var/runtime/bootstrap. Written for the stand-in from Lambda's documented Runtime API
# (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), not taken from AWS's client: it
# loads the handler _HANDLER names from LAMBDA_TASK_ROOT, reports a failure to load it to
# /runtime/init/error and stops, then takes one invocation at a time from /runtime/invocation/next,
# calls the handler with the event and a context, and posts what it returns to .../response, or what
# it raised, in Lambda's error shape, to .../error. What AWS's client does beyond that (response
# streaming, structured JSON logs, the X-Ray SDK hooks) the stand-in does not.
require "json"
require "net/http"

module LambdaStandIn
  API = "/2018-06-01/runtime"

  # What a Ruby handler gets as `context:`: the methods of the context Lambda's Ruby runtime gives.
  class Context
    attr_reader :aws_request_id, :invoked_function_arn, :log_group_name, :log_stream_name, :function_name,
                :memory_limit_in_mb, :function_version, :identity, :client_context, :deadline_ms

    def initialize(headers)
      @aws_request_id = headers.fetch("lambda-runtime-aws-request-id")
      @deadline_ms = Integer(headers.fetch("lambda-runtime-deadline-ms"))
      @invoked_function_arn = headers["lambda-runtime-invoked-function-arn"]
      @identity = json_header(headers["lambda-runtime-cognito-identity"])
      @client_context = json_header(headers["lambda-runtime-client-context"])
      @function_name = ENV.fetch("AWS_LAMBDA_FUNCTION_NAME", nil)
      @function_version = ENV.fetch("AWS_LAMBDA_FUNCTION_VERSION", nil)
      @memory_limit_in_mb = ENV.fetch("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", nil)
      @log_group_name = ENV.fetch("AWS_LAMBDA_LOG_GROUP_NAME", nil)
      @log_stream_name = ENV.fetch("AWS_LAMBDA_LOG_STREAM_NAME", nil)
    end

    def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName -- Lambda's name
      [deadline_ms - Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond), 0].max
    end

    private

    def json_header(value)
      value && !value.empty? ? JSON.parse(value) : nil
    end
  end

  class << self
    def run
      $stdout.sync = true
      $stderr.sync = true
      @host, port = ENV.fetch("AWS_LAMBDA_RUNTIME_API").split(":", 2)
      @port = Integer(port || 80)
      handler = begin
        load_handler(ENV.fetch("_HANDLER"), ENV.fetch("LAMBDA_TASK_ROOT", "/var/task"))
      rescue ScriptError, StandardError => e
        report(e, "init/error")
        exit 1
      end
      loop { invoke(handler) }
    end

    # "file.method" (a method defined at the top level of file.rb) or "file.Module::Class.method".
    def load_handler(name, root)
      file, callable = name.split(".", 2)
      raise ArgumentError, "the handler #{name.inspect} is not FILE.METHOD or FILE.CLASS.METHOD" if callable.to_s.empty?

      require File.join(root, file)
      receiver_name, _, method = callable.rpartition(".")
      receiver = receiver_name.empty? ? TOPLEVEL_BINDING.receiver : Object.const_get(receiver_name)
      raise NameError, "#{name}: #{receiver_name.empty? ? file : receiver_name} has no method #{method}" unless
        receiver.respond_to?(method, true)

      ->(event, context) { receiver.send(method, event: event, context: context) }
    end

    def invoke(handler)
      response = request(Net::HTTP::Get.new("#{API}/invocation/next"))
      headers = response.each_header.to_h
      context = Context.new(headers)
      ENV["_X_AMZN_TRACE_ID"] = headers["lambda-runtime-trace-id"]
      echo = { "Lambda-Runtime-Invocation-Id" => headers["lambda-runtime-invocation-id"] }.compact
      begin
        body = JSON.generate(handler.call(JSON.parse(response.body), context))
      rescue ScriptError, StandardError => e
        return report(e, "invocation/#{context.aws_request_id}/error", echo)
      end
      post("invocation/#{context.aws_request_id}/response", body, echo)
    end

    # An error, in Lambda's shape, to the Runtime API and to the log.
    def report(error, path, headers = {})
      $stderr.puts "#{error.class}: #{error.message}", *error.backtrace.to_a.map { |line| "\t#{line}" }
      shape = { errorMessage: error.message, errorType: error.class.name, stackTrace: error.backtrace.to_a }
      post(path, JSON.generate(shape), headers.merge("Lambda-Runtime-Function-Error-Type" => error.class.name))
    end

    def post(path, body, headers)
      request(Net::HTTP::Post.new("#{API}/#{path}", { "Content-Type" => "application/json" }.merge(headers)), body)
    end

    # One connection per request, as a runtime frozen between invocations cannot trust an idle one.
    def request(req, body = nil)
      Net::HTTP.start(@host, @port, read_timeout: nil) { |http| http.request(req, body) }
    end
  end
end

LambdaStandIn.run
