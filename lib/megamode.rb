# frozen_string_literal: true

require_relative "megamode/version"
require_relative "megamode/runtime/errors"
require_relative "megamode/runtime/config"
require_relative "megamode/runtime/context"
require_relative "megamode/runtime/package_target"
# Before the extension loads: a package built for another Ruby says so here. Then what the package's
# gems need at boot, before anything starts the app's server.
Megamode::PackageTarget.check!&.then { |target| Megamode::PackageTarget.apply_environment(target) }
require_relative "megamode/runtime/native"

# megamode runs an unchanged Rack app on AWS Lambda: the app runs as its own server process, and
# each Lambda event is proxied to it by megamode's native core.
module Megamode
  @lock = Mutex.new

  class << self
    # The Lambda handler: `event` is the Hash the Ruby runtime passes, `context` its context object
    # (it answers aws_request_id and get_remaining_time_in_millis; invoked_function_arn,
    # function_name, function_version, memory_limit_in_mb, log_group_name, log_stream_name and
    # trace_id when it has them: Lambda's own has no trace_id, and the trace id is then
    # ENV["_X_AMZN_TRACE_ID"], where Lambda's runtime puts it). Locally, a Megamode::Context.
    def handler(event:, context:)
      engine.handle(event, context)
    end

    # Copies the app (when MEGAMODE_COPY_APP says so) and starts its server without waiting for it;
    # call it when the handler file is loaded, so the server boots during Lambda's init phase.
    # Idempotent.
    def boot
      engine.boot
      self
    end

    # Blocks until the server answers (starting it if needed).
    def wait_ready
      engine.wait_ready
      self
    end

    # SnapStart with Lambda's Ruby runtime client, which leaves the lifecycle to the image: the
    # package's handler.rb calls this while the client loads it, when AWS_LAMBDA_INITIALIZATION_TYPE
    # is snap-start. It runs the cycle the native loop runs in its init: waits for the server to be
    # ready, asks it for the paths of MEGAMODE_PRIME, runs the app's before-snapshot hooks, closes
    # megamode's connection to the app, then calls the Runtime API's restore/next (at
    # $AWS_LAMBDA_RUNTIME_API, or `runtime_api`), where Lambda takes the snapshot; it returns in an
    # environment restored from it, once the server answers again and the after-restore hooks ran,
    # so the runtime client goes on to its first event. Raises the init's error (a server not
    # ready, a before-snapshot hook that failed: the client reports it as the init error), or,
    # after the restore, Megamode::RestoreError, the failure already posted on restore/error: the
    # caller then ends the process, as Lambda discards that environment. Raises ConfigError, having
    # done nothing, in an init that is not SnapStart's, or when the cycle ran already.
    def snap_start(runtime_api: ENV.fetch("AWS_LAMBDA_RUNTIME_API", nil))
      if runtime_api.to_s.empty?
        raise ConfigError, "Megamode.snap_start talks to Lambda's Runtime API, and AWS_LAMBDA_RUNTIME_API is not " \
                           "set: call it only in Lambda's init (handler.rb does, with SnapStart)"
      end

      engine.snap_start(runtime_api)
      self
    end

    def configure
      yield config
      # A new configuration needs a new server.
      shutdown
      config
    end

    def config
      @config ||= Config.new
    end

    # The server's pid and port, whether it is ready, and how many connections were opened to it.
    def status
      engine.status
    end

    # Stops the server and everything it started.
    def shutdown
      @lock.synchronize do
        @engine&.shutdown
        @engine = nil
      end
    end

    # Stops the server and forgets the configuration (for tests, and for embedding several apps in
    # turn).
    def reset!
      shutdown
      @config = nil
    end

    private

    def engine
      @engine || @lock.synchronize { @engine ||= Native::Engine.new(config.to_settings) }
    end

    # The native Runtime API loop at `address` (host:port): Megamode::Runtime.start's wiring.
    def run_runtime(address, events)
      engine.run_runtime(address, events)
    end
  end
end

at_exit { Megamode.shutdown }
