# frozen_string_literal: true

# Sets up a Rails app directory that megamode runs locally (`megamode serve --app`, `megamode invoke
# --app`) as its package would be: what the Gemfile line `megamode build` adds (megamode/rails, its
# Railtie) and the config/initializers/megamode.rb it writes (Megamode::Rails.configure) do in the
# package, without a change to the app's files. The handler process gives it to the app's server with
# RUBYOPT (-r this file; LambdaEnvironment.handler_process), so it is loaded first thing by every Ruby
# the server command starts (bundle, then puma), before any gem: it requires nothing then, and
# waits for the app's class (`class Application < Rails::Application`, after Bundler.require in
# config/application.rb) to load the adapter. An app that loads the adapter itself (its own Gemfile
# line and initializer) gets it once: configure runs once per app.
#
# Nothing happens outside the server megamode starts (MEGAMODE=1), nor in an app without
# config/application.rb in its directory (the server's working directory), which is not Rails.
if ENV["MEGAMODE"] == "1" && File.file?(File.join(Dir.pwd, "config", "application.rb"))
  module Megamode
    module Rails
      # The watch for the app's class; LocalRun.app_class_opened does the rest.
      module LocalRun
        def self.app_class_opened(_app_class)
          require_relative "../rails" unless defined?(Megamode::Rails.configure)
          return if defined?(Megamode::Rails::LocalRunRailtie)

          # After every config/initializers file, as the package's initializer runs among them: what
          # the app sets itself there (an asset host, its hosts) stays the app's.
          Megamode::Rails.const_set(:LocalRunRailtie, Class.new(::Rails::Railtie) do
            initializer "megamode.local_run", after: :load_config_initializers do |app|
              Megamode::Rails.configure(app)
            end
          end)
        end

        TRACE = TracePoint.new(:class) do |tp|
          opened = tp.self
          if opened.is_a?(Class) && defined?(::Rails::Application) && opened < ::Rails::Application
            TRACE.disable
            app_class_opened(opened)
          end
        end
        TRACE.enable
      end
    end
  end
end
