# frozen_string_literal: true

require "time"

module Megamode
  module Rack
    # Rack middleware that keeps Server-Sent Events streaming. Rack::ETag reads a body whole to
    # digest it: Rack 2's unless the response has an ETag or a Last-Modified, Rack 3's when the body
    # is an Array-like or unless it says `Cache-Control: no-cache`. Either way an
    # ActionController::Live event stream could reach the client only at its end. An event stream
    # is never worth caching, so one without them gets `Cache-Control: no-cache` and, under Rack 2,
    # a `Last-Modified` of now (what Rails' guides advise for Live on Rack 2; no client of an event
    # stream sends If-Modified-Since). It must sit inside Rack::ETag: the Rails adapter puts it last,
    # next to the app.
    class EventStream
      def initialize(app)
        @app = app
      end

      def call(env)
        status, headers, body = @app.call(env)
        type = headers["content-type"] || headers["Content-Type"]
        return [status, headers, body] unless type.to_s.start_with?("text/event-stream")

        [status, marked(headers), body]
      end

      private

      # A copy: a live response's own headers refuse changes once sent.
      def marked(headers)
        rack2 = ::Rack.release < "3"
        cache, modified = rack2 ? %w[Cache-Control Last-Modified] : %w[cache-control last-modified]
        headers = headers.to_h
        value = headers[cache].to_s
        headers[cache] = value.empty? ? "no-cache" : "#{value}, no-cache" unless value.include?("no-cache")
        headers[modified] ||= Time.now.httpdate if rack2 && !headers.key?("ETag")
        headers
      end
    end
  end
end
