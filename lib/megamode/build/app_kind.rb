# frozen_string_literal: true

module Megamode
  class Build
    # What kind of app the build is looking at, from the app itself: a Rails app has a
    # config/application.rb defining a Rails::Application (the core's rule, the one megamode's log
    # prefix follows; API-only when it sets config.api_only);
    # anything else with a config.ru is a Rack app, named after the framework its lock file has.
    class AppKind
      FRAMEWORKS = %w[sinatra hanami roda grape].freeze

      attr_reader :framework, :version

      def self.detect(app)
        # The core's rule decides (the runtime asks the same); loaded here, not with the build, which
        # in a container needs nothing compiled on this machine.
        require_relative "../runtime/native"
        application = File.join(app, "config", "application.rb")
        lock = File.exist?(File.join(app, "Gemfile.lock")) ? Build.read_text(File.join(app, "Gemfile.lock")) : ""
        if Native.rails_app?(app)
          api = Build.read_text(application).match?(/^\s*config\.api_only\s*=\s*true/)
          new(api ? :rails_api : :rails, locked_version(lock, "railties"))
        else
          name = FRAMEWORKS.find { |f| locked_version(lock, f) }
          new(:rack, name && locked_version(lock, name), name)
        end
      end

      def self.locked_version(lock, name)
        lock[/^    #{Regexp.escape(name)} \(([^)\s]+)/, 1]
      end

      def initialize(type, version, framework = nil)
        @type = type
        @version = version
        @framework = framework
      end

      def rails?
        @type != :rack
      end

      def api_only?
        @type == :rails_api
      end

      def to_s
        versioned = ->(name) { @version ? "#{name} #{@version}" : name }
        case @type
        when :rails then "a Rails app (#{versioned["Rails"]})"
        when :rails_api then "an API-only Rails app (#{versioned["Rails"]})"
        else @framework ? "a Rack app (#{versioned[@framework.capitalize]})" : "a plain Rack app"
        end
      end
    end
  end
end
