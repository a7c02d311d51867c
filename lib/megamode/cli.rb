# frozen_string_literal: true

require "json"
require "optparse"

module Megamode
  # `megamode invoke|serve|build`: local tools that behave like Lambda.
  class CLI
    USAGE = <<~TEXT
      Usage:
        megamode invoke --app DIR --event FILE [--event FILE ...] [--timeout SECONDS]
            Runs the Rack app in DIR like one warm Lambda environment receiving the events in order.
            stdout: one JSON line per event; stderr: the Lambda-style log.
        megamode version
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
    end

    def run
      case (command = @argv.shift)
      when "invoke" then invoke
      when "serve", "build"
        usage_error("`megamode #{command}` is not in this version yet; `megamode invoke --app DIR` runs an app locally")
      when "version", "--version", "-v"
        require_relative "version"
        @out.puts Megamode::VERSION
        0
      when nil, "help", "--help", "-h"
        @out.puts USAGE
        command.nil? ? 2 : 0
      else
        usage_error("unknown command #{command.inspect}")
      end
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    end

    private

    def invoke
      options = { events: [], timeout: 30.0 }
      OptionParser.new do |o|
        o.on("--app DIR") { |v| options[:app] = v }
        o.on("--package DIR") { |v| options[:package] = v }
        o.on("--event FILE") { |v| options[:events] << v }
        o.on("--timeout SECONDS", Float) { |v| options[:timeout] = v }
      end.parse!(@argv)
      return usage_error("unexpected arguments: #{@argv.join(" ")}") unless @argv.empty?
      return usage_error("--package is not supported yet; use --app DIR") if options[:package]
      return usage_error("give the app with --app DIR") unless options[:app]
      return usage_error("give at least one --event FILE") if options[:events].empty?
      return usage_error("--timeout must be positive") unless options[:timeout].positive?

      app = File.expand_path(options[:app])
      return usage_error("the app directory #{options[:app]} does not exist") unless File.directory?(app)

      # Every event is read before anything starts, so a bad file costs nothing.
      events = options[:events].map { |file| read_event(file) }
      return 2 if events.include?(nil)

      require_relative "local_invoke"
      LocalInvoke.new(app: app, timeout: options[:timeout], out: @out, log: @err).run(events)
      0
    end

    def read_event(file)
      JSON.parse(File.read(file))
    rescue Errno::ENOENT, Errno::EACCES, Errno::EISDIR => e
      @err.puts "megamode: cannot read the event file #{file}: #{e.message}"
      nil
    rescue JSON::ParserError => e
      @err.puts "megamode: the event file #{file} is not JSON: #{e.message.lines.first&.strip}"
      nil
    end

    def usage_error(message)
      @err.puts "megamode: #{message}"
      @err.puts USAGE
      2
    end
  end
end
