# frozen_string_literal: true

# The precompiled gem (`rake native:gem`, pkg/megamode-VERSION-x86_64-linux.gem), which the specs
# that use it find there (bin/test builds it first) and skip without.
module NativeGemFile
  PLATFORM = "x86_64-linux"

  module_function

  def path
    File.join(SpecHelpers::ROOT, "pkg", "megamode-#{Megamode::VERSION}-#{PLATFORM}.gem")
  end

  # The checkout's Ruby files that `gem_dir` (the gem, installed or unpacked) does not hold as they
  # are here: the gem was built before the last change, when there are any.
  def stale(gem_dir)
    Dir.glob("lib/**/*.rb", base: SpecHelpers::ROOT).reject do |f|
      File.file?(File.join(gem_dir, f)) && File.read(File.join(gem_dir, f)) == File.read(File.join(SpecHelpers::ROOT, f))
    end
  end
end
