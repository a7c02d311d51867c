# frozen_string_literal: true

require_relative "../invoke"
require_relative "../runtime_api_emulator"

module Megamode::Local
  class Invoke
    # A built package, as Lambda's Ruby runtime runs it: handler.rb is loaded at init and its
    # `handler` method called per event. It loads the megamode the package carries, so this process
    # must not have loaded another (`megamode invoke --package` runs it in a process of its own).
    #
    # With AWS_LAMBDA_INITIALIZATION_TYPE=snap-start, handler.rb runs SnapStart's cycle while it
    # loads, against the Runtime API (there is none here otherwise): a Runtime API emulator in
    # snap-start mode serves the lifecycle alone, and the snapshot the init ends with is restored
    # at once, as Invoke::NativeLoop does it. Events still go to `handler` directly.
    class Package
      # handler.rb ended the process after a failed restore (`exit!`): here, where the process is the
      # local tools', the restore's error is the init's instead.
      class Ended < StandardError; end

      # `restore_after`: with SnapStart, the seconds the app's server is stopped between the snapshot
      # and the restore (this process, which holds the init, cannot stop itself; on Lambda the whole
      # environment is).
      def initialize(root, restore_after: 0)
        @root = root
        @snap_start = ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
        @restore_after = restore_after
      end

      def init
        handler = File.join(@root, "handler.rb")
        return load(handler) unless @snap_start

        with_lifecycle { |emulator| load_ending(handler, emulator) }
        # Restore Duration: from the restore to the end of handler.rb's load (its after-restore
        # hooks), where Lambda's runtime client asks for its first event.
        @restore_ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - @restored_at) * 1000 if @restored_at
      end

      # SnapStart: the milliseconds the restore took (Invoke's REPORT gives it), or nil.
      attr_reader :restore_ms

      # The context is the package's own megamode's class: the one its handler and binding know.
      def call(event, context)
        raise @ended if @ended
        unless ::Megamode.const_defined?(:Context, false)
          raise ::Megamode::Error, "the package's megamode has no Megamode::Context (it predates this " \
                                   "megamode): rebuild it with this megamode"
        end

        TOPLEVEL_BINDING.receiver.send(:handler, event: event, context: ::Megamode::Context.new(**context))
      end

      # This process and the app's server.
      def processes
        [Process.pid, server_pid].compact
      end

      def shutdown
        ::Megamode.shutdown if ::Megamode.respond_to?(:shutdown)
      end

      private

      # An emulator for the lifecycle, at AWS_LAMBDA_RUNTIME_API while handler.rb loads, and a
      # thread that restores the snapshot once the init asked for the restore.
      def with_lifecycle
        emulator = RuntimeApiEmulator.new(snap_start: true)
        saved = ENV.fetch("AWS_LAMBDA_RUNTIME_API", nil)
        ENV["AWS_LAMBDA_RUNTIME_API"] = emulator.address
        restorer = Thread.new { restore_snapshot(emulator) }
        yield emulator
      ensure
        restorer&.kill
        ENV["AWS_LAMBDA_RUNTIME_API"] = saved
        emulator&.close
      end

      # The server is this process's child (Megamode.status would wait for the engine, which the
      # init holds until the restore).
      def restore_snapshot(emulator)
        nil until emulator.wait_for_snapshot(0.05)
        return unless emulator.init_errors.empty?

        Invoke.restore(emulator, seconds: @restore_after, pids: Invoke.descendants(Process.pid), log: $stderr)
        @restored_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end

      # Loads handler.rb; its `exit!` after a failed restore (on Lambda, the end of the environment)
      # becomes the restore's error, which the core posted to `emulator`.
      def load_ending(handler, emulator)
        main = TOPLEVEL_BINDING.receiver
        main.define_singleton_method(:exit!) { |status = false| raise Ended, "handler.rb ended the process (#{status})" }
        load handler
      rescue Ended => e
        error = emulator.restore_errors.first
        # Lambda would discard the environment: every event here gets the restore's error.
        @ended = ::Megamode::BootError.new(error ? JSON.parse(error.body)["errorMessage"] : e.message)
        raise @ended
      ensure
        main.singleton_class.send(:remove_method, :exit!) if main.singleton_methods.include?(:exit!)
      end

      def server_pid
        ::Megamode.status["pid"] if ::Megamode.respond_to?(:status)
      rescue ::Megamode::Error
        nil
      end
    end
  end
end
