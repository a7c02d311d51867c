# frozen_string_literal: true

module Megamode
  class Build
    # The files an app keeps secrets in by convention, which a package leaves out: anyone who may
    # download the function's code could read them, and Lambda gives the app its secrets through the
    # function's environment instead. Rails' master key (config/master.key) and per-environment keys
    # (config/credentials/*.key) decrypt its credentials; the `.env*` files at its root (dotenv's
    # `.env`, `.env.production`..., direnv's `.envrc`: `/.env*` in the .gitignore Rails generates)
    # hold values for the environment. Their templates stay: `.env.example`, `.env.sample`,
    # `.env.template` (dotenv's convention) and `.env*.erb` (the exception Rails' .gitignore makes)
    # are committed with names and no values. The encrypted credentials (config/credentials.yml.enc)
    # stay too: the app needs them, and the key opens them.
    module Secrets
      # Suffixes of `.env` files that are templates, not secrets.
      TEMPLATES = %w[.example .sample .template .erb].freeze

      module_function

      # The app's secret files, as paths relative to `app`, sorted.
      def find(app)
        env = Dir.children(app).select { |name| name.start_with?(".env") && TEMPLATES.none? { |t| name.end_with?(t) } }
        keys = children(File.join(app, "config", "credentials")).select { |name| name.end_with?(".key") }
                                                                .map { |name| "config/credentials/#{name}" }
        master = children(File.join(app, "config")).include?("master.key") ? ["config/master.key"] : []
        (env + keys + master).sort
      end

      def children(dir)
        File.directory?(dir) ? Dir.children(dir) : []
      end

      # What the build says once about the secrets it left out (`paths`): which, and how the app gets
      # them on Lambda instead (`rails`: the template has a RailsMasterKey parameter).
      def left_out_message(paths, rails:)
        keys, env = paths.partition { |path| path.end_with?(".key") }
        ways = []
        where = rails ? "the template's RailsMasterKey parameter" : "in the function's environment"
        ways << "its key as RAILS_MASTER_KEY (#{where}: see \"The secret key\" in megamode's README)" unless keys.empty?
        unless env.empty?
          ways << "what #{env.join(", ")} #{env.size == 1 ? "holds" : "hold"} as the function's environment variables"
        end
        "left out #{paths.join(", ")}: secrets do not go into a package, which anyone who can download the " \
          "function's code can read. On Lambda, give the app #{ways.join(", and ")}. --keep-secret PATH " \
          "(KEEP_SECRETS=PATH,... for rake megamode:build) packages one anyway"
      end
    end
  end
end
