# frozen_string_literal: true

require_relative "../local"
require_relative "gateway"
require_relative "identity"

module Megamode::Local
  # An HTTP request given on the command line (`megamode invoke --get /notes`), made into the event
  # the chosen service would send, by the same Gateway as `megamode serve`: as if a client at
  # 127.0.0.1 had sent it to that service's own host over HTTPS.
  class RequestEvent
    METHODS = %w[GET POST PUT PATCH DELETE HEAD OPTIONS].freeze

    # The host a client reaches each service at (the Host header the event carries).
    HOSTS = {
      "v2" => "#{Gateway::API_ID}.execute-api.#{Identity::REGION}.amazonaws.com",
      "v1" => "#{Gateway::API_ID}.execute-api.#{Identity::REGION}.amazonaws.com",
      "url" => "#{Gateway::API_ID}.lambda-url.#{Identity::REGION}.on.aws",
      "alb" => "megamode-local-1234567890.#{Identity::REGION}.elb.amazonaws.com"
    }.freeze

    # What the request line, the headers or the body cannot be; the message says why.
    class Invalid < StandardError; end

    attr_reader :method, :target, :headers, :body

    # `target`: the path as the client's URL has it, with the query (`/dev/notes?page=2` on stage dev).
    def initialize(method, target)
      raise Invalid, "--#{method.downcase} takes a path that starts with /, got #{target.inspect}" unless target.start_with?("/")

      @method = method
      @target = target
      @headers = []
      @body = nil
    end

    # "Name: value", as curl's --header takes it.
    def add_header(line)
      name, value = line.split(":", 2)
      unless value && name.match?(/\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\z/)
        raise Invalid, "--header takes 'Name: value', got #{line.inspect}"
      end

      @headers << [name, value.strip]
    end

    def data=(body)
      raise Invalid, "give one --data per request (#{label} has two)" if @body

      @body = body
    end

    def label
      "#{@method} #{@target}"
    end

    # The event for `gateway` (a Gateway of `format` and `stage`), nil when API Gateway would answer
    # 404 itself (a stage the path does not start with).
    def event(gateway, format)
      headers = @headers.dup
      headers.unshift(["Host", HOSTS.fetch(format)]) unless header?("host")
      if @body
        # curl's --data sends a form unless told otherwise.
        headers << ["Content-Type", "application/x-www-form-urlencoded"] unless header?("content-type")
        headers << ["Content-Length", @body.bytesize.to_s] unless header?("content-length")
      end
      gateway.event(Gateway::Request.new(method: @method, target: @target, headers: headers, body: @body,
                                         peer: "127.0.0.1"))
    end

    private

    def header?(name)
      @headers.any? { |(n, _)| n.casecmp?(name) }
    end
  end
end
