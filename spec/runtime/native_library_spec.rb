# frozen_string_literal: true

require "megamode/runtime/native_library"

# Where megamode finds its compiled extension: one order for a checkout, the source gem, the
# precompiled gem and a package.
RSpec.describe Megamode::NativeLibrary do
  abi = Megamode::PackageTarget.abi
  file = described_class::FILE

  around do |example|
    Dir.mktmpdir("megamode-native-library-") do |lib|
      @lib = lib
      example.run
    end
  end

  def place(*path)
    File.join(@lib, *path).tap do |f|
      FileUtils.mkdir_p(File.dirname(f))
      File.write(f, "ELF")
    end
  end

  it "looks in rake compile's place, the precompiled gem's for this Ruby's ABI, lib/megamode/, then lib/" do
    expect(described_class.candidates(@lib)).to eq([
      File.join(@lib, "megamode", "#{abi}-#{RUBY_PLATFORM}", file),
      File.join(@lib, "megamode", abi, file),
      File.join(@lib, "megamode", file),
      File.join(@lib, file)
    ])
  end

  it "takes the first it finds, so a checkout's own build wins over the precompiled one" do
    expect(described_class.find(@lib)).to be_nil
    expect(described_class.missing_message(@lib))
      .to include("not built for Ruby #{abi}", File.join(@lib, "megamode", abi), "rake compile")

    old_layout = place(file)
    expect(described_class.find(@lib)).to eq(old_layout)
    source_gem = place("megamode", file)
    expect(described_class.find(@lib)).to eq(source_gem)
    precompiled = place("megamode", abi, file)
    expect(described_class.find(@lib)).to eq(precompiled)
    expect(described_class.precompiled(@lib)).to eq(precompiled)
    compiled = place("megamode", described_class.build_key, file)
    expect(described_class.find(@lib)).to eq(compiled)
  end

  it "never takes the precompiled library of another Ruby ABI" do
    other = abi == "3.3" ? "3.4" : "3.3"
    place("megamode", other, file)

    expect(described_class.find(@lib)).to be_nil
  end
end
