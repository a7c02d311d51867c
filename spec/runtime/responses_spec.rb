# frozen_string_literal: true

require "zlib"
require "base64"

# What megamode answers itself: requests HTTP forbids, responses too large for the source, and the
# statuses MEGAMODE_ERROR_STATUS turns into handler errors.
RSpec.describe "megamode's own answers" do
  def configure(**settings)
    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      settings.each { |name, value| c.public_send("#{name}=", value) }
    end
  end

  def handle(event)
    Megamode.handler(event: event, context: context)
  end

  def alb_event(path, query: "", accept_encoding: nil)
    {
      "requestContext" => { "elb" => { "targetGroupArn" => "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda/abc" } },
      "httpMethod" => "GET", "path" => path, "queryStringParameters" => URI.decode_www_form(query).to_h,
      "headers" => { "host" => "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
                     "accept-encoding" => accept_encoding }.compact,
      "body" => "", "isBase64Encoded" => false
    }
  end

  it "answers 400, with a log line, a request whose header HTTP forbids, and never forwards it" do
    configure
    event = v2_event("/")
    event["headers"]["x-injected"] = "a\r\nX-Evil: 1"
    result = nil
    log = capture_stdout_fd { result = handle(event) }

    expect(result["statusCode"]).to eq(400)
    expect(JSON.parse(result["body"])).to include("error" => "Bad Request")
    expect(JSON.parse(result["body"])["message"]).to include("x-injected")
    expect(log).to include("megamode: 400 Bad Request")
    expect(log).not_to include("handling GET /")
  end

  it "gzips a text response over the ALB's 1 MB limit when the client accepts gzip" do
    configure
    result = handle(alb_event("/big", query: "bytes=2000000", accept_encoding: "gzip, br"))

    expect(result["statusCode"]).to eq(200)
    expect(result["isBase64Encoded"]).to be(true)
    expect(result["headers"]["content-encoding"]).to eq("gzip")
    html = Zlib.gunzip(Base64.strict_decode64(result["body"]))
    expect(html.bytesize).to eq(2_000_000)
    expect(html).to start_with("<p>megamode</p>")
  end

  it "answers 502 that says why, with a log line, a response too large for the source" do
    configure
    result = nil
    log = capture_stdout_fd { result = handle(alb_event("/big", query: "bytes=2000000&binary=1", accept_encoding: "gzip")) }

    expect(result["statusCode"]).to eq(502)
    expect(JSON.parse(result["body"])["message"]).to include("over the 1048576 bytes Lambda accepts")
    expect(log).to include("megamode: 502 Bad Gateway: GET /big")
  end

  it "answers a HEAD for a body larger than the source takes: a HEAD's answer has no body" do
    configure
    result = handle(alb_event("/big", query: "bytes=2000000&binary=1").merge("httpMethod" => "HEAD"))

    expect(result["statusCode"]).to eq(200)
    expect(result["headers"]["content-length"]).to eq("2000000")
    expect(result["body"]).to eq("")
  end

  it "stops reading a body that never ends at what the source could take, and answers 502 at once" do
    configure
    result = nil
    log = capture_stdout_fd do
      result = handle(alb_event("/endless", query: "binary=1", accept_encoding: "gzip"))
    end

    expect(result["statusCode"]).to eq(502)
    expect(JSON.parse(result["body"])["message"]).to match(/more than \d+ bytes \(megamode stopped reading it there\), over the 1048576 bytes/)
    expect(log).to include("megamode: 502 Bad Gateway: GET /endless")
    # The server is fine and the next request gets a connection of its own.
    expect(handle(v2_event("/"))["body"]).to eq("Hello from Rack")
  end

  it "gzips a text body that never ends as it arrives, and stops where gzip cannot win it back" do
    configure
    event = v2_event("/endless")
    event["headers"]["accept-encoding"] = "gzip"
    result = handle(event)

    expect(result["statusCode"]).to eq(502)
    expect(JSON.parse(result["body"])["message"]).to include("even gzipped")
  end

  it "passes on a response with hundreds of cookies" do
    configure
    result = handle(v2_event("/many-cookies", query: "n=300"))

    expect(result["statusCode"]).to eq(200)
    expect(result["cookies"].size).to eq(300)
    expect(result["cookies"].last).to start_with("cookie300=")
  end

  it "answers 502 naming the limit, with a log line, a response with more header lines than megamode reads" do
    configure
    result = nil
    log = capture_stdout_fd { result = handle(v2_event("/many-cookies", query: "n=1000")) }

    expect(result["statusCode"]).to eq(502)
    expect(JSON.parse(result["body"])["message"]).to include("more than 1000 header lines")
    expect(log).to include("megamode: 502 Bad Gateway: the app's response head is larger than megamode reads")
    # The next response is read on a connection of its own.
    expect(handle(v2_event("/"))["body"]).to eq("Hello from Rack")
  end

  it "answers CONNECT with 501 itself: a tunnel cannot pass through an invocation" do
    configure
    event = v2_event("/", method: "CONNECT")
    result = nil
    log = capture_stdout_fd { result = handle(event) }

    expect(result["statusCode"]).to eq(501)
    expect(JSON.parse(result["body"])["message"]).to include("CONNECT")
    expect(log).not_to include("handling CONNECT")
  end

  it "says once that an ALB without multi-value headers passes only the last of several cookies" do
    configure
    log = capture_stdout_fd { 2.times { handle(alb_event("/cookies")) } }

    expect(log.scan("only the last Set-Cookie reaches the client").size).to eq(1)
  end

  it "does not compress when MEGAMODE_COMPRESS is off" do
    configure(compress: "off")
    result = handle(alb_event("/big", query: "bytes=2000000", accept_encoding: "gzip"))

    expect(result["statusCode"]).to eq(502)
  end

  it "compresses responses past a MEGAMODE_COMPRESS size" do
    configure(compress: 1000)
    event = v2_event("/big", query: "bytes=4096")
    event["headers"]["accept-encoding"] = "gzip"
    result = handle(event)

    expect(result["headers"]["content-encoding"]).to eq("gzip")
    expect(Zlib.gunzip(Base64.strict_decode64(result["body"])).bytesize).to eq(4096)
  end

  it "raises AppError for a status MEGAMODE_ERROR_STATUS lists, so Lambda retries, and returns the others" do
    configure(error_status: "500,502-504")

    expect { handle(v2_event("/status", query: "code=503")) }
      .to raise_error(Megamode::AppError, %r{answered 503 Service Unavailable to GET /status.*status 503})
    expect(handle(v2_event("/status", query: "code=501"))["statusCode"]).to eq(501)
    expect(handle(v2_event("/status", query: "code=404"))["statusCode"]).to eq(404)
  end

  it "raises AppError for a status MEGAMODE_ERROR_STATUS lists even when its body is too large to return" do
    configure(error_status: "500")

    expect { handle(alb_event("/status", query: "code=500&bytes=3000000")) }
      .to raise_error(Megamode::AppError, %r{answered 500 Internal Server Error to GET /status.*status 500\.\.\.})
  end

  it "raises a ConfigError naming MEGAMODE_ERROR_STATUS when it cannot be read" do
    configure(error_status: "5xx")

    expect { Megamode.boot }.to raise_error(Megamode::ConfigError, /MEGAMODE_ERROR_STATUS/)
  end
end
