# frozen_string_literal: true

module Megamode
  module Rack
    # Rack middleware that turns megamode's `X-Forwarded-Prefix` (the API Gateway stage or base path
    # the client saw and the app did not) into `SCRIPT_NAME`, so the links, redirects and asset paths
    # the app generates carry it: `/dev/posts` rather than `/posts`. Any Rack app can use it:
    #
    #   # config.ru
    #   require "megamode/rack/prefix"
    #   use Megamode::Rack::Prefix
    #   run MyApp
    #
    # megamode removes any client-supplied copy of the header, so only megamode's value arrives.
    class Prefix
      HEADER = "HTTP_X_FORWARDED_PREFIX"
      # One or more path segments, each made of URL path characters; nothing that could smuggle a
      # scheme, a host, a query or a traversal into generated links.
      VALID = %r{\A(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+\z}

      def initialize(app)
        @app = app
      end

      def call(env)
        prefix = env[HEADER].to_s.chomp("/")
        if !prefix.empty? && VALID.match?(prefix) && !prefix.split("/").include?("..")
          env["SCRIPT_NAME"] = prefix + env["SCRIPT_NAME"].to_s
        end
        @app.call(env)
      end
    end
  end
end
