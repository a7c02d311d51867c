# frozen_string_literal: true

require_relative "../../../megamode"
require_relative "../invoke"

module Megamode::Local
  class Invoke
    # An app directory, run through this megamode.
    class App
      def initialize(app)
        @app = app
      end

      def init
        Megamode.configure { |c| c.app_root = @app }
        Megamode.boot
      end

      def call(event, context)
        Megamode.handler(event: event, context: Megamode::Context.new(**context))
      end

      # This process and the app's server.
      def processes
        [Process.pid, Megamode.status["pid"]].compact
      end

      def shutdown
        Megamode.shutdown
      end
    end
  end
end
