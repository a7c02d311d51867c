# frozen_string_literal: true

require "spec_helper"
require "digest"
require "net/http"
require "open3"

# `megamode serve` with real HTTP clients: every request becomes the event its format's AWS
# service would send, goes through the handler, and comes back as HTTP.
RSpec.describe "megamode serve" do
  EXE = LocalGateway::EXE

  def start(*args)
    LocalGateway.new(*args)
  end

  def http(port, &block)
    Net::HTTP.start("127.0.0.1", port, &block)
  end

  def echo_of(response)
    JSON.parse(response.body)
  end

  %w[v2 v1 alb url].each do |format|
    context "as #{format}" do
      before(:all) { @server = start("--app", File.join(SpecHelpers::ROOT, "spec/fixtures/apps/echo"), "--format", format) }
      after(:all) { @server.stop }

      let(:port) { @server.port }

      it "passes the path, the query, the cookies and the headers" do
        seen = http(port) do |h|
          echo_of(h.get("/items/a%20b?tag=x&tag=y&q=caf%C3%A9", "Cookie" => "a=1; b=2", "X-Custom" => "yes"))
        end

        expect(seen["method"]).to eq("GET")
        expect(seen["path_info"]).to eq("/items/a b").or eq("/items/a%20b")
        expect(seen["params"]).to include("q" => "café")
        expect(seen["headers"]).to include("HTTP_X_CUSTOM" => "yes", "HTTP_X_FORWARDED_PROTO" => "http")
        expect(seen["headers"]["HTTP_COOKIE"]).to eq("a=1; b=2")
      end

      it "carries a binary request body and a binary response byte for byte" do
        bytes = (0..255).to_a.pack("C*")
        http(port) do |h|
          seen = echo_of(h.post("/upload", bytes, "Content-Type" => "application/octet-stream"))
          expect(seen["body_base64"].unpack1("m0")).to eq(bytes)

          png = h.get("/respond?body=png&type=image/png")
          expect(png["content-type"]).to eq("image/png")
          expect(Digest::SHA256.hexdigest(png.body)).to eq(png["x-body-sha256"])
        end
      end

      it "sends a multipart upload through and the Set-Cookie headers back as the service would" do
        boundary = "megamode-boundary"
        form = "--#{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.bin\"\r\n" \
               "Content-Type: application/octet-stream\r\n\r\n\x00\x01\xFF\r\n--#{boundary}--\r\n".b
        http(port) do |h|
          seen = echo_of(h.post("/form", form, "Content-Type" => "multipart/form-data; boundary=#{boundary}"))
          expect(seen["form"]["photo"]).to include("filename" => "p.bin", "base64" => ["\x00\x01\xFF".b].pack("m0"))

          cookies = h.get("/respond?cookies=2").get_fields("set-cookie")
          # An ALB target group without multi-value headers keeps one value per header: the last.
          expected = format == "alb" ? ["c2=v2; path=/"] : ["c1=v1; path=/", "c2=v2; path=/"]
          expect(cookies).to eq(expected)
        end
      end
    end
  end

  context "with an app behind Megamode::Rack::Prefix" do
    # A Rack server reads X_Forwarded_Prefix as X-Forwarded-Prefix: without a stage, the client's
    # would become the app's SCRIPT_NAME, and every redirect and link would point at /evil/...
    LocalGateway::SOURCES.each do |format, stage|
      it "keeps a client's owned headers spelled with _ from the app (#{format}#{", stage #{stage}" if stage})" do
        args = ["--app", fixture_app("prefixed"), "--format", format]
        args += ["--stage", stage] if stage
        server = LocalGateway.new(*args, env: ForgedHeaders::SERVER_ENV)
        prefix = stage ? "/#{stage}" : ""
        response = http(server.port) { |h| h.get("#{prefix}/login", ForgedHeaders::HEADERS.to_h) }
        seen = echo_of(response)

        expect(response.code).to eq("302")
        expect([seen["script_name"], response["location"]]).to eq([prefix, "#{prefix}/signed-in"])
        expect(ForgedHeaders.leaked(seen["headers"])).to eq([])
        expect(seen["headers"]).not_to include("HTTP_X_AMZ_TENANT_ID")
      ensure
        server&.stop
      end
    end
  end

  context "with a stage" do
    before(:all) do
      @server = start("--app", File.join(SpecHelpers::ROOT, "spec/fixtures/apps/echo"), "--stage", "dev")
    end
    after(:all) { @server.stop }

    it "serves the API under /<stage>/ only, and tells the app the prefix" do
      http(@server.port) do |h|
        seen = echo_of(h.get("/dev/posts"))
        expect(seen["path_info"]).to eq("/posts")
        expect(seen["headers"]["HTTP_X_FORWARDED_PREFIX"]).to eq("/dev")

        outside = h.get("/posts")
        expect(outside.code).to eq("404")
        expect(outside.body).to eq(%({"message":"Not Found"}))
      end
      # The app's lines reach the gateway's log from the handler process, a moment after the answer.
      expect(@server.wait_for_log("Rack: ")).to include("at http://127.0.0.1:#{@server.port}/dev/", "START RequestId:", "Rack: ")
    end
  end

  context "with what a front server refuses" do
    include RawHttp

    before(:all) do
      @server = start("--app", File.join(SpecHelpers::ROOT, "spec/fixtures/apps/echo"), "--read-timeout", "0.5")
    end
    after(:all) { @server.stop }

    it "answers 400, 408, 413, 414 or 431 and closes, and serves the next connection" do
      expect_refusals { TCPSocket.new("127.0.0.1", @server.port) }

      seen = http(@server.port) { |h| echo_of(h.post("/after", "fine", "Content-Type" => "text/plain")) }
      expect(seen).to include("method" => "POST", "path_info" => "/after", "body_base64" => ["fine"].pack("m0"))
      # Only that last request reached the handler.
      expect(@server.wait_for_log("END RequestId:").scan("START RequestId:").size).to eq(1)
    end
  end

  context "with bytes that are not UTF-8" do
    include RawHttp

    before(:all) { @server = start("--app", File.join(SpecHelpers::ROOT, "spec/fixtures/apps/echo")) }
    after(:all) { @server.stop }

    # An event is JSON, which holds only UTF-8 text: such a request cannot become one.
    it "answers 400 and closes, and serves the next connection" do
      ["GET /caf\xE9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
       "GET /?q=caf\xE9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Name: caf\xE9\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: a=caf\xE9\r\n\r\n"].each do |bytes|
        socket = TCPSocket.new("127.0.0.1", @server.port)
        response = exchange(socket, bytes.b)
        expect([response.code, response["connection"]]).to eq(%w[400 close]), bytes.inspect
        expect(response.body).to include("UTF-8")
      ensure
        socket&.close
      end

      seen = http(@server.port) { |h| echo_of(h.get("/caf%C3%A9", "X-Name" => "café")) }
      expect(seen["headers"]["HTTP_X_NAME"]).to eq("café")
    end
  end

  context "in a C locale (no LANG, as in many containers and CI jobs)" do
    it "carries non-ASCII bytes in a path, a header, a body and a response, answered whole or streamed" do
      Dir.mktmpdir("megamode-serve-") do |dir|
        app = c_locale_app(dir)
        [[], ["--format", "url", "--stream"]].each do |args|
          server = LocalGateway.new("--app", app, *args, env: SpecHelpers::C_LOCALE)
          begin
            response = http(server.port) do |h|
              h.post("/%E2%9C%93", "grüße ✓", "X-Check" => "✓ café", "Content-Type" => "text/plain; charset=utf-8")
            end
            expect(response.code).to eq("200"), "#{args}: #{server.log}"
            seen = JSON.parse(response.body.force_encoding(Encoding::UTF_8))
            expect(URI.decode_www_form_component(seen["path"])).to eq("/✓"), args.to_s
            expect(seen).to include("check" => "✓ café", "body" => "grüße ✓", "answer" => "✓"), args.to_s
          ensure
            server.stop
          end
        end
      end
    end
  end

  it "says so when the app cannot be served" do
    _, err, status = Open3.capture3(RbConfig.ruby, EXE, "serve", "--app", "/nonexistent")
    expect(status.exitstatus).to eq(2)
    expect(err).to include("does not exist")
    _, err, = Open3.capture3(RbConfig.ruby, EXE, "serve", "--app", ".", "--format", "alb", "--stage", "dev")
    expect(err).to include("--stage is for API Gateway formats")
  end
end
