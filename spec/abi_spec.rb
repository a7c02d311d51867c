# frozen_string_literal: true

require "open3"

# No silent wrong ABI at run time: an extension or a package built for another Ruby refuses to run,
# naming both Rubies, instead of reading objects wrongly.
RSpec.describe "megamode on a Ruby it was not built for" do
  abi = RUBY_VERSION[/\A\d+\.\d+/]

  it "raises a LoadError naming both Rubies when the extension was compiled for another one" do
    # The checkout keeps one build per Ruby ABI and platform (bin/test builds the host's, the Debian
    # 13 root's and the Lambda stand-ins'): one for another ABI.
    other = Dir[File.join(SpecHelpers::ROOT, "lib", "megamode", "[0-9]*.[0-9]*", "megamode.so")]
            .reject { |path| File.basename(File.dirname(path))[/\A\d+\.\d+/] == abi }.first
    skip "no build of the extension for another Ruby in this checkout (bin/test makes one in each environment)" unless other

    out, status = Open3.capture2e(RbConfig.ruby, "-e", "begin; require ARGV[0]; rescue LoadError => e; puts e.message; exit 3; end",
                                  other)
    built = File.basename(File.dirname(other))[/\A\d+\.\d+/]
    if out.match?(/version `GLIBC_[\d.]+' not found/)
      skip "the build for Ruby #{built} needs a newer glibc than this system's, so the loader refuses it first"
    end
    expect(status.exitstatus).to eq(3), out
    expect(out).to include("compiled for Ruby #{built} and this is Ruby #{abi}")
  end

  it "refuses a package built for another Ruby or machine with a BootError naming both" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "target.json")
      File.write(path, JSON.generate("runtime" => "ruby3.4", "arch" => "x86_64", "ruby" => "3.4", "local" => false))

      expect(Megamode::PackageTarget.check!(path, ruby: "3.4.1", cpu: "x86_64")).to include("runtime" => "ruby3.4")
      expect { Megamode::PackageTarget.check!(path, ruby: "3.3.8", cpu: "x86_64") }
        .to raise_error(Megamode::BootError, /built for Ruby 3\.4 on x86_64 \(Lambda's ruby3\.4\), and this is Ruby 3\.3 on x86_64/)
      expect { Megamode::PackageTarget.check!(path, ruby: "3.4.1", cpu: "aarch64") }
        .to raise_error(Megamode::BootError, /and this is Ruby 3\.4 on arm64.*Give the function the runtime and architecture the package was built for/)
      expect(Megamode::PackageTarget.check!(File.join(dir, "none.json"))).to be_nil
    end
  end

  it "runs a local package where it was built, whatever Lambda runtime and architecture its template names" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "target.json")
      File.write(path, JSON.generate("runtime" => "ruby3.4", "arch" => "arm64", "ruby" => "3.4", "local" => true,
                                     "built_with_ruby" => "3.1.2", "built_on" => "x86_64"))

      expect(Megamode::PackageTarget.check!(path, ruby: "3.1.2", cpu: "x86_64")).to include("local" => true)
      expect { Megamode::PackageTarget.check!(path, ruby: "3.3.8", cpu: "x86_64") }
        .to raise_error(Megamode::BootError, /built for Ruby 3\.1 on x86_64 \(for local runs\).*megamode build --local/)
    end
  end

  it "refuses, when the handler loads, a package whose target is another Ruby" do
    Dir.mktmpdir do |dir|
      lib = File.join(dir, "megamode", "lib")
      FileUtils.mkdir_p(lib)
      FileUtils.cp_r(Dir[File.join(SpecHelpers::ROOT, "lib", "*")], lib)
      File.write(File.join(dir, "megamode", "target.json"),
                 JSON.generate("runtime" => "ruby9.9", "arch" => "x86_64", "ruby" => "9.9", "local" => false))
      out, status = Open3.capture2e(RbConfig.ruby, "-I", lib, "-e", 'require "megamode"')

      expect(status).not_to be_success
      expect(out).to include("Megamode::BootError", "built for Ruby 9.9 on x86_64 (Lambda's ruby9.9), and this is Ruby #{abi}")
    end
  end
end
