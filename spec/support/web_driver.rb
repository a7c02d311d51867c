# frozen_string_literal: true

require "json"
require "net/http"
require "open3"

# Headless Chromium driven through chromedriver's W3C WebDriver protocol (HTTP and JSON, so no gem
# is needed): what a browser test of the app needs, and no more.
class WebDriver
  ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

  def self.which(command)
    ENV.fetch("PATH", "").split(":").map { |dir| File.join(dir, command) }.find { |p| File.executable?(p) }
  end

  # Why a browser cannot run here, or nil when one can.
  def self.unavailable
    missing = %w[chromium chromedriver].reject { |cmd| which(cmd) }
    return nil if missing.empty?

    "#{missing.join(" and ")} not installed in this environment (bin/setup installs Debian's chromium and " \
      "chromium-driver on the host)"
  end

  def initialize
    @port = LocalGateway.free_port
    @driver_in, @driver_out, @driver = Open3.popen2e("chromedriver", "--port=#{@port}")
    @driver_in.close
    @http = wait_for_driver
    options = { "binary" => self.class.which("chromium"),
                "args" => %w[--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage] }
    session = command(:post, "/session", "capabilities" => { "alwaysMatch" => { "goog:chromeOptions" => options } })
    @session = "/session/#{session.fetch("sessionId")}"
  end

  def visit(url)
    command(:post, "#{@session}/url", "url" => url)
  end

  def current_url
    command(:get, "#{@session}/url")
  end

  def source
    command(:get, "#{@session}/source")
  end

  def find(css)
    command(:post, "#{@session}/element", "using" => "css selector", "value" => css).fetch(ELEMENT)
  end

  def fill_in(css, text)
    command(:post, "#{@session}/element/#{find(css)}/value", "text" => text)
  end

  def click(css)
    command(:post, "#{@session}/element/#{find(css)}/click", {})
  end

  # Waits (10 s at most) for the page to leave `url`: a click that submits a form may return before
  # the browser has navigated.
  def wait_to_leave(url)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    sleep 0.02 while current_url == url && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    current_url
  end

  def execute(script, *args)
    command(:post, "#{@session}/execute/sync", "script" => script, "args" => args)
  end

  def quit
    command(:delete, @session) if @session
  ensure
    Process.kill("TERM", @driver.pid)
    @driver.value
  end

  private

  def wait_for_driver
    50.times do
      return Net::HTTP.start("127.0.0.1", @port, read_timeout: 60)
    rescue Errno::ECONNREFUSED
      sleep 0.1
    end
    raise "chromedriver did not start: #{@driver_out.read_nonblock(10_000, exception: false)}"
  end

  def command(verb, path, body = nil)
    request = { get: Net::HTTP::Get, post: Net::HTTP::Post, delete: Net::HTTP::Delete }.fetch(verb).new(path)
    request["Content-Type"] = "application/json"
    request.body = JSON.generate(body) if body
    value = JSON.parse(@http.request(request).body)["value"]
    raise "WebDriver #{verb} #{path}: #{value["message"]}" if value.is_a?(Hash) && value["error"]

    value
  end
end
