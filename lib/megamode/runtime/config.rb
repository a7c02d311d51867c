# frozen_string_literal: true

module Megamode
  # The settings of `Megamode.configure`. Each has an environment variable of the same meaning; a
  # value set here wins over the variable.
  class Config
    SETTINGS = {
      app_root: "MEGAMODE_APP_ROOT",
      command: "MEGAMODE_COMMAND",
      log_prefix: "MEGAMODE_LOG_PREFIX",
      tmp: "MEGAMODE_TMP",
      pass_through_path: "MEGAMODE_PASS_THROUGH_PATH",
      readiness_path: "MEGAMODE_READINESS_PATH",
      readiness_status: "MEGAMODE_READINESS_STATUS",
      boot_timeout: "MEGAMODE_BOOT_TIMEOUT",
      base_path: "MEGAMODE_BASE_PATH",
      compress: "MEGAMODE_COMPRESS",
      error_status: "MEGAMODE_ERROR_STATUS",
      commands_allowed: "MEGAMODE_COMMANDS_ALLOWED",
      transport: "MEGAMODE_TRANSPORT",
      copy_app: "MEGAMODE_COPY_APP",
      # copy_app's old name, still taken when copy_app is not set, with a note at boot: "stage" is
      # API Gateway's word (megamode serve --stage).
      stage: "MEGAMODE_STAGE",
      bundle: "MEGAMODE_BUNDLE",
      invoke_mode: "MEGAMODE_INVOKE_MODE",
      hook_timeout: "MEGAMODE_HOOK_TIMEOUT",
      prime: "MEGAMODE_PRIME"
    }.freeze

    attr_accessor(*SETTINGS.keys)

    # The settings that were given, by variable name, as the native engine reads them. A list (prime:
    # ["/up", "/posts"]) is the comma-separated value its variable takes.
    def to_settings
      SETTINGS.each_with_object({}) do |(name, variable), settings|
        value = public_send(name)
        settings[variable] = value.is_a?(Array) ? value.join(",") : value.to_s unless value.nil?
      end
    end
  end
end
