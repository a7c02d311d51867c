# frozen_string_literal: true

module Megamode
  # Everything megamode raises. The native core raises the subclass for each kind of failure.
  class Error < StandardError; end

  # The event is not one megamode can handle (not a Hash, or an HTTP event missing a field).
  class EventError < Error; end

  # The app's server could not be started or never became ready.
  class BootError < Error; end

  # A setting has a value megamode cannot use.
  class ConfigError < Error; end

  # Talking to the app failed in a way that is not a response, or its response is larger than the
  # event's source accepts.
  class ProxyError < Error; end

  # Lambda's Runtime API could not be reached, or answered what it should not (the native loop,
  # Megamode::Runtime.start).
  class RuntimeApiError < Error; end

  # The app did not answer within the invocation's remaining time.
  class TimeoutError < Error; end

  # The app answered a non-HTTP (pass-through) event with an error status, or with a status
  # MEGAMODE_ERROR_STATUS lists.
  class AppError < Error; end

  # SnapStart: the environment restored from the snapshot failed its after-restore work (the server
  # did not answer again, or an after-restore hook raised), and megamode has posted that on the
  # Runtime API's restore/error call. Lambda discards the environment: whoever called
  # Megamode.snap_start ends the process (the package's handler.rb does).
  class RestoreError < Error; end

  # `megamode build` cannot make a package from the app as it is (the message says what to change).
  class BuildError < Error; end
end
