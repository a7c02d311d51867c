# frozen_string_literal: true

# Installs the gems the test apps need into GEM_HOME for the Lambda stand-in's Ruby (bin/lambda-root
# runs this in the build flavour, with that Ruby), as `bundle install` in the SAM build image would:
# each gem is made into a .gem and installed by RubyGems, which compiles native extensions for this
# Ruby and writes the specifications, extension directories and executables it would write there.
#
#   ruby lambda_gems.rb TRIXIE SOURCES
#
# RubyGems.org is out of reach, so the gems come from Debian 13's packages (TRIXIE: bin/debian13's
# root, read-only): a pure-Ruby gem is the files Debian installed, with Debian's specification.
# A native gem is compiled from its upstream source, the orig tarball of its Debian source package,
# extracted under SOURCES/NAME-VERSION; $MEGAMODE_NATIVE_GEMS lists them, one "NAME VERSION
# [BUILD-ARG...]" per line. Gems whose compiled part cannot be had here are installed without it,
# where the gem has a pure-Ruby fallback (nio4r, websocket-driver; see bin/lambda-root).
require "fileutils"
require "rubygems/package"
require "rubygems/installer"
require "tmpdir"

trixie, sources = ARGV
abort "usage: ruby lambda_gems.rb TRIXIE SOURCES" unless sources

GEM_HOME = ENV.fetch("GEM_HOME")
ARCH_DIRS = "/usr/lib/x86_64-linux-gnu"
SPEC_DIRS = ["/usr/share/rubygems-integration/all/specifications", "/usr/share/rubygems-integration/*/specifications",
             "#{ARCH_DIRS}/rubygems-integration/*/specifications"].freeze
# Ruby brings its own; the rest are Debian's packaging of RubyGems itself.
SKIPPED = %w[bundler rubygems-update].freeze
# Gems with a compiled part and a pure-Ruby fallback, installed without the compiled part when it is
# not in $MEGAMODE_NATIVE_GEMS (see bin/lambda-root). Other gems with a compiled part that is not
# there are left out: installed without it they would fail where they are loaded.
PURE_FALLBACK = %w[nio4r websocket-driver].freeze

natives = ENV.fetch("MEGAMODE_NATIVE_GEMS", "").lines.map(&:split).reject(&:empty?)
native_names = natives.map(&:first)
# What this Ruby has already (default and bundled gems), by name and version.
own = Gem::Specification.to_h { |s| ["#{s.name}-#{s.version}", true] }

# The package whose files list holds `path` (dpkg's database in the Debian 13 root), and its files.
def package_files(trixie, path)
  list = Dir.glob("#{trixie}/var/lib/dpkg/info/*.list").find { |l| File.foreach(l).any? { |f| f.chomp == path } }
  raise "no Debian package owns #{path}" unless list

  File.readlines(list, chomp: true)
end

# The directory holding a gem's files, relative to it as the .gem has them: Debian's gem directory,
# or, for a gem Debian installed into vendor_ruby, a copy of its files there under lib/.
def gem_tree(trixie, spec, spec_path, scratch)
  dir = Dir.glob("#{trixie}{/usr/share/rubygems-integration/all,#{ARCH_DIRS}/rubygems-integration/*}/gems/#{spec.full_name}").first
  return dir if dir

  tree = File.join(scratch, spec.full_name)
  package_files(trixie, spec_path.delete_prefix(trixie)).each do |f|
    next unless f.start_with?("/usr/lib/ruby/vendor_ruby/") && File.file?("#{trixie}#{f}")

    dest = File.join(tree, "lib", f.delete_prefix("/usr/lib/ruby/vendor_ruby/"))
    FileUtils.mkdir_p(File.dirname(dest))
    FileUtils.cp("#{trixie}#{f}", dest)
  end
  tree
end

# Builds `spec` into a .gem from the files under `tree` (all of them: Debian's lists and upstream's
# `git ls-files` do not hold here) and installs it; build_args go to extconf.rb.
def install(spec, tree, scratch, build_args: [])
  Dir.chdir(tree) do
    spec.files = Dir.glob("**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) && !f.match?(%r{\A(\.git|debian/|\.pc/)}) }
    spec.executables = spec.executables.select { |e| File.file?(File.join(spec.bindir, e)) }
    spec.extra_rdoc_files = spec.extra_rdoc_files.select { |f| File.file?(f) }
    spec.test_files = []
    spec.extensions = spec.extensions.select { |e| File.file?(e) }
    file = Gem::Package.build(spec, true, false, File.join(scratch, "#{spec.full_name}.gem"))
    Gem::Installer.at(file, install_dir: GEM_HOME, ignore_dependencies: true, document: [],
                            wrappers: true, build_args: build_args).install
  end
end

Dir.mktmpdir("lambda-gems-") do |scratch|
  installed = []
  left_out = []
  # Pure-Ruby gems first: native ones' extconf.rb may need them (mini_portile2, pkg-config).
  SPEC_DIRS.flat_map { |d| Dir.glob("#{trixie}#{d}/*.gemspec") }.sort.each do |path|
    spec = Gem::Specification.load(path) or raise "cannot load #{path}"
    next if SKIPPED.include?(spec.name) || native_names.include?(spec.name) || own[spec.full_name]
    next if installed.include?(spec.full_name)

    # Debian keeps a gem with a compiled part under a Ruby version's or the architecture's directory.
    compiled = !spec.extensions.empty? || path.match?(%r{/rubygems-integration/\d|#{ARCH_DIRS}})
    if compiled && !PURE_FALLBACK.include?(spec.name)
      left_out << spec.full_name
      next
    end

    # A compiled part Debian built for its own Ruby is of no use here: these gems go without it.
    spec.extensions = []
    install(spec, gem_tree(trixie, spec, path, scratch), scratch)
    installed << spec.full_name
  end
  natives.each do |name, version, *args|
    tree = File.join(sources, "#{name}-#{version}")
    spec = Dir.chdir(tree) { Gem::Specification.load("#{name}.gemspec") } or raise "cannot load #{tree}/#{name}.gemspec"
    raise "#{tree}/#{name}.gemspec is version #{spec.version}, not #{version}" unless spec.version.to_s == version

    install(spec, tree, scratch, build_args: args)
    installed << spec.full_name
  end
  puts "left out (a compiled part whose source is not here): #{left_out.sort.join(" ")}" unless left_out.empty?
  puts "installed #{installed.size} gems into #{GEM_HOME}: #{installed.sort.join(" ")}"
end
