# frozen_string_literal: true

require "json"
require "optparse"
require_relative "../local"
require_relative "gateway"
require_relative "request_event"
require_relative "samples"

module Megamode::Local
  # `megamode invoke|serve|events`: local tools that behave like Lambda. Megamode::CLI hands it
  # those commands.
  class CLI
    # The local tools' part of `megamode help` (Megamode::CLI puts the parts together).
    USAGE = <<~TEXT
      megamode invoke --app DIR --event FILE [--event FILE ...] [--timeout SECONDS]
          Runs the Rack app in DIR like one warm Lambda environment receiving the events in order.
          stdout: one JSON line per event; stderr: the Lambda-style log. The exit status is 1
          when an invocation failed (Lambda's error shape, such as a server that did not boot;
          stderr says which), after every result.
      megamode invoke --package DIR [--mode handler|native] --event FILE [--event FILE ...] [--timeout SECONDS]
          The same for a package made by `megamode build`, run as Lambda runs it: through
          handler.rb (the default), or through megamode's native Runtime API loop.
      megamode invoke --image TAG [--mode handler|native] [--env NAME=VALUE ...] --event FILE [--event FILE ...] [--timeout SECONDS]
          The same for a container image made by `megamode build --image`, run as Lambda runs an
          image, with docker, podman or finch (MEGAMODE_CONTAINER_ENGINE chooses): read-only but
          for a fresh /tmp, as a user that owns nothing, with Lambda's variables and the Runtime
          API served from here; the container is removed at the end. --env NAME=VALUE (or NAME,
          for this shell's value; repeatable) gives the function a variable of its own, as the
          template's Environment does on Lambda (RAILS_ENV, SECRET_KEY_BASE, ...): a package run
          has this shell's environment, an image none but Lambda's and these.
      megamode invoke (--app DIR | --package DIR [--mode handler|native] | --image TAG [--mode handler|native])
                      --get|--post|--put|--patch|--delete|--head|--options PATH [--header 'Name: value' ...] [--data BODY]
                      [--format v2|v1|alb|url] [--stage NAME]
          An event without a file: the request (PATH with its query; --data sends a form unless a
          Content-Type --header says otherwise) made into the event of the service --format names,
          as `megamode serve` makes it (default v2). --header and --data belong to the request
          before them. Requests and --event mix, in order. --event NAME (no such file) runs the
          sample event of that name.
      megamode events
          Lists the sample events that ship with megamode (API Gateway REST, HTTP API 1.0 and
          2.0, Function URL, ALB, ALB multi-value, SQS, prewarm): each name and file.
      megamode serve (--app DIR | --package DIR [--mode handler|native] | --image TAG [--mode handler|native] [--env NAME=VALUE ...])
                     [--port 3000] [--format v2|v1|alb|url] [--stage NAME]
                     [--read-timeout SECONDS] [--stream]
          A local gateway: HTTP requests on 127.0.0.1 become events of that format, go through
          the handler, and the result goes back as the HTTP response. A request that has not
          arrived within the read timeout (default 30 s) is answered 408, and a client that
          takes nothing of its response for as long is dropped. --stream (formats url and v1)
          runs the native loop in response_stream mode and streams each response to the client
          as it arrives, as a Function URL in RESPONSE_STREAM mode does.
      megamode invoke|serve ... --snapstart [--restore-after SECONDS]
          Runs the init as SnapStart's (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): it ends with the
          snapshot, which is restored before the first event, after every process of the environment
          was stopped for --restore-after seconds (default 0; longer than the app server's
          keep-alive shows what a restore long after the snapshot meets). The first REPORT gives
          Restore Duration, from the restore to the runtime's first request for an event, and no
          Init Duration. An --app runs through the native loop, whose lifecycle SnapStart is; a
          --package in handler mode runs it in handler.rb, as on Lambda.
    TEXT

    # The longest --restore-after: a day.
    MAX_RESTORE_AFTER = 86_400

    # How a package runs: through its handler.rb, or through megamode's native Runtime API loop.
    MODES = %w[handler native].freeze

    # Arguments that cannot run; the message says why.
    class UsageError < StandardError; end
    # What the arguments name cannot run here (no container engine runs, no such image): said
    # without the usage text, which would not help.
    class CannotRun < StandardError; end

    # `argv`: what follows the command. `usage_error`: says what is wrong with the arguments, with
    # the whole usage text, and gives the exit status (Megamode::CLI#usage_error).
    def initialize(argv, usage_error:, out: $stdout, err: $stderr)
      @argv = argv.dup
      @usage_error = usage_error
      @out = out
      @err = err
    end

    # Runs `command`: invoke, serve or events.
    def run(command)
      case command
      when "invoke" then invoke
      when "serve" then serve
      when "events" then events
      else raise ArgumentError, "#{command.inspect} is not a local tool's command"
      end
    rescue OptionParser::ParseError, UsageError => e
      usage_error(e.message)
    rescue CannotRun => e
      @err.puts "megamode #{command}: #{e.message}"
      1
    end

    private

    def invoke
      options = { items: [], timeout: 30.0, mode: "handler" }
      OptionParser.new do |o|
        o.on("--app DIR") { |v| options[:app] = v }
        o.on("--package DIR") { |v| options[:package] = v }
        o.on("--image TAG") { |v| options[:image] = v }
        o.on("--env NAME=VALUE") { |v| (options[:env] ||= []) << v }
        mode_options(o, options)
        o.on("--event FILE") { |v| options[:items] << v }
        RequestEvent::METHODS.each do |method|
          o.on("--#{method.downcase} PATH") { |v| options[:items] << RequestEvent.new(method, v) }
        end
        o.on("--header LINE") { |v| last_request(options, "--header").add_header(v) }
        o.on("--data BODY") { |v| last_request(options, "--data").data = v }
        o.on("--format FORMAT", Gateway::FORMATS) { |v| options[:format] = v }
        o.on("--stage NAME") { |v| options[:stage] = v }
        o.on("--timeout SECONDS", Float) { |v| options[:timeout] = v }
        snapstart_options(o, options)
      end.parse!(@argv)
      return usage_error("unexpected arguments: #{@argv.join(" ")}") unless @argv.empty?
      given = options.values_at(:app, :package, :image).compact.size
      if given.zero?
        return usage_error("give the app with --app DIR, the package with --package DIR or the image with --image TAG")
      end
      return usage_error("give one of --app, --package and --image, not more") if given > 1
      if options[:items].empty?
        return usage_error("give at least one --event FILE (or a sample's name) or a request such as --get /")
      end
      unless options[:timeout].finite? && options[:timeout].positive?
        return usage_error("--timeout must be a finite number of seconds above zero, got #{options[:timeout]}")
      end

      kind, dir = what_runs(options)
      kind, snap_start, restore_after = snapstart_setting(kind, options)

      # Every event is read or made before anything starts, so a bad one costs nothing.
      events = events_of(options)
      return 2 if events.any? { |(_, event)| event.nil? }

      invoke_in_handler_process(kind, dir, events, options[:timeout], snap_start: snap_start, restore_after: restore_after)
    rescue RequestEvent::Invalid => e
      usage_error(e.message)
    end

    # The request --header or --data belongs to: the --get, --post, ... just before it.
    def last_request(options, option)
      request = options[:items].last
      return request if request.is_a?(RequestEvent)

      raise UsageError, "#{option} goes after the --get, --post, ... PATH it belongs to"
    end

    # [label, event] for each --event and request, in the order given (event nil when it cannot be).
    def events_of(options)
      requests = options[:items].grep(RequestEvent)
      format = options[:format] || "v2"
      if requests.empty? && (options[:format] || options[:stage])
        raise UsageError, "--format and --stage shape the events of --get, --post, ...; an --event is sent as it is"
      end
      if options[:stage] && %w[alb url].include?(format)
        raise UsageError, "--stage is for API Gateway formats (v2, v1); #{format} has none"
      end

      gateway = Gateway.new(format: format, stage: options[:stage])
      options[:items].map do |item|
        next [item, read_event(event_file(item))] unless item.is_a?(RequestEvent)

        event = item.event(gateway, format)
        unless event
          raise UsageError, "with --stage #{options[:stage]} the API is at /#{options[:stage]}/..., as on its " \
                            "execute-api host: give --#{item.method.downcase} /#{options[:stage]}#{item.target}"
        end
        [item.label, event]
      end
    end

    # An --event that names no file but a sample's name is that sample.
    def event_file(given)
      return given if File.exist?(given)

      Samples.path(given) || given
    end

    # Every kind runs in a handler process of its own (a package in an environment like Lambda's),
    # as `megamode serve` runs it. Every result goes to stdout as it comes; an invocation that failed
    # (Lambda's error shape: the handler raised, the server did not boot, the event was refused) makes
    # the exit status 1, and stderr says which.
    def invoke_in_handler_process(kind, dir, events, timeout, snap_start: false, restore_after: 0)
      require "open3"
      require_relative "lambda_environment"
      env, command = LambdaEnvironment.handler_process(kind, dir, timeout, log: @err, snap_start: snap_start,
                                                                         restore_after: restore_after)
      Open3.popen3(env, *command, chdir: LambdaEnvironment.workdir(kind, dir)) do |stdin, stdout, stderr, wait|
        # Bytes both ways: the events and results are UTF-8 JSON, whatever the caller's locale.
        [stdin, stdout, stderr].each(&:binmode)
        # Results and the log are read while the events are written, so neither pipe fills up.
        log = Thread.new { IO.copy_stream(stderr, @err) }
        results = Thread.new { relay_results(stdout) }
        begin
          events.each { |(_, event)| stdin.puts(JSON.generate(event)) }
        rescue Errno::EPIPE
          nil # the handler process ended early; its log says why
        end
        stdin.close
        log.join
        outcome(events.map(&:first), results.value, wait.value)
      end
    end

    # Copies each result line to stdout as it arrives; the results, parsed (nil: not JSON).
    def relay_results(stdout)
      # Bytes: the lines are UTF-8 JSON, whatever the caller's locale says.
      @out.binmode
      stdout.each_line.map do |line|
        @out.write(line)
        @out.flush
        begin
          JSON.parse(line.dup.force_encoding(Encoding::UTF_8))
        rescue JSON::ParserError
          nil
        end
      end
    end

    # 0 when every event got a result that is not Lambda's error shape and the handler process ended
    # well; else 1, with what failed on stderr.
    def outcome(labels, results, status)
      failed = results.each_with_index.filter_map do |result, i|
        next unless result.is_a?(Hash) && result.key?("errorType")

        "  event #{i + 1} (#{labels[i]}): #{result["errorType"]}: #{result["errorMessage"].to_s.lines.first&.strip}"
      end
      unless failed.empty?
        @err.puts "megamode invoke: #{failed.size} of #{labels.size} invocation#{"s" if labels.size > 1} failed:", failed
      end
      if results.size < labels.size || !status.success?
        @err.puts "megamode invoke: the handler process ended (#{status.exitstatus ? "exit status #{status.exitstatus}" : status}) " \
                  "with #{results.size} of #{labels.size} results: its log above says why"
      end
      failed.empty? && results.size == labels.size && status.success? ? 0 : 1
    end

    # `megamode events`: the sample events, each with its name (for `invoke --event NAME`), what it
    # is and its file (to copy and edit).
    def events
      return usage_error("unexpected arguments: #{@argv.join(" ")}") unless @argv.empty?

      width = Samples.names.map(&:size).max + 2
      Samples.names.each do |name|
        @out.puts "#{name.ljust(width)}#{Samples::DESCRIPTIONS.fetch(name)}", "#{" " * width}#{Samples.path(name)}"
      end
      0
    end

    def serve
      require_relative "serve"
      options = { port: 3000, format: "v2", mode: "handler", read_timeout: HttpWire::READ_TIMEOUT }
      OptionParser.new do |o|
        o.on("--app DIR") { |v| options[:app] = v }
        o.on("--package DIR") { |v| options[:package] = v }
        o.on("--image TAG") { |v| options[:image] = v }
        o.on("--env NAME=VALUE") { |v| (options[:env] ||= []) << v }
        mode_options(o, options)
        o.on("--port PORT", Integer) { |v| options[:port] = v }
        o.on("--format FORMAT", %w[v2 v1 alb url]) { |v| options[:format] = v }
        o.on("--stage NAME") { |v| options[:stage] = v }
        o.on("--read-timeout SECONDS", Float) { |v| options[:read_timeout] = v }
        o.on("--stream") { options[:stream] = true }
        snapstart_options(o, options)
      end.parse!(@argv)
      return usage_error("unexpected arguments: #{@argv.join(" ")}") unless @argv.empty?
      return usage_error("--read-timeout must be positive") unless options[:read_timeout].positive?
      unless options.values_at(:app, :package, :image).compact.size == 1
        return usage_error("give one of --app DIR, --package DIR and --image TAG")
      end

      kind, dir = what_runs(options)
      if options[:stage] && %w[alb url].include?(options[:format])
        return usage_error("--stage is for API Gateway formats (v2, v1); #{options[:format]} has none")
      end
      if options[:stream]
        unless %w[url v1].include?(options[:format])
          return usage_error("--stream needs --format url or v1: HTTP APIs and ALBs cannot stream")
        end
        return usage_error("--stream needs the native loop: add --mode native") if %w[package image].include?(kind)

        kind = "native-app" if kind == "app"
      end
      kind, snap_start, restore_after = snapstart_setting(kind, options)

      Serve.new(kind: kind, dir: dir, port: options[:port], format: options[:format], stage: options[:stage],
                log: @err, read_timeout: options[:read_timeout], stream: options.fetch(:stream, false),
                snap_start: snap_start, restore_after: restore_after).run
    rescue Errno::EADDRINUSE
      @err.puts "megamode serve: port #{options[:port]} is in use: choose another with --port"
      1
    end

    def snapstart_options(parser, options)
      parser.on("--snapstart") { options[:snapstart] = true }
      parser.on("--restore-after SECONDS", Float) { |v| options[:restore_after] = v }
    end

    # --snapstart and --restore-after, for the `kind` what_runs found: [the kind that runs, whether
    # --snapstart was given, the seconds of freeze before the restore]. SnapStart's lifecycle is the
    # native loop's, so an app directory runs through it. A caller's own
    # AWS_LAMBDA_INITIALIZATION_TYPE=snap-start still reaches the function as before.
    def snapstart_setting(kind, options)
      after = options.fetch(:restore_after, 0.0)
      unless after.finite? && after >= 0
        raise UsageError, "--restore-after must be a finite number of seconds, 0 or more, got #{after}"
      end
      # A bound sleep can keep (it refuses some 9e18 s, after the environment was stopped), and more
      # than any expiry a restore is tried against (credentials and tokens last hours at most).
      if after > MAX_RESTORE_AFTER
        raise UsageError, "--restore-after must be at most #{MAX_RESTORE_AFTER} seconds (a day), got #{after}"
      end
      snap_start = options.fetch(:snapstart, false)
      if options.key?(:restore_after) && !snap_start && ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] != "snap-start"
        raise UsageError, "--restore-after is the freeze between SnapStart's snapshot and its restore: it goes with --snapstart"
      end
      kind = "native-app" if snap_start && kind == "app"
      [kind, snap_start, after]
    end

    # `--mode handler|native`, and its old name `--runtime handler|native`, which still works with a
    # warning: `--runtime` names Lambda's runtime (ruby3.4), as AWS uses the word and `megamode
    # build` does.
    def mode_options(parser, options)
      parser.on("--mode MODE", MODES) { |v| options[:mode] = v }
      parser.on("--runtime MODE", MODES) do |v|
        @err.puts "megamode: --runtime #{v} is deprecated: use --mode #{v} (--runtime names Lambda's runtime)"
        options[:mode] = v
      end
    end

    # What --app or --package and --mode name: [kind, directory], the kind being `app` (the app
    # through this megamode), `package` (the package through its handler.rb) or `native` (the
    # package through its native loop).
    def what_runs(options)
      raise UsageError, "--env gives an image's function its variables: it goes with --image" if options[:env] && !options[:image]
      return image_runs(options[:image], options[:mode], options[:env] || []) if options[:image]

      dir = File.expand_path(options[:app] || options[:package])
      raise UsageError, "the directory #{dir} does not exist" unless File.directory?(dir)
      unless options[:package]
        raise UsageError, "--mode native runs a package: give --package DIR" if options[:mode] == "native"

        return ["app", dir]
      end
      unless File.file?(File.join(dir, "handler.rb"))
        raise UsageError, "#{dir} has no handler.rb: is it a package made by `megamode build`?"
      end

      [options[:mode] == "native" ? "native" : "package", dir]
    end

    # The function's own variables (--env) for the handler process of an image, as JSON.
    IMAGE_VARIABLES = "MEGAMODE_IMAGE_VARIABLES"

    # An image's kind (image, or image-native for --mode native) and its tag, once an engine that
    # runs has it. The handler process runs that engine (MEGAMODE_CONTAINER_ENGINE, which it
    # inherits) and gives the function `env`'s variables (IMAGE_VARIABLES, which it inherits too).
    def image_runs(tag, mode, env)
      variables = env.to_h do |item|
        name, value = item.split("=", 2)
        raise UsageError, "--env #{item}: give NAME=VALUE, or NAME for this shell's value" unless name.match?(/\A[A-Za-z_][A-Za-z0-9_]*\z/)
        raise UsageError, "--env #{name}: this shell has no #{name}: give --env #{name}=VALUE" if value.nil? && !ENV.key?(name)

        [name, value || ENV.fetch(name)]
      end
      require_relative "../runtime/errors"
      require_relative "../build/engine"
      engine = begin
        Megamode::Build::Engine.runnable(instead: "run the image where one runs")
      rescue Megamode::BuildError => e
        raise CannotRun, "--image runs the image with a container engine: #{e.message}"
      end
      unless system(engine, "image", "inspect", tag, out: File::NULL, err: File::NULL)
        raise CannotRun, "#{File.basename(engine)} has no image #{tag}: build it with `megamode build --image " \
                          "--tag #{tag}` in the app (it prints the tag it built), or give a tag `#{File.basename(engine)} " \
                          "images` lists"
      end
      ENV[Megamode::Build::Engine::VARIABLE] = engine
      ENV[IMAGE_VARIABLES] = JSON.generate(variables)
      [mode == "native" ? "image-native" : "image", tag]
    end

    def read_event(file)
      # JSON is UTF-8, whatever the caller's locale says.
      JSON.parse(File.binread(file).force_encoding(Encoding::UTF_8))
    rescue Errno::ENOENT, Errno::EACCES, Errno::EISDIR => e
      @err.puts "megamode: cannot read the event file #{file}: #{e.message}"
      unless file.include?("/")
        @err.puts "megamode: nor is #{file} a sample event's name: #{Samples.names.join(", ")} (`megamode events` lists them)"
      end
      nil
    rescue JSON::ParserError => e
      @err.puts "megamode: the event file #{file} is not JSON: #{e.message.lines.first&.strip}"
      nil
    end

    def usage_error(message)
      @usage_error.call(message)
    end
  end
end
