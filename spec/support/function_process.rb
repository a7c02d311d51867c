# frozen_string_literal: true

require "megamode/local/gateway"
require "megamode/local/runtime_api_emulator"

# A function's process (the native loop, or a Ruby runtime client with a handler) against a new
# Runtime API emulator, as Lambda runs one, and the events the specs send it.
module FunctionProcess
  module_function

  # Spawns `command` with `env` and the emulator's variables (its address; with `snap_start`, the
  # initialization type), its output to `log`; yields the emulator and the process's pid, then
  # stops the process's whole group and the emulator.
  def run(command, env, log: File::NULL, snap_start: false)
    emulator = Megamode::Local::RuntimeApiEmulator.new(snap_start: snap_start)
    pid = Process.spawn(env.merge(emulator.env), *command,
                        out: log, err: log, pgroup: true)
    yield emulator, pid
  ensure
    stop(pid) if pid
    emulator&.close
  end

  def stop(pid)
    Process.kill("TERM", -pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil # it had exited, and was reaped by the example
  end

  # A GET of `target` as an event of `format`, as the local gateway builds it.
  def event(format, target, headers: [])
    request = Megamode::Local::Gateway::Request.new(method: "GET", target: target, peer: "203.0.113.9", body: "".b,
                                                    headers: [["Host", "api.example.com"], ["Accept", "*/*"], *headers])
    JSON.generate(Megamode::Local::Gateway.new(format: format).event(request))
  end
end
