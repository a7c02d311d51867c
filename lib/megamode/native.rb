# frozen_string_literal: true

# Where the native extension can be:
# - lib/megamode/<ruby major.minor>/: `rake compile`, so checkouts used by several Rubies (the host's
#   and the Debian 13 test root's) keep one build each;
# - lib/megamode/: RubyGems >= 3.4.6;
# - lib/: older RubyGems (Debian 12's 3.3), which installs Cargo-built extensions there.
abi = RUBY_VERSION[/\A\d+\.\d+/]
candidates = ["#{abi}/megamode.so", "megamode.so", "../megamode.so"]
found = candidates.find { |c| File.exist?(File.join(__dir__, c)) }
unless found
  raise LoadError, "megamode's native extension is not built for Ruby #{abi} (looked in #{__dir__} and " \
                   "#{File.dirname(__dir__)}). In a checkout, run `rake compile`; otherwise reinstall the gem."
end
require_relative found
