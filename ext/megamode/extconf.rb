# frozen_string_literal: true

# The second step of `gem install megamode` (the gemspec's second extension), which RubyGems runs
# after its Cargo builder compiled this crate (the first). It compiles nothing: RubyGems 3.3's
# Cargo builder (Ruby 3.1's RubyGems) makes the gem's extension directory Cargo's target directory
# and leaves it there, some 280 MB of build tree (the dependencies' rlibs, fingerprints, build
# scripts' output) in every installed megamode, none of which runs. Once the library is where
# megamode loads it from (the gem's lib/, where that builder copies it), this removes Cargo's
# files from the extension directory and keeps RubyGems' own. A RubyGems whose builder leaves no
# target directory there leaves nothing to remove. RubyGems then runs make on the Makefile written
# here, which has nothing to make.
require "fileutils"
require "rubygems"
require_relative "../../lib/megamode/version"
require_relative "../../lib/megamode/native_library"

module MegamodeInstall
  # What RubyGems writes in an extension directory itself.
  RUBYGEMS_FILES = %w[gem_make.out mkmf.log gem.build_complete].freeze

  module_function

  # The extension directory RubyGems gives the gem installed in `gem_dir` (<home>/gems/<name>),
  # computed as RubyGems computes it; nil when `gem_dir` is not an installed megamode.
  def extension_dir(gem_dir)
    spec = Gem::Specification.new do |s|
      s.name = "megamode"
      s.version = Megamode::VERSION
    end
    return nil unless File.basename(gem_dir) == spec.full_name

    spec.loaded_from = File.expand_path("../../specifications/#{spec.full_name}.gemspec", gem_dir)
    spec.extension_dir
  end

  # Removes Cargo's target directory from the extension directory; returns what it did. The
  # extension directory is one when Cargo's library is in it where RubyGems 3.3's builder has Cargo
  # put it (release/libmegamode.so). (Cargo tags only a target directory it creates with
  # CACHEDIR.TAG, and that builder creates this one first.)
  def clean(gem_dir)
    dir = extension_dir(gem_dir)
    unless dir && File.file?(Megamode::NativeLibrary.cargo_artifact(dir))
      return "nothing to clean: no Cargo target directory for #{gem_dir}"
    end

    library = Megamode::NativeLibrary.find(File.join(gem_dir, "lib"))
    return "kept Cargo's target directory #{dir}: #{Megamode::NativeLibrary::FILE} is not in #{gem_dir}/lib" unless library

    (Dir.children(dir) - RUBYGEMS_FILES).each { |entry| FileUtils.rm_rf(File.join(dir, entry)) }
    "removed Cargo's target directory from #{dir} (the library is #{library})"
  end
end

# Its output goes to the extension directory's gem_make.out.
puts MegamodeInstall.clean(File.expand_path("../..", __dir__))
File.write("Makefile", "all:\ninstall:\nclean:\n.PHONY: all install clean\n")
