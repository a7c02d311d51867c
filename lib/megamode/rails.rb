# frozen_string_literal: true

require_relative "version"
require_relative "rack/prefix"
require_relative "rack/event_stream"
require_relative "rack/hooks"
require_relative "rack/lifecycle"

module Megamode
  # The Rails adapter: pure Ruby, loaded inside the app (the Gemfile line `megamode build` adds
  # requires it), never the native extension. It changes nothing unless megamode runs the app
  # (megamode sets MEGAMODE=1 for the server it starts), so development and test are untouched.
  module Rails
    # Hosts API Gateway and Function URLs serve from, for host authorization: HTTP and REST APIs on
    # their execute-api host, Function URLs on theirs. Custom domains are the app's to add
    # (config.hosts, or MEGAMODE_HOSTS as a comma-separated list). Not anchored: host
    # authorization anchors them itself, with an optional port.
    AWS_HOSTS = [
      /[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/,
      /[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws/
    ].freeze
    LOCAL_HOSTS = ["localhost", "127.0.0.1"].freeze

    class << self
      def active?
        ENV["MEGAMODE"] == "1"
      end

      # What config/initializers/megamode.rb calls: everything that can be set once the app's own
      # configuration has run and before Rails builds the middleware stack.
      # Once per app: a second call (the app's own initializer, then a local run's; see
      # megamode/local/rails_local_run) changes nothing, as a second Prefix would prefix SCRIPT_NAME twice.
      def configure(app)
        return unless active?
        return if configured.include?(app)

        configured << app
        config = app.config
        app.middleware.insert_before(0, Megamode::Rack::Prefix)
        app.middleware.insert_after(Megamode::Rack::Prefix, RequestScriptName)
        # First of all, ahead of host authorization and any SSL redirect: megamode's SnapStart
        # requests are for no host and come over plain HTTP. The hooks run inside the reloader, as
        # a request's code does, so an app's hook that queries returns its connection.
        app.middleware.insert_before(0, Megamode::Rack::Lifecycle, wrap: app.reloader)
        app.routes.singleton_class.prepend(RoutesScriptName)
        # Last, so inside Rack::ETag, which would otherwise read a Live event stream whole.
        app.middleware.use(Megamode::Rack::EventStream)
        # No front server on Lambda serves X-Sendfile: send_file must send the bytes itself.
        config.action_dispatch.x_sendfile_header = nil
        admit_hosts(config)
        # Rails prefixes routes with SCRIPT_NAME but not asset paths: with no asset host of the
        # app's own, one per request carries the stage (/dev/assets/...), but none for a path that
        # already carries it (a route's path given to an asset helper: image_tag rails_blob_path(x)).
        # `request` is optional: Rails passes it only when it has one.
        config.action_controller.asset_host ||= ->(source, request = nil) { asset_host_for(request, source) }
        # Lambda has no front server for public/.
        config.public_file_server.enabled = true
        # The package is built ahead; compiling assets on a request would write into the app.
        config.assets.compile = false if config.respond_to?(:assets)
        config.colorize_logging = false
      end

      # A logger on STDOUT, in sync, so every line reaches CloudWatch inside its invocation.
      def stdout_logger(config)
        $stdout.sync = true
        logger = ActiveSupport::Logger.new($stdout)
        logger.formatter = config.log_formatter if config.respond_to?(:log_formatter) && config.log_formatter
        ActiveSupport::TaggedLogging.new(logger)
      end

      # The stage-prefixed base URL for an asset path, or nil (the path as it is) when there is no
      # prefix or `source` already starts with it. Every ActionView helper that takes a path or a URL
      # (image_tag, asset_path and asset_url, video_tag, audio_tag, stylesheet_link_tag,
      # javascript_include_tag, ...) asks the asset host with `source` the path it computed: an
      # asset's (/assets/app.css), a public file's, or a path the app gave, which, from a route
      # helper (rails_blob_path, url_for(attachment)), carries SCRIPT_NAME already. A full URL never
      # gets here. As Rails' relative_url_root does, a path under /<prefix>/ counts as carrying it.
      # asset_url's nil falls back on the request's base URL, which gives the same full URL.
      def asset_host_for(request, source = nil)
        prefix = request&.script_name.to_s
        return nil if prefix.empty?

        path = source.to_s
        return nil if path == prefix || path.start_with?("#{prefix}/")

        "#{request.protocol}#{request.host_with_port}#{prefix}"
      end

      private

      def configured
        @configured ||= []
      end

      def admit_hosts(config)
        # An empty list admits every host (production's default); only a list needs ours added.
        return if !config.respond_to?(:hosts) || config.hosts.empty?

        extra = ENV.fetch("MEGAMODE_HOSTS", "").split(",").map(&:strip).reject(&:empty?)
        config.hosts.concat(AWS_HOSTS + LOCAL_HOSTS + extra)
      end
    end

    # Route helpers called without a request's url_options (Rails.application.routes.url_helpers)
    # know no SCRIPT_NAME: Active Storage's disk service makes its URLs so (a blob's redirect to
    # /rails/active_storage/disk/...), in 6.1 from ActiveStorage::Current.host, whose path it drops,
    # in 7.x from ActiveStorage::Current.url_options, which has no script_name. Such a helper falls
    # back on the route set's relative_url_root: during a request megamode prefixed, that is the
    # request's SCRIPT_NAME (RequestScriptName holds it, for the request's thread or fiber). A
    # helper given a script_name (every one in a controller or view) is unchanged.
    module RoutesScriptName
      def relative_url_root
        RequestScriptName.current || super
      end
    end

    # Rack middleware, right after Megamode::Rack::Prefix: holds the request's SCRIPT_NAME while the
    # app answers it (Thread.current's [] is fiber-local), for RoutesScriptName.
    class RequestScriptName
      KEY = :megamode_script_name

      def self.current
        Thread.current[KEY]
      end

      def initialize(app)
        @app = app
      end

      def call(env)
        saved = Thread.current[KEY]
        script_name = env["SCRIPT_NAME"].to_s
        Thread.current[KEY] = script_name.empty? ? nil : script_name
        @app.call(env)
      ensure
        Thread.current[KEY] = saved
      end
    end

    if defined?(::Rails::Railtie)
      # What must happen before the app's initializers: the logger is created by Rails' own
      # bootstrap, so a file logger would otherwise be in place already.
      class Railtie < ::Rails::Railtie
        initializer "megamode.logger", before: :initialize_logger do |app|
          next unless Megamode::Rails.active?

          app.config.logger = Megamode::Rails.stdout_logger(app.config)
          app.config.colorize_logging = false
        end
      end
    end
  end
end
