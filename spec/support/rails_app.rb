# frozen_string_literal: true

require "open3"

# A Rails app with a scaffold, generated offline by this environment's own `rails` (Debian's
# ruby-rails: 6.1 on Debian 12, 7.2 on Debian 13), once per test run, and set up the way a user's app
# would be: Gemfile resolved from the installed gems, database migrated for production.
module RailsApp
  NAME = "blog"

  class << self
    def path
      @path ||= generate
    end

    # The same app with bootsnap, as `rails new` makes it without --minimal: the gem in the Gemfile
    # and `require "bootsnap/setup"` in config/boot.rb.
    def with_bootsnap
      @with_bootsnap ||= begin
        dir = Dir.mktmpdir("megamode-rails-bootsnap-")
        at_exit { FileUtils.rm_rf(dir) }
        app = File.join(dir, NAME)
        FileUtils.cp_r(path, app)
        File.write(File.join(app, "Gemfile"), "#{File.read(File.join(app, "Gemfile"))}" \
                                              "gem \"bootsnap\", require: false\n")
        boot = File.join(app, "config", "boot.rb")
        File.write(boot, "#{File.read(boot)}require \"bootsnap/setup\" # Speed up boot time by caching expensive operations.\n")
        run!("bundle", "lock", "--local", chdir: app)
        app
      end
    end

    def rails_version
      @rails_version ||= run!("rails", "--version", chdir: Dir.tmpdir)[/\d+\.\d+\.\d+/]
    end

    # Runs a command in an app (`rails`, `bin/rails ...`), failing the caller with its output; its
    # output otherwise. StorageRails's app is made with it too.
    def run!(*command, chdir:, env: {})
      out, status = Open3.capture2e(env, *command, chdir: chdir)
      raise "#{command.join(" ")} failed in #{chdir}:\n#{out}" unless status.success?

      out
    end

    private

    def generate
      dir = Dir.mktmpdir("megamode-rails-")
      at_exit { FileUtils.rm_rf(dir) }
      app = File.join(dir, NAME)
      # No asset pipeline: Debian 13 does not package sprockets-rails, which Rails 7.2 would add.
      no_assets = rails_version.to_i >= 7 ? "--skip-asset-pipeline" : "--skip-sprockets"
      run!("rails", "new", app, "--minimal", no_assets, "--skip-bundle", "--skip-git", "--skip-test", chdir: dir)
      keep_installed_gems(File.join(app, "Gemfile"))
      give_production_a_database(File.join(app, "config", "database.yml"))
      run!("bundle", "lock", "--local", chdir: app)
      # Production, as on Lambda: development would need the development gems dropped above.
      production = { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "generate-#{"0" * 64}" }
      run!("bin/rails", "generate", "scaffold", "Post", "title:string", "body:text", chdir: app, env: production)
      run!("bin/rails", "db:migrate", chdir: app, env: production)
      app
    end

    # The generated Gemfile also names development gems and, on 7.2, linters that Debian does not
    # package; an app on Lambda only needs its default group. RubyGems.org is out of reach, so what
    # stays must already be installed.
    def keep_installed_gems(gemfile)
      kept = []
      depth = 0
      File.readlines(gemfile).each do |line|
        if line =~ /\A\s*group\b/ then depth += 1
        elsif depth.positive? && line =~ /\A\s*end\b/ then depth -= 1
        elsif depth.zero? && line =~ /\A\s*source\b/ then kept << line
        elsif depth.zero? && (name = line[/\A\s*gem\s+["']([^"']+)["']/, 1])
          kept << line if !line.include?("platforms:") && installed?(name)
        end
      end
      File.write(gemfile, kept.join)
    end

    # Debian's Rails 7.2 leaves production's database to DATABASE_URL; the app gets a file instead.
    def give_production_a_database(database_yml)
      text = File.read(database_yml)
      production = text[/^production:\n(?:[ \t].*\n?|\n)*/]
      return if production.nil? || production.match?(/^\s+database:/)

      File.write(database_yml, text.sub(production, "#{production.chomp}\n  database: storage/production.sqlite3\n"))
    end

    def installed?(name)
      Gem::Specification.find_by_name(name)
      true
    rescue Gem::MissingSpecError
      false
    end

  end
end
