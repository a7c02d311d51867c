# frozen_string_literal: true

# A client's copies of the headers megamode owns, spelled with `_` (alone or mixed with `-`, in any
# case). A Rack server files `X_Forwarded_Prefix` under the same env key as `X-Forwarded-Prefix`
# (HTTP_X_FORWARDED_PREFIX), so where megamode sends none of its own (a Function URL has no stage;
# an invocation without a trace id or a tenant) only megamode's removing them keeps them from the
# app. spec/fixtures/apps/prefixed shows what the app saw.
module ForgedHeaders
  HEADERS = [
    ["X_Forwarded_Prefix", "/evil"],
    ["x_amzn_request_context", '{"forged":"context"}'],
    ["X-Amzn_Lambda_Context", '{"forged":"lambda"}'],
    ["X_REQUEST_START", "t=1"],
    ["X_Amzn-Trace_Id", "Root=1-00000000-forgedforgedforgedforged"],
    ["x_amz_tenant_id", "tenant-forged"],
    # megamode's own requests that run the app's SnapStart hooks: a client's copy must not ask for them
    ["X_Megamode_Lifecycle", "before-snapshot"],
    ["x-megamode_lifecycle-token", "forged0forged0forged0forged0forg"]
  ].freeze

  # What spec/fixtures/apps/prefixed's server needs: megamode's middleware on its load path, as a
  # user's app has it from its bundle. (Not a path relative to the fixture: the app runs from a copy
  # wherever its directory is not writable, as a non-root user's run of a root's checkout.)
  SERVER_ENV = { "RUBYLIB" => File.expand_path("../../lib", __dir__) }.freeze

  module_function

  # The env keys under which the app saw a forged value.
  def leaked(app_headers)
    forged = HEADERS.map(&:last)
    app_headers.select { |_, value| forged.include?(value) }.keys
  end
end
