# frozen_string_literal: true

require "open3"
require "rbconfig"

# `megamode invoke`, run as a user runs it: a separate process, events from files.
RSpec.describe "megamode invoke" do
  let(:exe) { File.join(SpecHelpers::ROOT, "exe", "megamode") }
  let(:dir) { Dir.mktmpdir("megamode-invoke-") }

  after { FileUtils.rm_rf(dir) }

  def event_file(name, event)
    File.join(dir, "#{name}.json").tap { |path| File.write(path, JSON.generate(event)) }
  end

  def invoke(*args)
    out, err, status = Open3.capture3(RbConfig.ruby, exe, "invoke", *args)
    [out, err, status]
  end

  it "runs the events in order in one warm environment: one server, one connection" do
    files = [v2_event("/whoami"), rest_event("/whoami"), v2_event("/whoami")]
            .each_with_index.map { |e, i| event_file("e#{i}", e) }
    out, err, status = invoke("--app", fixture_app("rack_hello"), *files.flat_map { |f| ["--event", f] })

    expect(status.exitstatus).to eq(0), err
    results = out.lines.map { |l| JSON.parse(l) }
    expect(results.size).to eq(3)
    expect(results.map { |r| r["statusCode"] }).to eq([200, 200, 200])
    expect(results[1]).to have_key("multiValueHeaders")
    answers = results.map { |r| JSON.parse(r["body"]) }
    expect(answers.map { |a| a["pid"] }.uniq.size).to eq(1)
    expect(answers.map { |a| a["connection"] }.uniq.size).to eq(1)
    expect(answers.first["connection"]).to be_a(Integer)
    expect(process_alive?(answers.first["pid"])).to be(false), "the server is stopped when invoke ends"
  end

  it "writes the Lambda log to stderr, with each request's app lines inside its invocation" do
    files = [event_file("a", v2_event("/whoami")), event_file("b", v2_event("/"))]
    _, err, status = invoke("--app", fixture_app("rack_hello"), "--event", files[0], "--event", files[1])

    expect(status.exitstatus).to eq(0)
    lines = err.lines.map(&:chomp)
    starts = lines.each_index.select { |i| lines[i].start_with?("START RequestId: ") }
    ends = lines.each_index.select { |i| lines[i].start_with?("END RequestId: ") }
    expect(starts.size).to eq(2)
    expect(ends.size).to eq(2)
    first = lines[starts[0]..ends[0]]
    second = lines[starts[1]..ends[1]]
    expect(first).to include("Rack: handling GET /whoami")
    expect(second).to include("Rack: handling GET /")
    expect(second).not_to include("Rack: handling GET /whoami")
    ids = starts.map { |i| lines[i][/RequestId: (\S+)/, 1] }
    expect(lines[ends[0] + 1]).to match(/\AREPORT RequestId: #{ids[0]}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: \d+ MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms\z/)
    expect(lines[ends[1] + 1]).to match(/\AREPORT RequestId: #{ids[1]}\t/)
    expect(lines[ends[1] + 1]).not_to include("Init Duration")
  end

  it "puts what the server prints as it boots, up to puma's last boot line, in the invocation that waited for it" do
    # puma prints "Use Ctrl-C to stop" just after it listens, that is after megamode saw it ready:
    # a prewarm, which sends the app no request, would end before that line came.
    files = [event_file("warm", { "_prewarm" => true }), event_file("b", v2_event("/"))]
    _, err, status = invoke("--app", fixture_app("rack_hello"), "--event", files[0], "--event", files[1])

    expect(status.exitstatus).to eq(0), err
    lines = err.lines.map(&:chomp)
    starts = lines.each_index.select { |i| lines[i].start_with?("START RequestId: ") }
    ends = lines.each_index.select { |i| lines[i].start_with?("END RequestId: ") }
    expect([starts.size, ends.size]).to eq([2, 2]), err
    boot, second = lines[starts[0]..ends[0]], lines[starts[1]..ends[1]]
    expect(boot.grep(/Use Ctrl-C to stop/).size).to eq(1), err
    expect(boot.grep(/Listening on/).size).to eq(1), err
    expect(second.grep(/Use Ctrl-C to stop|Listening on/)).to eq([]), err
  end

  it "answers a failing event with Lambda's error shape, goes on with the next, and exits 1 naming it" do
    files = [event_file("bad", [1, 2]), event_file("good", v2_event("/"))]
    out, err, status = invoke("--app", fixture_app("rack_hello"), "--event", files[0], "--event", files[1])

    expect(status.exitstatus).to eq(1), err
    first, second = out.lines.map { |l| JSON.parse(l) }
    expect(first).to eq("errorType" => "Megamode::EventError",
                        "errorMessage" => "the event must be a JSON object (a Hash), got an array")
    expect(second["body"]).to eq("Hello from Rack")
    expect(err).to include("megamode invoke: 1 of 2 invocations failed:\n",
                           "  event 1 (#{files[0]}): Megamode::EventError: the event must be a JSON object")
    expect(err).not_to include("event 2 (")
  end

  # Rails answers a POST to a path it has no route for with its 404 page, a couple of KB of HTML.
  it "names an event the app has no route for by the page's title and says what to do, not by the page" do
    app = File.join(dir, "no_events")
    FileUtils.mkdir_p(app)
    File.write(File.join(app, "config.ru"), <<~RUBY)
      page = "<!DOCTYPE html>\n<html>\n<head>\n  <title>The page you were looking for doesn't exist (404)</title>\n" \
             "  <style>\#{"body { color: #666; }\n" * 60}</style>\n</head>\n<body>gone</body>\n</html>\n"
      run ->(_env) { [404, { "content-type" => "text/html" }, [page]] }
    RUBY
    out, err, status = invoke("--app", app, "--event", "sqs")

    expect(status.exitstatus).to eq(1), err
    message = JSON.parse(out.lines.first).fetch("errorMessage")
    expect(message).to include("the app answered 404 Not Found to the event POSTed to /events (the app has no route " \
                               "for POST /events: add one, or set MEGAMODE_PASS_THROUGH_PATH",
                               %(an HTML page titled "The page you were looking for doesn't exist (404)"))
    expect(message).not_to include("<style", "color: #666")
  end

  it "carries non-ASCII bytes in a path, a header, a body and a response in a C locale" do
    event = v2_event("/✓", method: "POST").tap do |e|
      e["headers"].merge!("x-check" => "✓ café", "content-type" => "text/plain; charset=utf-8")
      e["body"] = "grüße ✓"
    end
    app = c_locale_app(FileUtils.mkdir_p(File.join(dir, "app")).first)
    out, err, status = Open3.capture3(SpecHelpers::C_LOCALE, RbConfig.ruby, exe, "invoke", "--app", app,
                                      "--event", event_file("e", event), binmode: true)

    expect(status.exitstatus).to eq(0), err
    result = JSON.parse(out.force_encoding(Encoding::UTF_8).lines.first)
    expect(result["statusCode"]).to eq(200), out
    seen = JSON.parse(result["body"])
    expect(URI.decode_www_form_component(seen["path"])).to eq("/✓")
    expect(seen).to include("check" => "✓ café", "body" => "grüße ✓", "answer" => "✓")
  end

  it "reports a server that cannot boot with its exit status and output, on every invocation, and exits 1" do
    out, err, status = invoke("--app", fixture_app("broken"), "--event", event_file("e", v2_event("/")), "--get", "/")
    errors = out.lines.map { |l| JSON.parse(l) }

    expect(errors.size).to eq(2), out
    expect(errors.map { |e| e["errorType"] }).to eq(%w[Megamode::BootError Megamode::BootError])
    expect(errors.first["errorMessage"]).to include("exited with status 1", "a_gem_that_is_not_installed")
    expect(status.exitstatus).to eq(1)
    expect(err).to include("megamode invoke: 2 of 2 invocations failed:", "event 2 (GET /): Megamode::BootError")
  end

  it "exits 0 when every invocation has a result, whatever HTTP status the app answers" do
    out, err, status = invoke("--app", fixture_app("rack_hello"), "--event", event_file("e", v2_event("/status", query: "code=500")))

    expect(JSON.parse(out)).to include("statusCode" => 500)
    expect(status.exitstatus).to eq(0), err
    expect(err).not_to include("megamode invoke:")
  end

  describe "an event without a file" do
    it "makes an HTTP API 2.0 event of --get PATH and runs it against the app" do
      out, err, status = invoke("--app", fixture_app("rack_hello"), "--get", "/")

      expect(status.exitstatus).to eq(0), err
      result = JSON.parse(out)
      expect(result).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(result["cookies"]).to eq(["visited=yes; path=/"]), "answered as an HTTP API 2.0 result"
      expect(err).to include("Rack: handling GET /")
    end

    it "sends a form with --post PATH --data, and --header, in every format" do
      { "v2" => "cookies", "v1" => "multiValueHeaders", "alb" => "headers", "url" => "cookies" }.each do |format, key|
        out, err, status = invoke("--app", fixture_app("rack_hello"), "--format", format,
                                  "--post", "/echo?page=2", "--data", "title=Hello+world&done=1",
                                  "--header", "X-Check: yes", "--get", "/whoami")

        expect(status.exitstatus).to eq(0), "#{format}: #{err}"
        posted, got = out.lines.map { |l| JSON.parse(l) }
        expect(posted).to include("statusCode" => 200)
        expect(posted).to have_key(key) if key != "cookies"
        seen = JSON.parse(posted["body"])
        expect(seen).to include("method" => "POST", "path" => "/echo", "query" => "page=2",
                                "body" => "title=Hello+world&done=1")
        expect(seen["headers"]).to include("CONTENT_TYPE" => "application/x-www-form-urlencoded",
                                           "CONTENT_LENGTH" => "24", "HTTP_X_CHECK" => "yes",
                                           "HTTP_X_FORWARDED_PROTO" => "https")
        expect(seen["headers"]["HTTP_HOST"]).to end_with(".amazonaws.com").or end_with(".on.aws")
        expect(JSON.parse(got["body"])).to include("pid"), "the --header and --data went to the --post only"
      end
    end

    it "takes a Content-Type --header for the --data, and the stage in the path with --stage" do
      out, err, status = invoke("--app", fixture_app("rack_hello"), "--format", "v1", "--stage", "dev",
                                "--put", "/dev/echo", "--header", "Content-Type: application/json",
                                "--data", '{"a":1}')

      expect(status.exitstatus).to eq(0), err
      seen = JSON.parse(JSON.parse(out)["body"])
      expect(seen).to include("method" => "PUT", "path" => "/echo", "body" => '{"a":1}')
      expect(seen["headers"]).to include("CONTENT_TYPE" => "application/json", "HTTP_X_FORWARDED_PREFIX" => "/dev")
    end

    it "refuses what cannot make an event, before starting anything" do
      [[%w[--get /x --stage dev], "with --stage dev the API is at /dev/..., as on its execute-api host: give --get /dev/x"],
       [%w[--get notes], "--get takes a path that starts with /"],
       [%w[--header X:1 --get /], "--header goes after the --get, --post, ... PATH it belongs to"],
       [%w[--get / --header nocolon], "--header takes 'Name: value'"],
       [%w[--post / --data a --data b], "give one --data per request"],
       [%w[--event rest --format v1], "--format and --stage shape the events of --get, --post"],
       [%w[--get / --format url --stage dev], "--stage is for API Gateway formats"]].each do |args, message|
        out, err, status = invoke("--app", fixture_app("rack_hello"), *args)

        expect(status.exitstatus).to eq(2), "#{args.join(" ")}: #{err}"
        expect(err).to include(message), "#{args.join(" ")}: #{err}"
        expect(err).not_to include("Puma starting")
        expect(out).to be_empty
      end
    end
  end

  describe "the sample events" do
    it "lists every sample with its file, each AWS's shape for its source, shipped with the gem" do
      out, err, status = Open3.capture3(RbConfig.ruby, exe, "events")

      expect(status.exitstatus).to eq(0), err
      files = out.lines.map(&:strip).grep(/\.json\z/)
      names = %w[rest http-v1 http-v2 url alb alb-multi-value sqs prewarm]
      expect(files.map { |f| File.basename(f, ".json") }).to eq(names)
      events = files.to_h { |f| [File.basename(f, ".json"), JSON.parse(File.read(f))] }
      # The HTTP samples are the spec fixtures, AWS's documented samples.
      { "rest" => "rest_api", "http-v1" => "http_api_v1", "http-v2" => "http_api_v2", "url" => "function_url",
        "alb" => "alb", "alb-multi-value" => "alb_multi_value" }.each do |name, fixture|
        expect(events[name]).to eq(fixture_event(fixture)), name
      end
      expect(events["sqs"]["Records"].first).to include("eventSource" => "aws:sqs", "body" => "test")
      expect(events["prewarm"]).to eq("_prewarm" => true)
      shipped = Gem::Specification.load(File.join(SpecHelpers::ROOT, "megamode.gemspec")).files
      expect(shipped).to include(*files.map { |f| f.delete_prefix("#{SpecHelpers::ROOT}/") })
    end

    it "runs a sample by its name with --event, each source answered in its own shape" do
      names = %w[rest http-v1 http-v2 url alb alb-multi-value sqs prewarm]
      out, err, status = invoke("--app", fixture_app("rack_hello"), *names.flat_map { |n| ["--event", n] })

      expect(status.exitstatus).to eq(0), err
      results = names.zip(out.lines.map { |l| JSON.parse(l) }).to_h
      expect(results.values.first(6).map { |r| r["statusCode"] }).to eq([200] * 6), out
      expect(results["rest"]).to have_key("multiValueHeaders")
      expect(results["http-v2"]["cookies"]).to eq(["visited=yes; path=/"])
      expect(results["alb-multi-value"]).to have_key("multiValueHeaders")
      expect(results["sqs"]).to eq("received" => 1)
      expect(results["prewarm"]).to include("prewarmed_at")
      expect(err).to include("Rack: handling GET /my/path", "Rack: handling POST /my/path", "Rack: handling GET /lambda")
    end

    it "says which samples there are when --event names neither a file nor a sample" do
      _, err, status = invoke("--app", fixture_app("rack_hello"), "--event", "rest-api")

      expect(status.exitstatus).to eq(2)
      expect(err).to include("cannot read the event file rest-api",
                             "nor is rest-api a sample event's name: rest, http-v1, http-v2, url, alb")
    end
  end

  it "checks every event file before starting anything" do
    good = event_file("good", v2_event("/"))
    out, err, status = invoke("--app", fixture_app("rack_hello"), "--event", good, "--event", File.join(dir, "missing.json"))

    expect(status.exitstatus).to eq(2)
    expect(out).to be_empty
    expect(err).to include("cannot read the event file", "missing.json")
    expect(err).not_to include("Puma starting")
  end

  it "says what is wrong with an event file that is not JSON" do
    bad = File.join(dir, "bad.json").tap { |p| File.write(p, "{not json") }
    _, err, status = invoke("--app", fixture_app("rack_hello"), "--event", bad)

    expect(status.exitstatus).to eq(2)
    expect(err).to include("bad.json is not JSON")
  end

  it "says what an app needs when build is run where there is none" do
    _, err, status = Open3.capture3(RbConfig.ruby, exe, "build", chdir: dir)
    expect(status.exitstatus).to eq(1)
    expect(err).to include("has no config.ru or Gemfile or Gemfile.lock")
    expect(Dir.children(dir)).to eq([]), "nothing is written"
  end

  it "answers an option build does not know with the usage" do
    _, err, status = Open3.capture3(RbConfig.ruby, exe, "build", "--frobnicate", chdir: dir)
    expect(status.exitstatus).to eq(2)
    expect(err).to include("invalid option: --frobnicate", "Usage:")
    expect(err).not_to include("NameError")
  end

  it "loads only the part that owns the command: nothing of the packager for events, nothing of the local CLI for build" do
    lib = File.join(SpecHelpers::ROOT, "lib")
    script = <<~'RUBY'
      require "megamode/cli"
      require "stringio"
      Megamode::CLI.new(ARGV, out: StringIO.new, err: StringIO.new).run
      puts $LOADED_FEATURES.grep(%r{/lib/megamode/}).map { |f| f[%r{megamode/.*}] }
    RUBY
    loaded = ->(*args) { Open3.capture2(RbConfig.ruby, "-I", lib, "-e", script, *args).first.lines.map(&:chomp) }

    expect(loaded.call("events")).to include("megamode/local/cli.rb")
    expect(loaded.call("events").grep(%r{\Amegamode/build})).to eq([])
    built = loaded.call("build", "--app", dir)
    expect(built).to include("megamode/build.rb")
    expect(built).not_to include("megamode/local/cli.rb")
  end

  it "explains a package without a handler.rb" do
    _, err, status = invoke("--package", dir, "--event", event_file("e", v2_event("/")))
    expect(status.exitstatus).to eq(2)
    expect(err).to include("has no handler.rb")
  end

  it "runs with a --timeout beyond any clock" do
    out, err, status = invoke("--app", fixture_app("rack_hello"), "--timeout", "1e300",
                              "--event", event_file("e", v2_event("/")))

    expect(status.exitstatus).to eq(0), err
    expect(JSON.parse(out.lines.first)["statusCode"]).to eq(200), out
  end

  it "refuses a --timeout that is not a finite number of seconds above zero" do
    event = event_file("e", v2_event("/"))
    %w[inf 1e309 NaN 0 -5].each do |timeout|
      out, err, status = invoke("--app", fixture_app("rack_hello"), "--timeout", timeout, "--event", event)

      expect(status.exitstatus).to eq(2), "--timeout #{timeout}: #{err}"
      expect(err).to include("--timeout"), "--timeout #{timeout}: #{err}"
      expect(out).to be_empty
    end
  end

  it "says, without the usage text, when --image cannot run: no engine that runs, or no such image" do
    engine = File.join(dir, "engine")
    File.write(engine, <<~SH)
      #!/bin/sh
      case "$1" in
        info) [ -n "$FAKE_ENGINE_BROKEN" ] && { echo "Error: cannot connect to the daemon" >&2; exit 1; }; exit 0 ;;
        image) exit 1 ;;
      esac
      exit 3
    SH
    File.chmod(0o755, engine)
    out, err, status = Open3.capture3({ "MEGAMODE_CONTAINER_ENGINE" => engine }, RbConfig.ruby, exe, "invoke",
                                      "--image", "megamode-shop:v1", "--get", "/")
    expect([out, status.exitstatus]).to eq(["", 1])
    expect(err).to eq("megamode invoke: engine has no image megamode-shop:v1: build it with `megamode build --image " \
                      "--tag megamode-shop:v1` in the app (it prints the tag it built), or give a tag `engine images` lists\n")

    _, err, status = Open3.capture3({ "MEGAMODE_CONTAINER_ENGINE" => engine, "FAKE_ENGINE_BROKEN" => "1" }, RbConfig.ruby,
                                    exe, "serve", "--image", "megamode-shop:v1")
    expect(status.exitstatus).to eq(1)
    expect(err).to start_with("megamode serve: --image runs the image with a container engine: Error: cannot connect to the daemon")

    _, err, status = invoke("--image", "x", "--package", dir, "--get", "/")
    expect(status.exitstatus).to eq(2)
    expect(err).to include("give one of --app, --package and --image, not more")
  end

  it "explains a missing --app or --event" do
    _, err, status = invoke("--event", event_file("e", v2_event("/")))
    expect(status.exitstatus).to eq(2)
    expect(err).to include("--app DIR")

    _, err, status = invoke("--app", fixture_app("rack_hello"))
    expect(status.exitstatus).to eq(2)
    expect(err).to include("give at least one --event FILE (or a sample's name) or a request such as --get /")
  end
end
