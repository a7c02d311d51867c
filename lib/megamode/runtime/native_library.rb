# frozen_string_literal: true

require "rbconfig"
require_relative "package_target"

module Megamode
  # Where megamode's compiled extension lives: the one place that knows. The loader
  # (megamode/native.rb), `rake compile` and `megamode build` (which copies it into a package) all
  # ask here. Loads nothing of megamode but PackageTarget (pure Ruby, for the Ruby ABI rule), so the
  # Rakefile can use it before there is a library.
  #
  # @api private
  module NativeLibrary
    # The name Ruby loads an extension by: megamode.so on Linux, megamode.bundle on macOS.
    FILE = "megamode.#{RbConfig::CONFIG.fetch("DLEXT")}"
    # The directory that holds megamode.rb.
    LIB = File.expand_path("../..", __dir__)

    module_function

    # Ruby's major.minor (PackageTarget.abi): an extension is built for one.
    def abi
      PackageTarget.abi
    end

    # What an extension is built for: the Ruby ABI and the platform. Two Rubies of one ABI from
    # different builders link different libraries: Debian's (x86_64-linux-gnu, libruby-3.3.so.3.3)
    # and upstream's, as Lambda's is (x86_64-linux, libruby.so.3.3).
    def build_key
      "#{abi}-#{RUBY_PLATFORM}"
    end

    # Where `rake compile` puts it: one build per Ruby ABI and platform, so a checkout used by several
    # Rubies (the host's, the Debian 13 root's, the Lambda stand-ins') keeps one for each.
    def compiled(lib = LIB)
      File.join(lib, "megamode", build_key, FILE)
    end

    # Where the precompiled gem (megamode-VERSION-x86_64-linux.gem, `rake native:gem`) has it: one
    # per Ruby ABI, lib/megamode/3.4/megamode.so, as rb-sys's cross gems and nokogiri's native gems
    # lay theirs out. Built for upstream's Ruby, it links no libruby, so any Ruby of that ABI on
    # that machine loads it (Debian's as well as Lambda's). `ruby_abi`: another Ruby's (the gem's
    # build asks for each it holds).
    def precompiled(lib = LIB, ruby_abi = abi)
      File.join(lib, "megamode", ruby_abi, FILE)
    end

    # Everywhere it can be, first found first used:
    # 1. `rake compile`'s place, so that a checkout's own build wins over anything else there;
    # 2. the precompiled gem's place for this Ruby's ABI;
    # 3. lib/megamode/, where RubyGems >= 3.4.6 installs the source gem's Cargo-built library and
    #    megamode's packages put the one they carry;
    # 4. lib/, where older RubyGems (Debian 12's 3.3) installs Cargo-built extensions.
    # An installed gem has one of them; a library for another Ruby found anyway (copied by hand)
    # is refused when it loads, by the extension's own check of the Ruby it was compiled for.
    def candidates(lib = LIB)
      [compiled(lib), precompiled(lib), File.join(lib, "megamode", FILE), File.join(lib, FILE)]
    end

    # The library for this Ruby, or nil when it is not built.
    def find(lib = LIB)
      candidates(lib).find { |path| File.file?(path) }
    end

    # The file Cargo builds for the megamode crate in `target_dir`.
    def cargo_artifact(target_dir, profile = "release")
      ext = RbConfig::CONFIG["host_os"].match?(/darwin/) ? "dylib" : "so"
      File.join(target_dir, profile, "libmegamode.#{ext}")
    end

    # What to say when it is not built.
    def missing_message(lib = LIB)
      dirs = candidates(lib).map { |path| File.dirname(path) }
      "megamode's native extension is not built for Ruby #{abi} (looked for #{FILE} in #{dirs[0..-2].join(", ")} " \
        "and #{dirs.last}). In a checkout, run `rake compile`; otherwise reinstall the gem."
    end
  end
end
