# frozen_string_literal: true

# Builds the packages the end-to-end specs serve, for a run of those specs where packages cannot be
# built: bin/test builds them in the Lambda stand-in's build flavour, then runs the specs in its
# runtime flavour (no compiler, none of the apps' libraries) with MEGAMODE_TEST_PACKAGES=DIR. Each
# build's output directory (the package, its zip and template) goes to DIR/<package>.
#
#   ruby spec/prebuild_packages.rb DIR [PACKAGE...]     (default: every package but the images')
#
# hello-image is built with --image (its Dockerfile; no image, as no engine runs in the stand-in):
# spec/end_to_end/image_package_spec.rb builds and runs its image on the host (and the Rails package's,
# blog, and the Sinatra package's, shop, with the Dockerfile --image writes).
require "rspec"
require_relative "spec_helper"

dir = ARGV.fetch(0) { abort "usage: ruby spec/prebuild_packages.rb DIR [PACKAGE...]" }
abort "MEGAMODE_TEST_PACKAGES is set: there is nothing to build" if PackageBuild.prebuilt_dir
# The same apps, with the same Gemfiles and arguments, as the specs that serve them build.
apps = { "hello" => ["rack_hello", nil], "shop" => ["sinatra_build", %(ruby "3.3.0")],
         "hello-image" => ["rack_hello", nil, ["--image"]] }
wanted = ARGV.drop(1)
wanted = [*apps.keys - ["hello-image"], BuiltRails::NAME] if wanted.empty?
unknown = wanted - apps.keys - [BuiltRails::NAME]
abort "no such package: #{unknown.join(", ")} (#{[*apps.keys, BuiltRails::NAME].join(", ")})" unless unknown.empty?
FileUtils.rm_rf(dir)
FileUtils.mkdir_p(dir)
apps.slice(*wanted).each do |package, (app, ruby_line, extra)|
  scratch = PackageBuild.scratch("megamode-prebuild-")
  begin
    built = PackageBuild.built(app, scratch, package: package, ruby_line: ruby_line, extra: extra || [])
    FileUtils.mv(File.dirname(built), File.join(dir, package))
    File.write(File.join(dir, package, PackageBuild::MADE_FROM), PackageBuild.made_from(app, ruby_line))
  ensure
    FileUtils.rm_rf(scratch)
  end
end
if wanted.include?(BuiltRails::NAME)
  FileUtils.cp_r(File.dirname(BuiltRails.package), File.join(dir, BuiltRails::NAME))
  File.write(File.join(dir, BuiltRails::NAME, PackageBuild::MADE_FROM), BuiltRails::MADE_FROM)
end
puts "built #{Dir.children(dir).sort.join(", ")} into #{dir}"
