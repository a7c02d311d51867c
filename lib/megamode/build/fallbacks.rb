# frozen_string_literal: true

require_relative "gems"

module Megamode
  class Build
    # Gems whose compiled part has a pure-Ruby fallback their authors document, and what turns it
    # on. When the bundle has such a gem without its compiled part (its source was not to be had,
    # or its build failed where the bundle was installed), the package turns the fallback on
    # itself: the switch is recorded in megamode/target.json and set at boot, so the package does
    # not depend on a variable the function's configuration would have to carry (Lambda sets none of
    # them). Any other gem whose compiled part is missing is refused by the verification.
    class Fallbacks
      Fallback = Struct.new(:library, :environment, :how, :since, keyword_init: true)

      KNOWN = {
        # nio4r's README: "NIO4R_PURE=true" selects its pure-Ruby selector; without it, nio4r
        # requires nio4r_ext and puma dies at boot with `cannot load such file -- nio4r_ext`.
        "nio4r" => Fallback.new(library: "nio4r_ext", environment: { "NIO4R_PURE" => "true" },
                                how: "the package sets NIO4R_PURE=true at boot", since: "2.0.0"),
        # websocket-driver rescues the LoadError of websocket_mask and uses its Ruby mask by itself,
        # from 0.6.5 on; before, `require "websocket_mask"` fails wherever the gem is loaded.
        "websocket-driver" => Fallback.new(library: "websocket_mask", environment: {},
                                           how: "the gem falls back to it by itself", since: "0.6.5")
      }.freeze

      # `home`: the bundle's ruby/<ABI> directory as Gems#vendor wrote it; `specs`: the packaged gems.
      def initialize(home, specs)
        missing = specs.filter_map do |spec|
          fallback = KNOWN[spec.name]
          [spec, fallback] if fallback && !compiled?(home, spec, fallback.library)
        end
        @used, @without = missing.partition { |spec, fallback| Gem::Version.new(spec.version) >= Gem::Version.new(fallback.since) }
      end

      # Warnings for the gems that miss their compiled part in a version that has no fallback yet:
      # the package boots, and fails where the app loads the gem (Action Cable loads websocket-driver).
      def warnings
        @without.map do |spec, fallback|
          "#{spec.full_name} has no compiled #{fallback.library} in the bundle, and no pure-Ruby fallback " \
            "before #{spec.name} #{fallback.since}: an app that loads it fails on Lambda with `cannot load such file " \
            "-- #{fallback.library}`; update it (bundle update #{spec.name}) or build where it compiles " \
            "(megamode build --container)"
        end
      end

      # Names of the gems that run on their fallback in this package.
      def gems
        @used.map { |spec, _| spec.name }
      end

      # What the package sets at boot, for all of them.
      def environment
        @used.map { |_, fallback| fallback.environment }.reduce({}, :merge)
      end

      # One line for the build's log per gem on its fallback.
      def messages
        @used.map do |spec, fallback|
          "#{spec.full_name} has no compiled #{fallback.library} in the bundle: it runs on its pure-Ruby " \
            "fallback (#{fallback.how}); install the gem where it compiles (the SAM build image, " \
            "megamode build --container) for the compiled one"
        end
      end

      private

      # Whether the gem's compiled library is anywhere in its gem directory or its extension
      # directory in the bundle (the build adopted a distribution's copy into the former).
      def compiled?(home, spec, library)
        dirs = [File.join(home, "gems", spec.full_name), *Dir.glob(File.join(home, "extensions", "*", "*", spec.full_name)),
                # a gem from a git source: its directory in its checkout, and Bundler's extension directory for it
                *Gems.git_gem_dir(home, spec),
                *Dir.glob(File.join(home, "bundler", "gems", "extensions", "*", "*", "#{spec.name}-*"))]
        dirs.any? { |dir| !Dir.glob("**/#{library}.{so,bundle}", base: dir).empty? }
      end
    end
  end
end
