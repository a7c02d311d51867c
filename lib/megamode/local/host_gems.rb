# frozen_string_literal: true

require "rbconfig"
require_relative "../local"

module Megamode::Local
  # The directories where this machine's Ruby finds gems and libraries beyond its own, which a
  # package's run hides (LambdaEnvironment): Lambda's Ruby, upstream Ruby under /var/lang, has its
  # standard library, its default gems and its bundled gems, and every other gem must come from the
  # package. What is hidden: Ruby's vendor and site directories (Debian's vendor_ruby, where its
  # RubyGems, its Bundler and the Ruby files of its gem packages are, and the arch directory where
  # it puts their extensions), every gem directory RubyGems knows of other than Ruby's own (Debian's
  # /var/lib/gems and rubygems-integration directories, /usr/local's, the user's gem home,
  # GEM_HOME and GEM_PATH), and Debian's gem directories by name. What stays: Ruby's own library
  # and arch directories, its own gem directory (the default and bundled gems, Bundler among them,
  # with the RubyGems that came with this Ruby), its executable and libruby, and the directories
  # the run needs (the package, MEGAMODE_TMP, megamode's own tools).
  class HostGems
    # A distribution's directories of gems that RubyGems may not list (Debian's, by name).
    DISTRIBUTION_DIRS = ["/usr/share/rubygems-integration", "/var/lib/gems", "/usr/lib/*/rubygems-integration",
                         "/usr/lib/*/ruby/gems"].freeze
    # RbConfig's directories of libraries beyond Ruby's own.
    SHARED_KEYS = %w[vendordir vendorlibdir vendorarchdir sitedir sitelibdir sitearchdir].freeze

    # `keep`: directories the run needs that may lie below a hidden one (they are put back);
    # `protect`: directories that must stay where they are, so nothing above them is hidden.
    def initialize(keep: [], protect: [], config: RbConfig::CONFIG, gem_dirs: HostGems.gem_dirs,
                   own: HostGems.own_dirs, distribution_dirs: DISTRIBUTION_DIRS)
      @keep = keep.map { |d| real(d) }
      @protect = (own + protect).map { |d| real(d) }
      @config = config
      @gem_dirs = gem_dirs
      @distribution_dirs = distribution_dirs
    end

    # Ruby's own: its library and arch directories, its gem directory (where the default gems'
    # specifications are), its executable's and libruby's directories.
    def self.own_dirs(config = RbConfig::CONFIG)
      gem_dir = File.expand_path("../..", Gem.default_specifications_dir)
      [config["rubylibdir"], config["rubyarchdir"], gem_dir, File.dirname(RbConfig.ruby), config["libdir"]].compact
    end

    # Every gem directory RubyGems would search here, and the user's.
    def self.gem_dirs(env = ENV)
      dirs = Gem.path + [Gem.default_dir, Gem.user_dir]
      dirs << Gem.vendor_dir if Gem.respond_to?(:vendor_dir) && Gem.vendor_dir
      dirs += [env["GEM_HOME"], *env.fetch("GEM_PATH", "").split(File::PATH_SEPARATOR)]
      begin
        dirs += [File.join(Dir.home, ".gem"), File.join(Dir.home, ".local", "share", "gem")]
      rescue ArgumentError
        nil # no home
      end
      dirs.compact.reject(&:empty?).uniq
    end

    # The directories to hide: existing, none above a protected one, none inside another.
    def hidden
      @hidden ||= begin
        list = candidates.filter_map { |d| real(d) if File.directory?(d) }.uniq.reject { |d| guarded?(d) }
        list.reject { |d| list.any? { |other| other != d && inside?(d, other) } }.sort
      end
    end

    # The directories to keep that a hidden one covers.
    def kept
      @keep.select { |k| hidden.any? { |h| k == h || inside?(k, h) } }.uniq
    end

    private

    def candidates
      shared = SHARED_KEYS.filter_map { |key| @config[key] }.reject(&:empty?)
      distribution = @distribution_dirs.flat_map { |pattern| Dir.glob(pattern) }
      (shared + distribution + @gem_dirs).map { |d| container(d) }
    end

    # A gem directory named after Ruby's ABI (/var/lib/gems/3.1.0) or Debian's "all" goes with its
    # parent, which holds the same for other Rubies; unless the parent holds something protected.
    def container(dir)
      return dir unless [@config["ruby_version"], "all"].include?(File.basename(dir))

      parent = File.dirname(dir)
      File.directory?(parent) && !guarded?(real(parent)) ? parent : dir
    end

    # Whether hiding `dir` would hide something protected (or is the root).
    def guarded?(dir)
      dir == "/" || @protect.any? { |p| p == dir || inside?(p, dir) }
    end

    def inside?(path, dir)
      path.start_with?(dir.end_with?("/") ? dir : "#{dir}/")
    end

    def real(dir)
      File.realpath(dir)
    rescue SystemCallError
      File.expand_path(dir)
    end
  end
end
