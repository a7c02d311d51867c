# frozen_string_literal: true

require "net/http"
require "open3"
require "socket"
require "uri"

# `megamode serve` as a test drives it: started on a free port, waited for until it listens, and
# stopped with Ctrl-C (SIGINT), as a user would.
class LocalGateway
  EXE = File.expand_path("../../exe/megamode", __dir__)

  # Every event source the gateway emulates, API Gateway's with a stage as the e2e specs use them.
  SOURCES = [["v2", "dev"], ["v1", "dev"], ["alb", nil], ["url", nil]].freeze

  attr_reader :port, :log

  def self.serve_package(package, format, stage, env: {})
    new("--package", package, *source(format, stage), env: env)
  end

  # An image (`megamode serve --image TAG --mode MODE`), as its Lambda function would be.
  def self.serve_image(tag, format, stage, mode:)
    new("--image", tag, "--mode", mode, *source(format, stage))
  end

  # The arguments for an event source of SOURCES.
  def self.source(format, stage)
    ["--format", format, *(["--stage", stage] if stage)]
  end

  def self.free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def initialize(*args, env: {})
    @port = self.class.free_port
    stdin, err, @wait = Open3.popen2e(env, RbConfig.ruby, EXE, "serve", *args, "--port", @port.to_s)
    stdin.close
    @log = +""
    until @log.include?("Ctrl-C stops")
      line = err.gets
      raise "megamode serve stopped before listening:\n#{@log}" unless line

      @log << line
    end
    @drain = Thread.new { err.each_line { |l| @log << l } }
  end

  # The log once it holds `text` (its lines reach here through pipes, a moment after the
  # response), or as it is after a few seconds.
  def wait_for_log(text, seconds: 5)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    sleep 0.01 until @log.include?(text) || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    @log
  end

  def stop
    Process.kill("INT", @wait.pid)
    status = @wait.value
    @drain.join
    status
  end

  def client
    Client.new(@port)
  end

  # A cookie-keeping HTTP client over one kept-alive connection, the way a browser talks to an app.
  class Client
    attr_reader :cookies

    def initialize(port)
      @http = Net::HTTP.start("127.0.0.1", port)
      @cookies = {}
    end

    def get(path, headers = {})
      request(Net::HTTP::Get.new(path, headers))
    end

    def post_form(path, fields, headers = {})
      request(Net::HTTP::Post.new(path, headers).tap { |r| r.set_form_data(fields) })
    end

    def post(path, body, headers = {})
      request(Net::HTTP::Post.new(path, headers).tap { |r| r.body = body })
    end

    def request(req)
      req["Cookie"] = @cookies.map { |k, v| "#{k}=#{v}" }.join("; ") unless @cookies.empty?
      @http.request(req).tap do |response|
        Array(response.get_fields("set-cookie")).each do |line|
          name, value = line.split(";", 2).first.split("=", 2)
          @cookies[name] = value
        end
      end
    end

    # The path (and query) a redirect points to.
    def self.location_path(response)
      URI(response["location"]).request_uri
    end

    def close
      @http.finish
    end
  end
end
