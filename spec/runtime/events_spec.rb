# frozen_string_literal: true

require "digest"
require "zlib"

# Event translation end to end: each fixture in spec/fixtures/events (AWS's documented event shapes,
# one per source plus the edge cases) goes through Megamode.handler to a real puma serving the echo
# app (spec/fixtures/apps/echo), which answers what it saw; its /respond path answers what the
# query asks for, so the way each source's response is shaped can be checked too.
RSpec.describe "event translation through Megamode.handler" do
  before { Megamode.configure { |c| c.app_root = fixture_app("echo") } }

  # Lambda's trace id for each invocation, in the context, and in ENV as Lambda's Ruby runtime sets
  # it. The fixtures' own X-Amzn-Trace-Id headers are a client's, and never reach the app.
  lambda_trace = "Root=1-67a1b2c3-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"
  let(:ctx) { context(trace_id: lambda_trace) }

  around do |example|
    saved = ENV.fetch("_X_AMZN_TRACE_ID", nil)
    ENV["_X_AMZN_TRACE_ID"] = lambda_trace
    example.run
  ensure
    ENV["_X_AMZN_TRACE_ID"] = saved
  end

  # The echo app's text body, as /respond sends it by default.
  echo_text = "Hello from echo: grüße, ✓\n"
  rest_keys = %w[statusCode multiValueHeaders body isBase64Encoded]
  v2_keys = %w[statusCode headers cookies body isBase64Encoded]

  # The handler's result; the app's log lines (puma's boot banner, "echo: GET /path") are kept out of
  # the test output.
  def handle(event, context: ctx)
    result = nil
    capture_stdout_fd { result = Megamode.handler(event: event, context: context) }
    result
  end

  # What the echo app saw; its answer is JSON, so it must come back as text, not base64.
  def seen(result)
    expect(result["statusCode"]).to eq(200)
    expect(result["isBase64Encoded"]).to be(false)
    JSON.parse(result.fetch("body"))
  end

  # The fixture event, the handler's result and what the app saw.
  def echo(name)
    event = fixture_event(name)
    @called_at_ms = (Time.now.to_f * 1000).floor
    result = handle(event)
    @returned_at_ms = (Time.now.to_f * 1000).ceil
    [event, result, seen(result)]
  end

  def body_bytes(seen)
    seen.fetch("body_base64").unpack1("m0")
  end

  def decoded(result)
    expect(result["isBase64Encoded"]).to be(true)
    result.fetch("body").unpack1("m0")
  end

  # The headers megamode sets on every request, whatever the source.
  def expect_megamode_headers(seen, event)
    headers = seen["headers"]
    expect(headers["HTTP_X_REQUEST_ID"]).to eq(ctx.aws_request_id)
    expect(headers["HTTP_X_REQUEST_START"]).to match(/\At=\d{13}\z/)
    # Stamped during this very call (the epoch milliseconds), not copied from the event.
    expect(headers["HTTP_X_REQUEST_START"][2..].to_i).to be_between(@called_at_ms, @returned_at_ms)
    expect(JSON.parse(headers["HTTP_X_AMZN_REQUEST_CONTEXT"])).to eq(event["requestContext"])
    expect(JSON.parse(headers["HTTP_X_AMZN_LAMBDA_CONTEXT"])).to include("request_id" => ctx.aws_request_id)
    expect(headers["HTTP_X_AMZN_TRACE_ID"]).to eq(ctx.trace_id)
  end

  describe "what the app sees, one fixture per source" do
    it "REST API (rest_api.json): path without the stage, the stage as X-Forwarded-Prefix, headers from the event" do
      event, result, seen = echo("rest_api")

      expect(result.keys).to match_array(rest_keys)
      expect(result["multiValueHeaders"]["content-type"]).to eq(["application/json; charset=utf-8"])
      expect(seen).to include("method" => "GET", "script_name" => "", "path_info" => "/my/path",
                              "query_string" => "", "request_uri" => "/my/path", "scheme" => "https",
                              "server_name" => "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
                              "server_port" => "443")
      expect(seen["headers"]).to include(
        "HTTP_X_FORWARDED_PREFIX" => "/dev",
        "HTTP_HOST" => "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
        "HTTP_ACCEPT" => "*/*",
        "HTTP_USER_AGENT" => "curl/7.64.1",
        "HTTP_X_FORWARDED_FOR" => "205.255.255.176",
        "HTTP_X_FORWARDED_PROTO" => "https",
        "HTTP_X_FORWARDED_PORT" => "443",
        # Lambda's, not the one in the event's headers.
        "HTTP_X_AMZN_TRACE_ID" => lambda_trace
      )
      expect(seen["headers"]).not_to include("CONTENT_LENGTH", "CONTENT_TYPE")
      expect(body_bytes(seen)).to eq("")
      expect_megamode_headers(seen, event)
    end

    it "REST API for the bare stage URL (rest_api_stage_root.json): path /, all of /dev the prefix" do
      event, _result, seen = echo("rest_api_stage_root")

      expect(seen).to include("path_info" => "/", "request_uri" => "/", "script_name" => "")
      expect(seen["headers"]).to include("HTTP_X_FORWARDED_PREFIX" => "/dev")
      expect_megamode_headers(seen, event)
    end

    it "HTTP API payload 1.0 (http_api_v1.json): the named stage leaves path, the query is rebuilt, the body arrives" do
      event, result, seen = echo("http_api_v1")

      expect(result.keys).to match_array(rest_keys)
      expect(seen).to include("method" => "POST", "script_name" => "", "path_info" => "/my/path",
                              "query_string" => "parameter1=value1&parameter1=value2&parameter2=value",
                              "request_uri" => "/my/path?parameter1=value1&parameter1=value2&parameter2=value")
      expect(seen["params"]).to eq("parameter1" => %w[value1 value2], "parameter2" => "value")
      expect(body_bytes(seen)).to eq("Hello from Lambda!")
      expect(seen["headers"]).to include(
        "HTTP_X_FORWARDED_PREFIX" => "/dev",
        "CONTENT_TYPE" => "text/plain; charset=utf-8",
        "CONTENT_LENGTH" => "18",
        # Repeated in multiValueHeaders: both values arrive (puma joins repeated headers with ", ").
        "HTTP_HEADER2" => "value1, value2",
        "HTTP_HOST" => "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
        "HTTP_X_FORWARDED_FOR" => "205.255.255.176"
      )
      expect_megamode_headers(seen, event)
    end

    it "HTTP API payload 2.0, $default stage (http_api_v2.json): no prefix, rawQueryString as sent, cookies joined" do
      event, result, seen = echo("http_api_v2")

      expect(result.keys).to match_array(v2_keys)
      expect(result["headers"]["content-type"]).to eq("application/json; charset=utf-8")
      expect(result["cookies"]).to eq([])
      expect(seen).to include("method" => "GET", "script_name" => "", "path_info" => "/my/path",
                              "query_string" => "parameter1=value1&parameter1=value2&parameter2=value")
      expect(seen["headers"]).to include("HTTP_COOKIE" => "cookie1=value1; cookie2=value2",
                                         "HTTP_USER_AGENT" => "curl/7.64.1",
                                         "HTTP_X_AMZN_TRACE_ID" => lambda_trace)
      # A GET without a body has no Content-Length, whatever the event's headers said.
      expect(seen["headers"]).not_to include("HTTP_X_FORWARDED_PREFIX", "CONTENT_LENGTH")
      expect_megamode_headers(seen, event)
    end

    it "HTTP API payload 2.0, named stage (http_api_v2_stage.json): the stage segment becomes the prefix, cookies array becomes Cookie" do
      event, result, seen = echo("http_api_v2_stage")

      expect(result.keys).to match_array(v2_keys)
      expect(seen).to include("method" => "POST", "script_name" => "", "path_info" => "/my/path",
                              "request_uri" => "/my/path?parameter1=value1&parameter1=value2&parameter2=value")
      expect(body_bytes(seen).force_encoding(Encoding::UTF_8)).to eq('{"name":"Ada","city":"Zürich"}')
      expect(seen["headers"]).to include(
        "HTTP_X_FORWARDED_PREFIX" => "/dev",
        "HTTP_COOKIE" => "session=38afes7a8; theme=dark",
        "CONTENT_TYPE" => "application/json",
        "CONTENT_LENGTH" => "31",
        "HTTP_HEADER2" => "value1,value2"
      )
      expect_megamode_headers(seen, event)
    end

    it "Function URL (function_url.json): the 2.0 shape without any prefix, the body and cookies arrive" do
      event, result, seen = echo("function_url")

      expect(result.keys).to match_array(v2_keys)
      expect(seen).to include("method" => "POST", "script_name" => "", "path_info" => "/my/path",
                              "query_string" => "parameter1=value1&parameter1=value2&parameter2=value",
                              "server_name" => "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6.lambda-url.us-west-2.on.aws")
      expect(body_bytes(seen)).to eq("Hello from client!")
      expect(seen["headers"]).to include(
        "HTTP_COOKIE" => "cookie1=value1; cookie2=value2",
        "CONTENT_TYPE" => "text/plain",
        "CONTENT_LENGTH" => "18",
        "HTTP_HEADER1" => "value1",
        "HTTP_X_FORWARDED_FOR" => "123.123.123.123"
      )
      expect(seen["headers"]).not_to include("HTTP_X_FORWARDED_PREFIX")
      expect_megamode_headers(seen, event)
    end

    it "ALB, multi-value headers off (alb.json): single-value response, query values passed undecoded, hop-by-hop dropped" do
      event, result, seen = echo("alb")

      expect(result.keys).to match_array(%w[statusCode statusDescription headers body isBase64Encoded])
      expect(result["statusDescription"]).to eq("200 OK")
      expect(result["headers"]["content-type"]).to eq("application/json; charset=utf-8")
      expect(seen).to include("method" => "GET", "script_name" => "", "path_info" => "/lambda",
                              "query_string" => "query=1234ABCD&next=%2Fhome%3Fa%3D1",
                              "scheme" => "http", "server_port" => "80")
      # ALB does not decode: %2F stays %2F (not %252F), and the app decodes it once.
      expect(seen["params"]).to eq("query" => "1234ABCD", "next" => "/home?a=1")
      expect(seen["headers"]).to include(
        "HTTP_HOST" => "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
        "HTTP_X_FORWARDED_FOR" => "72.12.164.125",
        "HTTP_X_FORWARDED_PROTO" => "http",
        "HTTP_X_FORWARDED_PORT" => "80",
        "HTTP_ACCEPT_ENCODING" => "gzip",
        "HTTP_UPGRADE_INSECURE_REQUESTS" => "1",
        "HTTP_X_AMZN_TRACE_ID" => lambda_trace
      )
      expect(seen["headers"]).not_to include("HTTP_CONNECTION", "HTTP_X_FORWARDED_PREFIX")
      expect(body_bytes(seen)).to eq("")
      expect_megamode_headers(seen, event)
    end

    it "ALB, multi-value headers on (alb_multi_value.json): every value of a repeated header and query key" do
      event, result, seen = echo("alb_multi_value")

      expect(result.keys).to match_array(%w[statusCode statusDescription multiValueHeaders body isBase64Encoded])
      expect(result["multiValueHeaders"]["content-type"]).to eq(["application/json; charset=utf-8"])
      expect(seen).to include("path_info" => "/lambda", "query_string" => "myKey=val1&myKey=val2&myOtherKey=val3")
      expect(seen["headers"]).to include(
        "HTTP_COOKIE" => "name1=value1; name2=value2",
        "HTTP_X_CUSTOM" => "first, second",
        "HTTP_ACCEPT_LANGUAGE" => "en-US,en;q=0.8",
        "HTTP_HOST" => "lambda-846800462-us-east-2.elb.amazonaws.com"
      )
      expect_megamode_headers(seen, event)
    end
  end

  describe "edge cases of the request" do
    it "HTTP API 2.0 query (query_http_api_v2.json): rawQueryString byte for byte, a decoded path re-encoded" do
      event, _result, seen = echo("query_http_api_v2")
      raw = "tag=a&tag=b&empty=&flag&q=a+b&plus=a%2Bb&name=J%C3%BCrgen&city=K%C3%B8benhavn"

      expect(seen).to include("query_string" => raw, "path_info" => "/search/caf%C3%A9",
                              "request_uri" => "/search/caf%C3%A9?#{raw}")
      expect(seen["params"]).to eq("tag" => %w[a b], "empty" => "", "flag" => nil, "q" => "a b",
                                   "plus" => "a+b", "name" => "Jürgen", "city" => "København")
      # The requestContext, "/search/café" included, arrives whole in X-Amzn-Request-Context.
      expect_megamode_headers(seen, event)
    end

    it "REST API query (query_rest_api.json): decoded parameters re-encoded, + and space kept apart, the path as sent" do
      _event, _result, seen = echo("query_rest_api")
      query = "tag=a&tag=b&empty=&flag=&q=a%20b&plus=a%2Bb&name=J%C3%BCrgen&city=K%C3%B8benhavn"

      expect(seen).to include("query_string" => query, "path_info" => "/search/caf%C3%A9",
                              "request_uri" => "/search/caf%C3%A9?#{query}")
      expect(seen["headers"]).to include("HTTP_X_FORWARDED_PREFIX" => "/dev")
      expect(seen["params"]).to eq("tag" => %w[a b], "empty" => "", "flag" => "", "q" => "a b",
                                   "plus" => "a+b", "name" => "Jürgen", "city" => "København")
    end

    it "ALB query (query_alb.json): undecoded parameters passed as received, never encoded twice" do
      _event, _result, seen = echo("query_alb")
      query = "tag=a&tag=b&empty=&flag=&q=a+b&plus=a%2Bb&name=J%C3%BCrgen&city=K%C3%B8benhavn"

      expect(seen).to include("query_string" => query, "path_info" => "/search/caf%C3%A9")
      expect(seen["params"]).to eq("tag" => %w[a b], "empty" => "", "flag" => "", "q" => "a b",
                                   "plus" => "a+b", "name" => "Jürgen", "city" => "København")
    end

    it "a base64 body (binary_upload_http_api_v2.json): the multipart upload reaches the app byte for byte" do
      event, _result, seen = echo("binary_upload_http_api_v2")
      sent = event["body"].unpack1("m0")
      png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="

      expect(body_bytes(seen)).to eq(sent)
      expect(sent.bytesize).to eq(323)
      expect(seen["headers"]).to include("CONTENT_LENGTH" => "323",
                                         "CONTENT_TYPE" => "multipart/form-data; boundary=----megamode7MA4YWxkTrZu0gW")
      expect(seen["form"]).to eq("title" => "tiny pixel ✓",
                                 "file" => { "filename" => "pixel.png", "type" => "image/png", "base64" => png })
    end

    it "headers and multiValueHeaders merge (multi_value_headers_rest_api.json): the list wins, single-only names kept, Cookies joined" do
      _event, _result, seen = echo("multi_value_headers_rest_api")

      expect(seen["headers"]).to include("HTTP_X_CUSTOM" => "one, two", "HTTP_X_SINGLE_ONLY" => "only in headers",
                                         "HTTP_COOKIE" => "a=1; b=2", "HTTP_ACCEPT" => "*/*")
    end

    it "a client's X-Forwarded-Prefix and other owned headers are replaced (forged_prefix_rest_api.json)" do
      event, _result, seen = echo("forged_prefix_rest_api")

      expect(seen["headers"]["HTTP_X_FORWARDED_PREFIX"]).to eq("/dev")
      expect(seen["headers"]["HTTP_X_REQUEST_START"]).not_to eq("t=0")
      expect_megamode_headers(seen, event)
    end

    it "a client's X-Forwarded-Prefix is removed where there is no prefix (forged_prefix_function_url.json)" do
      _event, _result, seen = echo("forged_prefix_function_url")

      expect(seen["path_info"]).to eq("/my/path")
      expect(seen["headers"]).not_to include("HTTP_X_FORWARDED_PREFIX")
      expect(seen["headers"]).to include("HTTP_HEADER1" => "value1")
    end

    # A Rack server reads X_Forwarded_Prefix as X-Forwarded-Prefix: without a stage, the client's
    # would become the app's SCRIPT_NAME, and every redirect and link would point at /evil/...
    it "a client's owned headers spelled with _ never reach the app behind Megamode::Rack::Prefix, whatever the source" do
      Megamode.configure { |c| c.app_root = fixture_app("prefixed") }
      untraced = context # no trace id of Lambda's either
      saved_rubylib = ENV.fetch("RUBYLIB", nil)
      ENV.update(ForgedHeaders::SERVER_ENV) # for the server this process starts
      { "forged_prefix_function_url" => "", "alb" => "", "alb_multi_value" => "",
        "http_api_v2" => "", "http_api_v2_stage" => "/dev", "rest_api" => "/dev" }.each do |name, prefix|
        event = fixture_event(name)
        ForgedHeaders::HEADERS.each do |header, value|
          event["headers"][header] = value if event["headers"]
          event["multiValueHeaders"][header] = [value] if event["multiValueHeaders"]
        end
        result = handle(event, context: untraced)
        seen = JSON.parse(result.fetch("body"))

        expect(result["statusCode"]).to eq(302), name
        location = result["headers"]&.fetch("location") || result["multiValueHeaders"]["location"].first
        expect([seen["script_name"], location]).to eq([prefix, "#{prefix}/signed-in"]), name
        expect(ForgedHeaders.leaked(seen["headers"])).to eq([]), name
        expect(seen["headers"]).not_to include("HTTP_X_AMZN_TRACE_ID", "HTTP_X_AMZ_TENANT_ID")
      end
    ensure
      ENV["RUBYLIB"] = saved_rubylib
    end

    it "stage dev does not touch /devices, HTTP API 2.0 (stage_lookalike_http_api_v2.json)" do
      _event, _result, seen = echo("stage_lookalike_http_api_v2")

      expect(seen).to include("path_info" => "/devices", "request_uri" => "/devices", "script_name" => "",
                              "server_name" => "api.example.com")
      expect(seen["headers"]).not_to include("HTTP_X_FORWARDED_PREFIX")
    end

    it "stage dev does not touch /devices, HTTP API 1.0 (stage_lookalike_http_api_v1.json)" do
      _event, _result, seen = echo("stage_lookalike_http_api_v1")

      expect(seen).to include("path_info" => "/devices", "request_uri" => "/devices", "script_name" => "")
      expect(seen["headers"]).not_to include("HTTP_X_FORWARDED_PREFIX")
    end
  end

  # Issue 15: what megamode fills in, refuses with its own answer, or caps, so that the app's
  # server never sees a request it would fail on obscurely.
  describe "what megamode fills in, refuses or caps" do
    # The handler's result and megamode's log lines (with the app's).
    def handle_logged(event)
      result = nil
      log = capture_stdout_fd { result = Megamode.handler(event: event, context: ctx) }
      [result, log]
    end

    # megamode's own answer: the status, and the message of its JSON body.
    def refused(result, status, reason)
      expect(result["statusCode"]).to eq(status)
      body = JSON.parse(result["body"])
      expect(body["error"]).to eq(reason)
      body["message"]
    end

    it "an ALB health check (alb_health_check.json, only a User-Agent) reaches the app with Host: localhost" do
      _event, _result, seen = echo("alb_health_check")

      expect(seen["headers"]).to include("HTTP_HOST" => "localhost", "HTTP_USER_AGENT" => "ELB-HealthChecker/2.0")
      expect(seen["server_name"]).to eq("localhost")

      # Without a Host header, the domain name is the Host.
      event = fixture_event("http_api_v2")
      event["headers"].delete("host")
      expect(seen(handle(event))["headers"]["HTTP_HOST"]).to eq(event["requestContext"]["domainName"])
    end

    it "a client's X-Amzn-Trace-Id never reaches the app: Lambda's replaces it, and without one it is dropped" do
      event = fixture_event("alb")
      event["headers"]["x-amzn-trace-id"] = "Root=1-00000000-forgedforgedforgedforged"

      expect(seen(handle(event))["headers"]["HTTP_X_AMZN_TRACE_ID"]).to eq(lambda_trace)
      # The trace id is the context's, whatever ENV holds.
      expect(seen(handle(event, context: context))["headers"]).not_to include("HTTP_X_AMZN_TRACE_ID")

      # Lambda's own context has no trace_id: its runtime's _X_AMZN_TRACE_ID is read instead.
      lambdas_own = Struct.new(:aws_request_id, :get_remaining_time_in_millis).new("req-lambda", 30_000)
      expect(seen(handle(event, context: lambdas_own))["headers"]["HTTP_X_AMZN_TRACE_ID"]).to eq(lambda_trace)
      ENV.delete("_X_AMZN_TRACE_ID")
      expect(seen(handle(event, context: lambdas_own))["headers"]).not_to include("HTTP_X_AMZN_TRACE_ID")
    end

    it "a v2 cookie with CR/LF is megamode's 400, like such a header, and never reaches the app" do
      event = v2_event("/cookies")
      event["cookies"] = ["good=1", "bad=1\r\nX-Injected: 1"]
      result, log = handle_logged(event)

      expect(refused(result, 400, "Bad Request")).to include("cookies[1]")
      expect(log).to include("megamode: 400 Bad Request")
      expect(log).not_to include("echo: GET /cookies")
    end

    it "a field of the wrong type raises Megamode::EventError naming it" do
      event = v2_event("/")
      event["rawPath"] = 123
      expect { handle(event) }.to raise_error(Megamode::EventError, "rawPath must be a string, got 123")

      event = fixture_event("rest_api")
      event["multiValueHeaders"] = { "accept" => { "type" => "json" } }
      expect { handle(event) }
        .to raise_error(Megamode::EventError, 'multiValueHeaders["accept"] must be a string, got an object')
    end

    it "a URI past what puma reads is megamode's 414 naming the part; one at each limit reaches the app" do
      result, log = handle_logged(v2_event("/long", query: "q=#{"a" * 70_000}"))
      expect(refused(result, 414, "URI Too Long")).to include("query string is 70002 bytes")
      expect(log).to include("megamode: 414 URI Too Long")
      expect(log).not_to include("echo: GET /long")

      # Past puma's 10 KB for a query, but far from what a URI can hold.
      result = handle(v2_event("/", query: "q=#{"a" * 11_000}"))
      expect(refused(result, 414, "URI Too Long")).to include("query string is 11002 bytes")

      # At the limits, puma reads it: the path (8 KB), the query (10 KB), and both (12 KB).
      path = "/#{"p" * 8191}"
      expect(seen(handle(v2_event(path)))["path_info"]).to eq(path)
      query = "q=#{"q" * 10_238}"
      expect(seen(handle(v2_event("/", query: query)))["query_string"]).to eq(query)
      path = "/#{"p" * 4095}"
      query = "q=#{"q" * (12_288 - 4096 - 1 - 2)}"
      expect(seen(handle(v2_event(path, query: query)))["request_uri"].bytesize).to eq(12_288)
      expect(refused(handle(v2_event(path, query: "#{query}q")), 414, "URI Too Long")).to include("12289 bytes")
    end

    it "a header past what puma reads, alone or with the others, is megamode's 431 naming it" do
      event = v2_event("/big")
      event["headers"]["x-big"] = "b" * 100_000
      result, log = handle_logged(event)
      expect(refused(result, 431, "Request Header Fields Too Large")).to include("x-big is 100000 bytes")
      expect(log).to include("megamode: 431 Request Header Fields Too Large")
      expect(log).not_to include("echo: GET /big")

      # Each within puma's 80 KB, together past its 112 KB.
      event = v2_event("/big")
      event["headers"].update("x-part1" => "1" * 70_000, "x-part2" => "2" * 50_000)
      message = refused(handle(event), 431, "Request Header Fields Too Large")
      expect(message).to include("the largest is x-part1")

      # At puma's limit for one header, it reaches the app.
      event = v2_event("/big")
      event["headers"]["x-big"] = "b" * 81_920
      expect(seen(handle(event))["headers"]["HTTP_X_BIG"].bytesize).to eq(81_920)
    end

    it "a large authorizer context leaves X-Amzn-Request-Context without it, with a log line, and the request succeeds" do
      event = v2_event("/authorized")
      claims = (1..1500).to_h { |i| ["claim#{i}", "value #{i} #{"x" * 50}"] }
      event["requestContext"]["authorizer"] = { "jwt" => { "claims" => claims, "scopes" => ["read"] } }
      expect(JSON.generate(event["requestContext"]).bytesize).to be > 81_920
      result, log = handle_logged(event)

      context = JSON.parse(seen(result)["headers"].fetch("HTTP_X_AMZN_REQUEST_CONTEXT"))
      expect(context.except("authorizer")).to eq(event["requestContext"].except("authorizer"))
      expect(context["authorizer"].keys).to eq(["omitted_by_megamode"])
      expect(log).to include("megamode: X-Amzn-Request-Context: the authorizer is left out")
      expect(log).to include("echo: GET /authorized")
    end
  end

  # Response translation: each source's fixture, aimed at /respond with a query.
  describe "what comes back" do
    # The path each fixture's source sends for /respond (HTTP APIs keep a named stage in it), and the
    # requestContext.path of REST and HTTP 1.0.
    def respond_target(name)
      {
        "rest_api" => { path: "/respond", context_path: "/dev/respond" },
        "http_api_v1" => { path: "/dev/respond", context_path: "/dev/respond" },
        "http_api_v2_stage" => { path: "/dev/respond" },
        "function_url" => { path: "/respond" },
        "alb" => { path: "/respond" },
        "alb_multi_value" => { path: "/respond" }
      }.fetch(name)
    end

    # The fixture's event for `method` /respond?params, the query in the form that source sends it.
    def respond_event(name, params, method: "GET")
      event = fixture_event(name)
      target = respond_target(name)
      query = URI.encode_www_form(params)
      if event.key?("rawPath")
        event["rawPath"] = target[:path]
        event["rawQueryString"] = query
        event["requestContext"]["http"].update("method" => method, "path" => target[:path])
        event.delete("queryStringParameters")
        event["body"] = nil
        event["isBase64Encoded"] = false
      else
        alb = event["requestContext"].key?("elb")
        multi = URI.decode_www_form(query).group_by(&:first).transform_values { |pairs| pairs.map(&:last) }
        # ALB passes the values as the client encoded them; API Gateway decodes them.
        multi = multi.transform_values { |vs| vs.map { |v| URI.encode_www_form_component(v) } } if alb
        event["path"] = target[:path]
        event["httpMethod"] = method
        event["requestContext"].update("path" => target[:context_path], "httpMethod" => method) unless alb
        if alb && event.key?("multiValueHeaders")
          event["multiValueQueryStringParameters"] = multi
        else
          event["queryStringParameters"] = multi.transform_values(&:last)
          event["multiValueQueryStringParameters"] = multi unless alb
        end
        event["body"] = alb ? "" : nil
        event["isBase64Encoded"] = false
      end
      event
    end

    def respond(name, params, method: "GET")
      handle(respond_event(name, params, method: method))
    end

    # A header of the result, whichever map the source uses: the list of values.
    def header_values(result, name)
      if result.key?("multiValueHeaders")
        result["multiValueHeaders"][name]
      else
        result["headers"][name]&.then { |v| [v] }
      end
    end

    def expect_exact_body(result, bytes)
      body = decoded(result)
      expect(body).to eq(bytes.b)
      expect(Digest::SHA256.hexdigest(body)).to eq(header_values(result, "x-body-sha256").first)
    end

    shape = {
      "rest_api" => "REST API",
      "http_api_v1" => "HTTP API 1.0",
      "http_api_v2_stage" => "HTTP API 2.0",
      "function_url" => "Function URL",
      "alb" => "ALB (single-value)",
      "alb_multi_value" => "ALB (multi-value)"
    }
    cookie_params = { "status" => "201", "type" => "text/plain; charset=utf-8", "cookies" => "2", "repeat" => "2" }
    cookies = ["c1=v1; path=/", "c2=v2; path=/"]
    text_sha = Digest::SHA256.hexdigest(echo_text)

    it "REST API: status, every header value and every Set-Cookie in multiValueHeaders, and no cookies key" do
      result = respond("rest_api", cookie_params)

      expect(result.keys).to match_array(rest_keys)
      expect(result["statusCode"]).to eq(201)
      expect(result["multiValueHeaders"]).to include("content-type" => ["text/plain; charset=utf-8"],
                                                     "set-cookie" => cookies, "x-repeat" => %w[r1 r2],
                                                     "x-echo-method" => ["GET"])
      expect(result["body"]).to eq(echo_text)
      expect(result["isBase64Encoded"]).to be(false)
    end

    it "HTTP API 1.0: the REST shape" do
      result = respond("http_api_v1", cookie_params)

      expect(result.keys).to match_array(rest_keys)
      expect(result["statusCode"]).to eq(201)
      expect(result["multiValueHeaders"]).to include("set-cookie" => cookies, "x-repeat" => %w[r1 r2])
      expect(result["body"]).to eq(echo_text)
    end

    %w[http_api_v2_stage function_url].each do |name|
      it "#{shape[name]}: repeated headers comma-joined, every Set-Cookie in cookies and none in headers" do
        result = respond(name, cookie_params)

        expect(result.keys).to match_array(v2_keys)
        expect(result["statusCode"]).to eq(201)
        expect(result["cookies"]).to eq(cookies)
        expect(result["headers"]).to include("content-type" => "text/plain; charset=utf-8", "x-repeat" => "r1, r2",
                                             "x-echo-method" => "GET")
        expect(result["headers"].keys).not_to include("set-cookie")
        expect(result["body"]).to eq(echo_text)
        expect(result["isBase64Encoded"]).to be(false)
      end
    end

    it "ALB (single-value): statusDescription, headers only, the last Set-Cookie, repeated headers comma-joined" do
      result = respond("alb", cookie_params)

      expect(result.keys).to match_array(%w[statusCode statusDescription headers body isBase64Encoded])
      expect(result).to include("statusCode" => 201, "statusDescription" => "201 Created")
      expect(result["headers"]).to include("set-cookie" => "c2=v2; path=/", "x-repeat" => "r1, r2",
                                           "content-type" => "text/plain; charset=utf-8")
      expect(result["body"]).to eq(echo_text)
      expect(result["isBase64Encoded"]).to be(false)
    end

    it "ALB (multi-value): statusDescription and exactly the app's headers in multiValueHeaders" do
      result = respond("alb_multi_value", cookie_params)

      expect(result.keys).to match_array(%w[statusCode statusDescription multiValueHeaders body isBase64Encoded])
      expect(result).to include("statusCode" => 201, "statusDescription" => "201 Created")
      expect(result["multiValueHeaders"]).to eq(
        "content-type" => ["text/plain; charset=utf-8"],
        "set-cookie" => cookies,
        "x-repeat" => %w[r1 r2],
        "x-body-sha256" => [text_sha],
        "x-echo-method" => ["GET"],
        "content-length" => [echo_text.bytesize.to_s]
      )
      expect(result["body"]).to eq(echo_text)
    end

    shape.each do |name, label|
      it "#{label}: a binary body (every byte 0..255) as base64 that decodes to the exact bytes" do
        result = respond(name, { "body" => "bytes", "type" => "application/octet-stream" })

        expect(result["statusCode"]).to eq(200)
        expect_exact_body(result, (0..255).to_a.pack("C*"))
        expect(header_values(result, "content-type")).to eq(["application/octet-stream"])
      end

      it "#{label}: a HEAD request gets the headers and an empty, plain body" do
        result = respond(name, { "body" => "png", "type" => "image/png" }, method: "HEAD")

        expect(result["statusCode"]).to eq(200)
        expect(header_values(result, "x-echo-method")).to eq(["HEAD"])
        expect(header_values(result, "content-type")).to eq(["image/png"])
        expect(result["body"]).to eq("")
        expect(result["isBase64Encoded"]).to be(false)
      end
    end

    %w[rest_api http_api_v2_stage alb].each do |name|
      label = shape[name]

      it "#{label}: a PNG as base64" do
        result = respond(name, { "body" => "png", "type" => "image/png" })

        body = decoded(result)
        expect(body).to start_with("\x89PNG\r\n\x1a\n".b)
        expect(body).to end_with("IEND\xAE\x42\x60\x82".b)
        expect(Digest::SHA256.hexdigest(body)).to eq(header_values(result, "x-body-sha256").first)
      end

      it "#{label}: a gzip-encoded text body as base64, Content-Encoding kept" do
        result = respond(name, { "body" => "gzip", "type" => "text/plain; charset=utf-8" })

        body = decoded(result)
        expect(body[0, 2]).to eq("\x1f\x8b".b)
        expect(Zlib.gunzip(body).force_encoding(Encoding::UTF_8)).to eq(echo_text)
        expect(Digest::SHA256.hexdigest(body)).to eq(header_values(result, "x-body-sha256").first)
        expect(header_values(result, "content-encoding")).to eq(["gzip"])
      end

      it "#{label}: text that is not UTF-8 (ISO-8859-1) as base64" do
        result = respond(name, { "body" => "latin1", "type" => "text/plain; charset=iso-8859-1" })

        expect_exact_body(result, "caf\xE9".b)
      end

      it "#{label}: ASCII bytes with a binary type as base64, since the type decides" do
        result = respond(name, { "body" => "ascii", "type" => "application/octet-stream" })

        expect(result["body"]).to eq("cGxhaW4gYXNjaWk=")
        expect(result["isBase64Encoded"]).to be(true)
      end

      it "#{label}: UTF-8 text without a Content-Type as plain text" do
        result = respond(name, { "body" => "text" })

        expect(header_values(result, "content-type")).to be_nil
        expect(result["body"]).to eq(echo_text)
        expect(result["isBase64Encoded"]).to be(false)
      end

      it "#{label}: a 204 with an empty, plain body" do
        result = respond(name, { "status" => "204", "body" => "empty" })

        expect(result["statusCode"]).to eq(204)
        expect(result["statusDescription"]).to eq("204 No Content") if name == "alb"
        expect(result["body"]).to eq("")
        expect(result["isBase64Encoded"]).to be(false)
      end

      it "#{label}: a 304 of an image with an empty, plain body" do
        result = respond(name, { "status" => "304", "type" => "image/png", "body" => "empty" })

        expect(result["statusCode"]).to eq(304)
        expect(result["statusDescription"]).to eq("304 Not Modified") if name == "alb"
        expect(header_values(result, "content-type")).to eq(["image/png"])
        expect(result["body"]).to eq("")
        expect(result["isBase64Encoded"]).to be(false)
      end
    end

    it "ALB: a status with no registered reason gets the bare code as statusDescription" do
      result = respond("alb", { "status" => "599" })

      expect(result).to include("statusCode" => 599, "statusDescription" => "599")
      expect(result["body"]).to eq(echo_text)
    end
  end
end
