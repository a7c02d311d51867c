# frozen_string_literal: true

require "monitor"

module Megamode
  module Rack
    # The SnapStart hooks of the app's server: what runs in it before Lambda snapshots the
    # environment and after it restores one. Plain Ruby, no Rails needed: megamode's core asks for a
    # phase with a request that Megamode::Rack::Lifecycle answers by running the phase's hooks.
    #
    # Order: before_snapshot hooks run in reverse registration order, after_restore hooks in
    # registration order, as AWS's Lambda runtime for Rust and Java's CRaC order theirs. A hook
    # registered later usually depends on what earlier ones set up (the app's cache warmer on Active
    # Record), so it is put away first and set up again last. megamode's own hooks (Rails' pools,
    # Random's seed) count as registered before every hook of the app's, wherever they are added:
    # they close last before the snapshot and reopen first after the restore.
    #
    # A hook's name is the one it was given, or its block's source location (file:line). A name
    # given again in the same phase replaces that hook in its place, so a file loaded twice does not
    # run its hook twice; unnamed hooks are always added.
    class Hooks
      PHASES = %i[before_snapshot after_restore].freeze

      Hook = Struct.new(:name, :block, :own)

      # How many of the phases in the server's PhaseRecord this process has run (itself, or
      # inherited: a worker forked from puma's preloaded master has run what the master had).
      # Kept with the registry, so that two Lifecycle middlewares in one app run a phase once.
      attr_accessor :applied

      def initialize
        @hooks = PHASES.to_h { |phase| [phase, []] }
        @lock = Mutex.new
        @applied = 0
        # Reentrant: a second Lifecycle middleware inside the first runs within its hold.
        @running = Monitor.new
      end

      # The one registry of the process, which Megamode.before_snapshot and after_restore add to.
      def self.default
        @default ||= new
      end

      # Adds a hook to `phase`; `own` puts it with megamode's own, ahead of the app's.
      def add(phase, name = nil, own: false, &block)
        raise ArgumentError, "a #{phase} hook needs a block" unless block

        list = @hooks.fetch(check(phase))
        hook = Hook.new(name ? name.to_s : block.source_location.join(":"), block, own)
        @lock.synchronize do
          index = name && list.index { |h| h.name == hook.name && h.own == own }
          index ? list[index] = hook : list << hook
        end
        hook
      end

      # The phase's hooks, in the order they run.
      def ordered(phase)
        list = @lock.synchronize { @hooks.fetch(check(phase)).dup }
        list = list.select(&:own) + list.reject(&:own)
        phase == :before_snapshot ? list.reverse : list
      end

      # Runs the phase's hooks in order; the first that raises stops the rest, and its error is
      # raised again as a HookFailed naming it. Whatever it raises: a hook that calls `exit` or
      # `abort` (SystemExit) or recurses too deep (SystemStackError) did not finish either, and
      # otherwise its exception would leave the middleware, the server would answer its own 500,
      # and megamode would take the app for one without hooks and go on to the snapshot.
      def run(phase)
        ordered(phase).each do |hook|
          hook.block.call
        rescue Exception => e
          raise HookFailed.new(hook.name, e)
        end
      end

      def clear
        @lock.synchronize { @hooks.each_value(&:clear) }
      end

      # Runs the block with no other thread of the process running phases: one phase at a time,
      # and `applied` read and advanced as one.
      def exclusive(&block)
        @running.synchronize(&block)
      end

      private

      def check(phase)
        phase = phase.to_sym
        return phase if PHASES.include?(phase)

        raise ArgumentError, "unknown SnapStart phase #{phase.inspect} (#{PHASES.join(" or ")})"
      end
    end

    # A hook that raised: its name and the error. The name and `summary` are UTF-8 text whatever the
    # hook and its error held (a name in UTF-8 and a message of binary bytes could not be put in
    # one string otherwise, and the failure would leave the middleware as an encoding error).
    class HookFailed < StandardError
      attr_reader :hook, :error, :summary

      def self.text(value)
        value.to_s.dup.force_encoding(Encoding::UTF_8).scrub("?")
      end

      def initialize(hook, error)
        @hook = HookFailed.text(hook)
        @error = error
        @summary = "#{error.class}: #{HookFailed.text(error.message)}"
        super("hook #{@hook} failed: #{@summary}")
      end
    end
  end

  class << self
    # Runs the block in the app's server before Lambda snapshots it (SnapStart): close what a
    # snapshot must not hold (sockets, connections to other hosts). See Megamode::Rack::Hooks for
    # the order and the names:
    #
    #   Megamode.before_snapshot(:close_redis) { REDIS.close }
    def before_snapshot(name = nil, &block)
      Megamode::Rack::Hooks.default.add(:before_snapshot, name, &block)
    end

    # Runs the block in the app's server after Lambda restored a snapshot: make again what must
    # differ per environment or may be stale (clients, credentials, tokens).
    #
    #   Megamode.after_restore(:refresh_credentials) { Aws.config[:credentials] = ... }
    def after_restore(name = nil, &block)
      Megamode::Rack::Hooks.default.add(:after_restore, name, &block)
    end
  end
end
