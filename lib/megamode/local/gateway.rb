# frozen_string_literal: true

require "base64"
require "securerandom"
require "uri"
require_relative "../local"
require_relative "identity"

module Megamode::Local
  # What an AWS service in front of Lambda does, for the local gateway (`megamode serve`): turns an
  # HTTP request into the event that service would send (HTTP API payload 2.0, REST API payload 1.0,
  # ALB, Function URL), and the handler's result into the HTTP response the service would give.
  class Gateway
    FORMATS = %w[v2 v1 alb url].freeze
    API_ID = "local1234"
    TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:#{Identity::REGION}:#{Identity::ACCOUNT}:" \
                       "targetgroup/megamode-local/0123456789abcdef".freeze
    # Bodies sent as text; anything else travels base64-encoded, as the services do for binary.
    TEXT = %r{\A(?:text/|application/(?:json|xml|javascript|x-www-form-urlencoded|graphql|[\w.+-]+\+(?:json|xml)))}i

    Request = Struct.new(:method, :target, :headers, :body, :peer, keyword_init: true)

    # `scheme` is what X-Forwarded-Proto says: the services always say https; the local gateway
    # serves plain HTTP, so it says http and the redirects the app builds stay reachable.
    def initialize(format: "v2", stage: nil, scheme: "https")
      raise ArgumentError, "format must be one of #{FORMATS.join(", ")}" unless FORMATS.include?(format)

      @format = format
      @scheme = scheme
      @stage = stage unless stage.to_s.empty? || stage == "$default"
    end

    # The event, or nil when API Gateway would answer 404 itself: with a stage, the API is only at
    # /<stage>/... (the client's URL carries the stage, as on the execute-api host).
    def event(request)
      request = forwarded(request)
      path, query = request.target.split("?", 2)
      path = "/" if path.to_s.empty?
      if @stage && %w[v1 v2].include?(@format)
        return nil unless path == "/#{@stage}" || path.start_with?("/#{@stage}/")

        path = path.delete_prefix("/#{@stage}") if @format == "v1"
        path = "/" if path.empty?
      end
      send("#{@format}_event", request, path, query.to_s)
    end

    def not_found
      [404, [["content-type", "application/json"]], %({"message":"Not Found"})]
    end

    # [status, [[name, value], ...], body] for the handler's result.
    def response(result)
      return error_response if !result.is_a?(Hash) || result.key?("errorType")

      status = Integer(result.fetch("statusCode", 200))
      headers = []
      (result["headers"] || {}).each { |name, value| headers << [name, value.to_s] }
      (result["multiValueHeaders"] || {}).each do |name, values|
        headers.reject! { |(n, _)| n.casecmp?(name) }
        Array(values).each { |v| headers << [name, v.to_s] }
      end
      Array(result["cookies"]).each { |cookie| headers << ["set-cookie", cookie] }
      body = result["body"].to_s
      body = Base64.decode64(body) if result["isBase64Encoded"]
      [status, headers, body]
    end

    private

    # The X-Forwarded-* headers the services add (a client's own are replaced).
    def forwarded(request)
      port = host(request)[/:(\d+)\z/, 1] || (@scheme == "https" ? "443" : "80")
      headers = request.headers.reject { |(name, _)| name.downcase.start_with?("x-forwarded-") }
      headers += [["X-Forwarded-For", request.peer], ["X-Forwarded-Proto", @scheme], ["X-Forwarded-Port", port]]
      Request.new(**request.to_h, headers: headers)
    end

    # API Gateway's answer when the function fails.
    def error_response
      [502, [["content-type", "application/json"]], %({"message":"Internal Server Error"})]
    end

    def host(request)
      header(request, "host") || "127.0.0.1"
    end

    def header(request, name)
      found = request.headers.find { |(n, _)| n.casecmp?(name) }
      found && found[1]
    end

    # name => all values, names lowercased (HTTP APIs, Function URLs, ALB) or as sent (REST).
    def grouped_headers(request, lowercase:)
      request.headers.each_with_object({}) do |(name, value), out|
        (out[lowercase ? name.downcase : name] ||= []) << value
      end
    end

    def body_fields(request)
      body = request.body.to_s
      return { "body" => nil, "isBase64Encoded" => false } if body.empty?

      if TEXT.match?(header(request, "content-type").to_s) && body.dup.force_encoding(Encoding::UTF_8).valid_encoding?
        { "body" => body.dup.force_encoding(Encoding::UTF_8), "isBase64Encoded" => false }
      else
        { "body" => Base64.strict_encode64(body), "isBase64Encoded" => true }
      end
    end

    # Query parameters as API Gateway decodes them: name => [values].
    def decoded_query(query)
      query.split("&").reject(&:empty?).each_with_object({}) do |pair, out|
        name, value = pair.split("=", 2)
        (out[URI.decode_www_form_component(name)] ||= []) << URI.decode_www_form_component(value.to_s)
      rescue ArgumentError
        (out[name] ||= []) << value.to_s
      end
    end

    def now
      Time.now.utc
    end

    def clf_time(time)
      time.strftime("%d/%b/%Y:%H:%M:%S +0000")
    end

    def epoch_ms(time)
      (time.to_r * 1000).to_i
    end

    # `path` is the client's, stage included: HTTP APIs pass it whole in rawPath.
    def v2_event(request, raw_path, query, domain: "#{API_ID}.execute-api.#{Identity::REGION}.amazonaws.com",
                 stage: @stage)
      time = now
      headers = grouped_headers(request, lowercase: true)
      cookies = headers.delete("cookie")&.flat_map { |c| c.split(/;\s*/) }
      query_params = decoded_query(query)
      {
        "version" => "2.0", "routeKey" => "$default", "rawPath" => raw_path, "rawQueryString" => query,
        "cookies" => cookies, "headers" => headers.transform_values { |v| v.join(",") },
        "queryStringParameters" => (query_params.transform_values { |v| v.join(",") } unless query_params.empty?),
        "requestContext" => {
          "accountId" => Identity::ACCOUNT, "apiId" => API_ID, "domainName" => domain,
          "domainPrefix" => domain.split(".").first,
          "http" => { "method" => request.method, "path" => raw_path, "protocol" => "HTTP/1.1",
                      "sourceIp" => request.peer, "userAgent" => header(request, "user-agent").to_s },
          "requestId" => SecureRandom.uuid, "routeKey" => "$default", "stage" => stage || "$default",
          "time" => clf_time(time), "timeEpoch" => epoch_ms(time)
        }
      }.merge(body_fields(request)).compact
    end

    # A Function URL sends the 2.0 shape from its own host, with no stage.
    def url_event(request, path, query)
      v2_event(request, path, query, domain: "#{API_ID}.lambda-url.#{Identity::REGION}.on.aws", stage: nil)
    end

    def v1_event(request, path, query)
      time = now
      multi = grouped_headers(request, lowercase: false)
      query_params = decoded_query(query)
      stage = @stage || "$default"
      {
        "resource" => "/{proxy+}", "path" => path, "httpMethod" => request.method,
        "headers" => multi.transform_values(&:last), "multiValueHeaders" => multi,
        "queryStringParameters" => (query_params.transform_values(&:last) unless query_params.empty?),
        "multiValueQueryStringParameters" => (query_params unless query_params.empty?),
        "pathParameters" => { "proxy" => path.delete_prefix("/") }, "stageVariables" => nil,
        "requestContext" => {
          "accountId" => Identity::ACCOUNT, "apiId" => API_ID, "domainName" => host(request), "domainPrefix" => API_ID,
          "httpMethod" => request.method, "path" => @stage ? "/#{@stage}#{path}" : path,
          "protocol" => "HTTP/1.1", "requestId" => SecureRandom.uuid, "requestTime" => clf_time(time),
          "requestTimeEpoch" => epoch_ms(time), "resourcePath" => "/{proxy+}", "stage" => stage,
          "identity" => { "sourceIp" => request.peer, "userAgent" => header(request, "user-agent") }
        }
      }.merge(body_fields(request))
    end

    # ALB passes the query undecoded and, in its default mode, one value per header.
    def alb_event(request, path, query)
      params = query.split("&").reject(&:empty?).to_h { |pair| pair.split("=", 2).then { |n, v| [n, v.to_s] } }
      {
        "requestContext" => { "elb" => { "targetGroupArn" => TARGET_GROUP_ARN } },
        "httpMethod" => request.method, "path" => path, "queryStringParameters" => params,
        "headers" => grouped_headers(request, lowercase: true).transform_values(&:last)
      }.merge(body_fields(request)).tap { |e| e["body"] ||= "" }
    end
  end
end
