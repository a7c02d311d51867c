# frozen_string_literal: true

require "erb"
require "yaml"

module Megamode
  class Build
    # What a Rails app needs in production that it makes with a command of its own, and that a
    # package cannot make at runtime: a fresh app has neither, and every page it serves is a 500
    # until it has both. Checked on the app before the build packs anything; each problem names the
    # command that fixes it.
    #
    # - The production database, when it is a SQLite file (config/database.yml's production
    #   `adapter: sqlite3` with a `database:` path): the file must exist in the app, which ships it.
    # - The precompiled assets, when the app has an asset pipeline and an app/assets directory:
    #   public/assets must hold the manifest that assets:precompile writes. Production never
    #   compiles an asset; a page linking one fails. The pipeline is propshaft when its Gemfile.lock
    #   has it (only a Gemfile names it, and Bundler.require loads it), sprockets when the lock has
    #   sprockets-rails and the app loads it: its Gemfile names it, or config/application.rb
    #   requires rails/all or sprockets/railtie (Rails 6.1's `rails` depends on sprockets-rails, so
    #   an app made with --skip-sprockets has it locked, and its railtie commented out).
    class Prerequisites
      DATABASE_COMMAND = "RAILS_ENV=production bin/rails db:prepare"
      ASSETS_COMMAND = "RAILS_ENV=production SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile"
      ASSET_GEMS = %w[sprockets-rails propshaft].freeze
      # The manifests of sprockets (3 and 4: .sprockets-manifest-<digest>.json; 2: manifest-<digest>.json)
      # and of propshaft (.manifest.json; manifest.json before 0.7).
      MANIFESTS = %w[.sprockets-manifest-*.json manifest-*.json .manifest.json manifest.json].freeze

      attr_reader :problems, :notes

      # `env`: the build's environment (DATABASE_URL, which Rails prefers to database.yml).
      def initialize(app, env: ENV)
        @app = app
        @env = env
        @notes = []
        @problems = [*database_problems, assets_problem].compact
      end

      private

      def database_problems
        path = File.join(@app, "config", "database.yml")
        return [] unless File.file?(path)

        if @env["DATABASE_URL"].to_s != ""
          @notes << "the production database is not checked: DATABASE_URL is set, and Rails takes it over " \
                    "config/database.yml (give the function the same on Lambda)"
          return []
        end
        production = read_database_yml(path)
        return [] unless production.is_a?(Hash)

        databases(production).filter_map { |name, config| sqlite_problem(name, config) }
      end

      # config/database.yml's production entry, read as Rails reads it: ERB, then YAML (nil, with a
      # note, when it cannot be read so).
      def read_database_yml(path)
        text = ERB.new(Build.read_text(path)).result(ERBScope.new.scope)
        YAML.safe_load(text, aliases: true)&.fetch("production", nil)
      rescue StandardError, ScriptError => e
        @notes << "the production database is not checked: config/database.yml could not be read without " \
                  "the app (#{e.class}: #{e.message.lines.first.to_s.strip[0, 200]})"
        nil
      end

      # An empty object to evaluate database.yml's ERB on: it sees ENV and Ruby, not the build.
      class ERBScope
        def scope
          binding
        end
      end

      # name => config of production's databases: one (Rails' two-tier form) or several (three-tier).
      def databases(production)
        return { "production" => production } if production.key?("adapter") || production.key?("database") ||
                                                  production.key?("url")

        production.select { |_, config| config.is_a?(Hash) }
      end

      def sqlite_problem(name, config)
        return nil unless config["adapter"].to_s == "sqlite3" && config["url"].to_s.empty?

        database = config["database"].to_s
        return nil if database.empty? || database == ":memory:" || database.start_with?("file:")
        return nil if File.exist?(File.expand_path(database, @app))

        which = name == "production" ? "production database" : "production database #{name.inspect}"
        "the #{which} (config/database.yml: SQLite, #{database}) does not exist in the app, so every query " \
          "would fail: make it with `#{DATABASE_COMMAND}`"
      end

      def assets_problem
        lock_path = File.join(@app, "Gemfile.lock")
        lock = File.file?(lock_path) ? Build.read_text(lock_path) : ""
        gem = ASSET_GEMS.find { |name| AppKind.locked_version(lock, name) && loaded?(name) }
        return nil unless gem && File.directory?(File.join(@app, "app", "assets"))

        public_assets = File.join(@app, "public", "assets")
        return nil if MANIFESTS.any? { |m| Dir.glob(m, File::FNM_DOTMATCH, base: public_assets).any? }

        "the assets are not precompiled (#{gem}, app/assets; no manifest in public/assets), and production " \
          "compiles none, so every page that links one would fail: precompile them with `#{ASSETS_COMMAND}`"
      end

      def loaded?(gem)
        return true if gem == "propshaft"

        gemfile = File.join(@app, "Gemfile")
        application = File.join(@app, "config", "application.rb")
        (File.file?(gemfile) && Build.read_text(gemfile).match?(/^\s*gem\s+["']sprockets-rails["']/)) ||
          (File.file?(application) &&
           Build.read_text(application).match?(%r{^\s*require\s+["'](?:rails/all|sprockets/railtie)["']}))
      end
    end
  end
end
