# frozen_string_literal: true

require_relative "../invoke"

module Megamode::Local
  class Invoke
    # A built package, as Lambda's Ruby runtime runs it: handler.rb is loaded at init and its
    # `handler` method called per event. It loads the megamode the package carries, so this process
    # must not have loaded another (`megamode invoke --package` runs it in a process of its own).
    class Package
      def initialize(root)
        @root = root
      end

      def init
        load File.join(@root, "handler.rb")
      end

      # The context is the package's own megamode's class: the one its handler and binding know.
      def call(event, context)
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

      def server_pid
        ::Megamode.status["pid"] if ::Megamode.respond_to?(:status)
      rescue ::Megamode::Error
        nil
      end
    end
  end
end
