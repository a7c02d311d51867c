# frozen_string_literal: true

require_relative "../local"

module Megamode::Local
  # The sample events that ship with the gem (lib/megamode/local/events), one per source megamode
  # serves: AWS's documented samples, as its developer guides show them (the spec fixtures are the
  # same files). `megamode events` lists them; `megamode invoke --event NAME` runs one by its name.
  module Samples
    DIR = File.expand_path("events", __dir__)

    # name => what it is.
    DESCRIPTIONS = {
      "rest" => "API Gateway REST API (payload 1.0): GET /my/path on stage dev",
      "http-v1" => "API Gateway HTTP API, payload 1.0: POST /my/path with a text body",
      "http-v2" => "API Gateway HTTP API, payload 2.0: GET /my/path with a query and cookies",
      "url" => "Lambda Function URL: POST /my/path with a text body",
      "alb" => "Application Load Balancer: GET /lambda",
      "alb-multi-value" => "Application Load Balancer with multi-value headers: GET /lambda",
      "sqs" => "Amazon SQS: one message (megamode POSTs it to the pass-through path, /events)",
      "prewarm" => "a prewarm: boots the app's server without sending it a request"
    }.freeze

    module_function

    def names
      DESCRIPTIONS.keys
    end

    # The file of the sample `name`, nil when there is none of that name.
    def path(name)
      File.join(DIR, "#{name}.json") if DESCRIPTIONS.key?(name)
    end
  end
end
