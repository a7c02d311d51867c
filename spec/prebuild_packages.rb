# frozen_string_literal: true

# Builds the packages the end-to-end specs serve, for a run of those specs where packages cannot be
# built: bin/test builds them in the Lambda stand-in's build flavour, then runs the specs in its
# runtime flavour (no compiler, none of the apps' libraries) with MEGAMODE_TEST_PACKAGES=DIR. Each
# build's output directory (the package, its zip and template) goes to DIR/<package>.
#
#   ruby spec/prebuild_packages.rb DIR
require "rspec"
require_relative "spec_helper"

dir = ARGV.fetch(0) { abort "usage: ruby spec/prebuild_packages.rb DIR" }
abort "MEGAMODE_TEST_PACKAGES is set: there is nothing to build" if PackageBuild.prebuilt_dir
FileUtils.rm_rf(dir)
FileUtils.mkdir_p(dir)
# The same apps, with the same Gemfiles, as the specs that serve them build.
{ "hello" => ["rack_hello", nil], "shop" => ["sinatra_build", %(ruby "3.3.0")] }.each do |package, (app, ruby_line)|
  scratch = PackageBuild.scratch("megamode-prebuild-")
  begin
    built = PackageBuild.built(app, scratch, package: package, ruby_line: ruby_line)
    FileUtils.mv(File.dirname(built), File.join(dir, package))
    File.write(File.join(dir, package, PackageBuild::MADE_FROM), PackageBuild.made_from(app, ruby_line))
  ensure
    FileUtils.rm_rf(scratch)
  end
end
FileUtils.cp_r(File.dirname(BuiltRails.package), File.join(dir, BuiltRails::NAME))
File.write(File.join(dir, BuiltRails::NAME, PackageBuild::MADE_FROM), BuiltRails::MADE_FROM)
puts "built #{Dir.children(dir).sort.join(", ")} into #{dir}"
