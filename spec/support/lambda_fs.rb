# frozen_string_literal: true

require "open3"
require "rbconfig"
require "json"

# Runs one handler call in a filesystem laid out as Lambda's: the package mounted read-only, a fresh
# tmpfs /tmp of the given size, in a private mount namespace (so nothing here outlives the call).
# Needs root, as these specs run.
module LambdaFs
  # Seconds a call may take before it counts as hung (a boot takes a few).
  HANG_LIMIT = 120

  module_function

  # The handler's result, or {"errorType", "errorMessage"} when it raised; and the log.
  def invoke(package:, event:, tmp_size: "512m", settings: {})
    script = HandlerProcess.preamble(package) + <<~RUBY
      begin
        result = Megamode.handler(event: JSON.parse(#{JSON.generate(event).inspect}),
                                  context: Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: 30)))
      rescue Megamode::Error => e
        result = { "errorType" => e.class.name, "errorMessage" => e.message }
      end
      STDERR.puts JSON.generate(result)
      Megamode.shutdown
    RUBY
    setup = <<~SH
      set -e
      mount --bind "$PACKAGE" "$PACKAGE"
      mount -o remount,bind,ro "$PACKAGE"
      mount -t tmpfs -o size=#{tmp_size},mode=1777 lambda-tmp /tmp
      exec "$RUBY" -e "$SCRIPT"
    SH
    env = settings.merge("PACKAGE" => package, "RUBY" => RbConfig.ruby, "SCRIPT" => script,
                         "MEGAMODE_TMP" => "/tmp/megamode")
    # A hard limit, so a call that hangs (a read that never returns) fails the spec instead of the run.
    # (timeout exits 124, or kills itself too when its command had to be killed.)
    log, err, status = Open3.capture3(env, "timeout", "-k", "10", HANG_LIMIT.to_s,
                                      "unshare", "--mount", "--propagation", "private", "bash", "-c", setup)
    raise "the handler call did not return within #{HANG_LIMIT} s: it hangs\n#{log}" if status.exitstatus == 124 || status.termsig == 9
    raise "the Lambda filesystem could not be set up (#{status}): #{err}" unless status.success?

    [JSON.parse(err.lines.last), log]
  end
end
