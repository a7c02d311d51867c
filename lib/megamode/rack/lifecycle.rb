# frozen_string_literal: true

require "rack/utils"
require_relative "hooks"
require_relative "phase_record"

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
    #
    # Every process of the server runs every phase, though megamode's request reaches only one of
    # them (puma in cluster mode): the one that runs a phase adds it to the server's PhaseRecord,
    # and each process, before any request, runs in order the phases recorded that it has not run
    # (one stat per request when there are none). A hook that raises there is logged as above and
    # the request answered 500 saying a hook failed, without its name or error (the client's to
    # see; the log has both): the process
    # serves nothing with the snapshot's state, as an environment whose after-restore hooks fail
    # serves nothing, and tries again on its next request.
    class Lifecycle
      HEADER = "HTTP_X_MEGAMODE_LIFECYCLE"
      TOKEN_HEADER = "HTTP_X_MEGAMODE_LIFECYCLE_TOKEN"
      TOKEN_ENV = "MEGAMODE_LIFECYCLE_TOKEN"
      PHASES = { "before-snapshot" => :before_snapshot, "after-restore" => :after_restore }.freeze
      PHASE_NAMES = PHASES.invert.freeze

      # `hooks`: the registry to run (the process's own by default). `wrap`: what the hooks run
      # inside, anything with `wrap { }` (Rails' reloader, so that hooks run as app code does in a
      # request: connections returned after, autoloaded constants current).
      def initialize(app, hooks: Hooks.default, wrap: nil)
        @app = app
        @hooks = hooks
        @wrap = wrap
        @record = nil
      end

      def call(env)
        unless env.key?(HEADER)
          missed = catch_up
          return missed ? refuse(*missed) : @app.call(env)
        end
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

      # The server's record of phases; nil when megamode did not start the server (no token): then
      # no phase ever runs, and a request costs one look in ENV.
      def record
        token = ENV.fetch(TOKEN_ENV, "")
        return nil if token.empty?

        @record = PhaseRecord.new(token) unless @record&.token == token
        @record
      end

      # Runs the recorded phases this process has not run yet. nil when there were none or all
      # ran; the phase and the HookFailed of the hook that raised otherwise (phases after it wait).
      def catch_up(record = self.record)
        return nil if record.nil? || record.size <= @hooks.applied

        @hooks.exclusive do
          record.since(@hooks.applied).each do |phase|
            run_hooks(phase) if phase
          rescue HookFailed => e
            return [phase, e]
          else
            @hooks.applied += 1
          end
        end
        nil
      end

      # megamode's request: first what this process missed, then the phase, then the phase recorded
      # for the server's other processes.
      def run(name, phase)
        @hooks.exclusive do
          record = self.record
          missed, failure = catch_up(record)
          return failed(PHASE_NAMES.fetch(missed), failure) if failure

          run_hooks(phase)
          @hooks.applied = record.add(phase)
        rescue SystemCallError, IOError => e
          # The hooks ran here, but the server's other processes cannot learn of it: the phase
          # fails rather than leave them with the snapshot's state (megamode's TMPDIR is writable).
          error = RuntimeError.new("cannot record #{name} for the server's other processes in " \
                                   "#{record.path} (#{e.class}: #{e.message}): make TMPDIR writable")
          error.set_backtrace(e.backtrace)
          return failed(name, HookFailed.new("megamode.record", error))
        end
        [204, { "x-megamode-lifecycle-done" => name }, []]
      rescue HookFailed => e
        failed(name, e)
      end

      def run_hooks(phase)
        @wrap ? @wrap.wrap { @hooks.run(phase) } : @hooks.run(phase)
      end

      def failed(name, failure)
        hook = log(name, failure)
        answer(500, failure.summary, "x-megamode-lifecycle-failed" => hook)
      end

      # An ordinary request while this process could not run a phase's hooks: the hook's name and
      # error are only in the log (a message may hold what a client must not see, and an unnamed
      # hook's name is its file:line, a path of the app's source).
      def refuse(phase, failure)
        log(PHASE_NAMES.fetch(phase), failure)
        answer(500, "a SnapStart hook failed in this server process, which must run it before it serves: " \
                    "see the function's log for which and why; it tries again on the next request\n")
      end

      # stderr reaches Lambda's log through megamode, with the hook's name and where it raised.
      # Answers the hook's name as a header value may hold it (one line of printable characters; a
      # name given as a Symbol or String may not be).
      def log(name, failure)
        hook = failure.hook.gsub(/[^[:print:]]/, "?")
        warn "megamode: #{name} hook #{hook} failed: #{failure.summary}\n" \
             "#{Array(failure.error.backtrace).first(10).map { |line| "  #{HookFailed.text(line)}" }.join("\n")}"
        hook
      end

      def answer(status, text, headers = {})
        [status, { "content-type" => "text/plain", "content-length" => text.bytesize.to_s }.merge(headers), [text]]
      end
    end
  end
end
