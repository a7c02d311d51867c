# frozen_string_literal: true

require "digest"
require "tmpdir"

module Megamode
  module Rack
    # The SnapStart phases a server has run, for every process of it to see. megamode asks for a
    # phase with one request, which reaches one process; puma in cluster mode (`workers` in
    # config/puma.rb, or WEB_CONCURRENCY) has others, which would keep the snapshot's state: the
    # same Random seed in every restored environment, sockets to the database from before it. The
    # process that ran a phase adds it here; every process compares the record's size with how much
    # of it it has run (Hooks#applied) before each request (one stat) and runs what it missed.
    #
    # One character per phase, appended, in a file of the server's TMPDIR (megamode gives each
    # server one of its own under MEGAMODE_TMP) named after a digest of the server's lifecycle
    # token: new for every server, so two servers never share a record, and the token itself is
    # not in a file name another user could list.
    class PhaseRecord
      CODES = { before_snapshot: "b", after_restore: "a" }.freeze
      PHASES = CODES.invert.freeze

      attr_reader :token, :path

      def initialize(token, dir: Dir.tmpdir)
        @token = token
        @path = File.join(dir, "megamode-lifecycle-#{Digest::SHA256.hexdigest(token)[0, 32]}")
      end

      # How many phases the server has run: one stat, 0 before the first.
      def size
        File.size?(@path) || 0
      end

      # The phases recorded after the first `from`, in the order they ran: one for each character,
      # nil for one that names none (counted all the same, so that it is read once).
      def since(from)
        File.binread(@path, nil, from).to_s.each_char.map { |code| PHASES[code] }
      rescue Errno::ENOENT
        []
      end

      # Adds `phase`; answers the record's size with it. Appended in one write, so a process that
      # reads the record at the same moment sees the phase whole or not at all.
      def add(phase)
        File.open(@path, File::WRONLY | File::APPEND | File::CREAT, 0o600) do |file|
          file.write(CODES.fetch(phase))
          file.size
        end
      end
    end
  end
end
