# frozen_string_literal: true

# The native extension lives in lib/megamode/ after `rake compile` and with RubyGems >= 3.4.6, and
# in lib/ with older RubyGems (Debian 12's 3.3), which installs Cargo-built extensions there.
begin
  require_relative "megamode.so"
rescue LoadError => first
  begin
    require_relative "../megamode.so"
  rescue LoadError
    raise LoadError, "megamode's native extension is not built (#{first.message}). " \
                     "In a checkout, run `rake compile`; otherwise reinstall the gem."
  end
end
