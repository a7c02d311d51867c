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
        # The Railtie registers them too; again here for an app whose Gemfile loads megamode late
        # (require: false), which has no Railtie. Named, so they are never registered twice.
        SnapStart.register
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

    # megamode's own SnapStart hooks for a Rails app, so that it needs no code of its own for what
    # Rails holds. Registered as megamode's (Megamode::Rack::Hooks): they run after the app's
    # before_snapshot hooks, which may still query, and before its after_restore hooks, which may
    # want a fresh seed. What a restore makes stale that Rails does not know of (the app's own
    # clients, credentials, IAM database tokens) is the app's to handle in its own hooks.
    module SnapStart
      class << self
        def register(hooks = Megamode::Rack::Hooks.default)
          hooks.add(:before_snapshot, "megamode.active_record", own: true) { close_active_record }
          hooks.add(:before_snapshot, "megamode.cache", own: true) { close_cache }
          hooks.add(:after_restore, "megamode.random", own: true) { reseed }
          hooks.add(:after_restore, "megamode.active_record", own: true) { drop_idle_active_record }
        end

        # Every connection of every pool (each database, role and shard) closed: a socket to the
        # database would be in every environment restored from the snapshot, and the database may
        # have dropped it long before. Active Record connects again on the next query.
        def close_active_record
          active_record_pools.each(&:disconnect!)
        end

        # Idle connections dropped after a restore: closed before the snapshot, none should be
        # there, but one opened since (by a thread of the app's) is a socket from before it.
        # Connections in use are their thread's: disconnecting them would break its query.
        def drop_idle_active_record
          active_record_pools.each(&:flush!)
        end

        # The pools of every connection handler, or none when Active Record is not loaded (then it
        # has connected nowhere). 6.1 and 7.0 list every role's pools with all_connection_pools,
        # which 7.1 deprecates for connection_pool_list(:all); 6.1 with legacy connection handling
        # keeps one handler per role.
        def active_record_pools
          # Not yet loaded (autoload? names its file): asking it would load it for nothing.
          return [] if !defined?(::ActiveRecord.autoload?) || ::ActiveRecord.autoload?(:Base) ||
                       !defined?(::ActiveRecord::Base)

          base = ::ActiveRecord::Base
          legacy = base.respond_to?(:legacy_connection_handling) && base.legacy_connection_handling
          handlers = [base.connection_handler]
          handlers |= base.connection_handlers.values if legacy
          before71 = ::ActiveRecord.gem_version < Gem::Version.new("7.1")
          handlers.flat_map { |h| before71 ? h.all_connection_pools : h.connection_pool_list(:all) }
        end

        # The cache store's connections, where Rails' store exposes them: the Redis cache store's
        # client (`redis`: a Redis, a ConnectionPool of them, or a redis-client pool), closed and
        # opened again on the next use. The memory and file stores hold none. The Memcache store
        # does not expose its Dalli client, which reconnects after a failed request.
        def close_cache
          store = defined?(::Rails.cache) && ::Rails.cache
          return unless store.respond_to?(:redis)

          redis = store.redis
          if redis.respond_to?(:reload) then redis.reload(&:close) # connection_pool: each one, made again on use
          elsif redis.respond_to?(:close) then redis.close
          end
        end

        # Every restored environment would otherwise draw the same rand, shuffle and sample as
        # every other: a new seed from the OS. SecureRandom needs nothing: it reads the OS's
        # generator (getrandom) on each call. OpenSSL's own generator (OpenSSL::Random, key
        # generation) keeps its state in the process, so fresh entropy is mixed into it.
        def reseed
          Random.srand
          OpenSSL::Random.seed(Random.urandom(32)) if defined?(OpenSSL::Random)
        end
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

        # Rails without code for SnapStart: megamode's hooks, whatever the app registers.
        initializer "megamode.snapstart" do
          Megamode::Rails::SnapStart.register if Megamode::Rails.active?
        end
      end
    end
  end
end
