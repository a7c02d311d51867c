# frozen_string_literal: true

require "rack/utils"
require_relative "hooks"

module Megamode
  module Rack
    # Rack middleware that runs the app's SnapStart hooks (Megamode.before_snapshot and
    # Megamode.after_restore) when megamode's core asks: `POST /` with `X-Megamode-Lifecycle:
    # before-snapshot` (or `after-restore`) and `X-Megamode-Lifecycle-Token`, the token megamode put
    # in the server's MEGAMODE_LIFECYCLE_TOKEN. It must come first in the stack, so that nothing of
    # the app's (host authorization, an SSL redirect) answers megamode's request. The Rails adapter
    # puts it there; a plain Rack app:
    #
    #   # config.ru
    #   require "megamode/rack/lifecycle"
    #   use Megamode::Rack::Lifecycle
    #   run MyApp
    #
    # Answers: 204 with `X-Megamode-Lifecycle-Done: <phase>` when every hook ran; 500 with
    # `X-Megamode-Lifecycle-Failed: <hook>` and `Class: message` when one raised (the rest do not
    # run); 403 for a wrong or missing token, or when megamode did not start the server (no
    # token in its environment): a client's copy of the header never reaches the app or its hooks
    # (megamode strips these headers from events anyway); 400 for an unknown phase. Every other
    # request goes to the app untouched.
    class Lifecycle
      HEADER = "HTTP_X_MEGAMODE_LIFECYCLE"
      TOKEN_HEADER = "HTTP_X_MEGAMODE_LIFECYCLE_TOKEN"
      TOKEN_ENV = "MEGAMODE_LIFECYCLE_TOKEN"
      PHASES = { "before-snapshot" => :before_snapshot, "after-restore" => :after_restore }.freeze

      # `hooks`: the registry to run (the process's own by default). `wrap`: what the hooks run
      # inside, anything with `wrap { }` (Rails' reloader, so that hooks run as app code does in a
      # request: connections returned after, autoloaded constants current).
      def initialize(app, hooks: Hooks.default, wrap: nil)
        @app = app
        @hooks = hooks
        @wrap = wrap
        # One phase at a time: megamode asks once per phase, but a retry must not overlap.
        @lock = Mutex.new
      end

      def call(env)
        return @app.call(env) unless env.key?(HEADER)
        return answer(403, "refused: not megamode's lifecycle request\n") unless authorized?(env)

        name = env[HEADER].to_s
        phase = PHASES[name]
        return answer(400, "unknown lifecycle phase #{name.inspect} (#{PHASES.keys.join(" or ")})\n") unless phase

        run(name, phase)
      end

      private

      def authorized?(env)
        expected = ENV.fetch(TOKEN_ENV, "")
        given = env[TOKEN_HEADER].to_s
        !expected.empty? && ::Rack::Utils.secure_compare(expected, given)
      end

      def run(name, phase)
        @lock.synchronize { @wrap ? @wrap.wrap { @hooks.run(phase) } : @hooks.run(phase) }
        [204, { "x-megamode-lifecycle-done" => name }, []]
      rescue HookFailed => e
        # A header value is one line of printable characters; a name given as a Symbol or String may not be.
        hook = e.hook.gsub(/[^[:print:]]/, "?")
        # stderr reaches Lambda's log through megamode, with the hook's name and where it raised.
        warn "megamode: #{name} hook #{hook} failed: #{e.error.class}: #{e.error.message}\n" \
             "#{Array(e.error.backtrace).first(10).map { |line| "  #{line}" }.join("\n")}"
        answer(500, "#{e.error.class}: #{e.error.message}", "x-megamode-lifecycle-failed" => hook)
      end

      def answer(status, text, headers = {})
        [status, { "content-type" => "text/plain", "content-length" => text.bytesize.to_s }.merge(headers), [text]]
      end
    end
  end
end
