# frozen_string_literal: true

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "megamode"
require "megamode/local/identity"
require "json"
require "tmpdir"
require "tempfile"
require "uri"

Dir[File.join(__dir__, "support", "*.rb")].sort.each { |f| require f }

# Everything megamode writes during the suite goes to one scratch directory, removed at the end.
ENV["MEGAMODE_TMP"] = Dir.mktmpdir("megamode-spec-")
at_exit { FileUtils.rm_rf(ENV["MEGAMODE_TMP"]) }

module SpecHelpers
  ROOT = File.expand_path("..", __dir__)

  # The environment of a process started in a C locale, as in many containers and CI jobs: no LANG
  # or LC_*, so Ruby reads text as US-ASCII. The default internal encoding makes such a read
  # transcode, so a read whose encoding is left to the locale fails on every Ruby with bytes that
  # are not ASCII (Ruby 3.3 fails on them by itself; 3.1 lets them pass as broken US-ASCII).
  C_LOCALE = { "LANG" => nil, "LC_ALL" => nil, "LC_CTYPE" => nil, "LANGUAGE" => nil,
               "RUBYOPT" => "-EUS-ASCII:UTF-8" }.freeze

  # An app for C_LOCALE, in `dir`: its source is ASCII, as the locale's reads would trip on the rest
  # in the app's server too (Rack reads config.ru as the locale says). It answers the path, the
  # X-Check header and the body it got, then a ✓ (written as an escape here) as UTF-8 JSON.
  def c_locale_app(dir)
    File.write(File.join(dir, "config.ru"), <<~'RUBY')
      require "json"
      run lambda { |env|
        seen = { "path" => env["PATH_INFO"], "check" => env["HTTP_X_CHECK"], "body" => env["rack.input"].read,
                 "answer" => "\u2713" }
        seen = seen.transform_values { |v| v.to_s.dup.force_encoding("UTF-8") }
        [200, { "content-type" => "application/json; charset=utf-8" }, [JSON.generate(seen)]]
      }
    RUBY
    dir
  end

  def fixture_app(name)
    File.join(ROOT, "spec", "fixtures", "apps", name)
  end

  def fixture_event_path(name)
    File.join(ROOT, "spec", "fixtures", "events", "#{name}.json")
  end

  # An event from spec/fixtures/events, AWS's documented samples, as the Ruby runtime hands it over.
  def fixture_event(name)
    JSON.parse(File.read(fixture_event_path(name)))
  end

  # The HTTP API 2.0 sample, aimed at `path`.
  def v2_event(path, method: "GET", query: "")
    fixture_event("http_api_v2").tap do |e|
      e["rawPath"] = path
      e["rawQueryString"] = query
      e["requestContext"]["http"]["method"] = method
      e["requestContext"]["http"]["path"] = path
    end
  end

  # The REST API sample, aimed at `path`.
  def rest_event(path, method: "GET", query: nil, body: nil)
    fixture_event("rest_api").tap do |e|
      e["path"] = path
      e["httpMethod"] = method
      e["requestContext"]["path"] = "/dev#{path}"
      e["requestContext"]["httpMethod"] = method
      e["queryStringParameters"] = query&.transform_values(&:first)
      e["multiValueQueryStringParameters"] = query
      e["body"] = body
    end
  end

  # A context as the local tools make it; `fields`: Identity.context_fields's other keywords.
  def context(timeout: 30, **fields)
    Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: timeout, **fields))
  end

  # What is written to file descriptor 1 during the block (where the app's prefixed lines go).
  def capture_stdout_fd
    file = Tempfile.new("megamode-stdout")
    saved = $stdout.dup
    $stdout.flush
    $stdout.reopen(file)
    yield
    $stdout.flush
    File.read(file.path)
  ensure
    $stdout.reopen(saved)
    saved.close
    file.close!
  end

  def process_alive?(pid)
    Process.kill(0, pid)
    true
  rescue Errno::ESRCH
    false
  end
end

RSpec.configure do |config|
  config.include SpecHelpers
  config.disable_monkey_patching!
  config.order = :defined
  # Every test stops what it started.
  config.after { Megamode.reset! }
end
