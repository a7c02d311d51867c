# frozen_string_literal: true

require "open3"
require "timeout"

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

  it "reads back the record it writes, the one definition the packager and the runtime share" do
    Dir.mktmpdir do |package|
      FileUtils.mkdir_p(File.join(package, "megamode"))
      record = Megamode::PackageTarget.record(runtime: "ruby3.4", arch: "arm64", ruby: "3.4", glibc: "2.34", local: false,
                                              megamode: "9.9.9", environment: { "A" => "1" },
                                              built_with_ruby: "3.4.2", built_on: "x86_64")
      Megamode::PackageTarget.write(package, record)
      path = File.join(package, Megamode::PackageTarget::PATH)

      expect(record).to include("ruby_abi" => "3.4.0", "built_on" => "x86_64")
      expect(File.read(path)).to end_with("}\n")
      expect(Megamode::PackageTarget.check!(path, ruby: "3.4.1", cpu: "aarch64")).to eq(record)
    end
    expect(Megamode::PackageTarget.abi("3.10.2")).to eq("3.10")
    expect(%w[x86_64 amd64 aarch64 arm64 riscv64].map { |cpu| Megamode::PackageTarget.lambda_arch(cpu) })
      .to eq(["x86_64", "x86_64", "arm64", "arm64", nil])
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

  describe "a broken record of the target" do
    valid = { "runtime" => "ruby3.4", "arch" => "x86_64", "ruby" => "3.4", "local" => false }
    advice = /Build the package again with megamode build/

    def broken_record(content)
      Dir.mktmpdir do |dir|
        path = File.join(dir, "target.json")
        content.is_a?(Proc) ? content.call(path) : File.binwrite(path, content)
        yield path
      end
    end

    {
      "[]" => /it holds \[\] \(an array\), where an object belongs/,
      "5" => /it holds 5 \(a number\), where an object belongs/,
      "null" => /it holds null, where an object belongs/,
      '"x"' => /it holds "x" \(a string\), where an object belongs/,
      "{}" => /its field "runtime" is missing/,
      "" => /it is not JSON/,
      "{\"ruby\": " => /it is not JSON/,
      "\xff\xfe" => /it is not UTF-8 text/,
      JSON.generate(valid.merge("ruby" => 3.4)) => /its field "ruby" is 3\.4 \(a number\), where a Ruby version such as "3\.4" belongs/,
      '{"runtime":"ruby3.4","arch":"x86_64","ruby":"\\ud800","local":false}' => /not JSON|its field "ruby" is/,
      JSON.generate(valid.merge("local" => "yes")) => /its field "local" is "yes" \(a string\), where true or false belongs/,
      JSON.generate(valid.merge("arch" => nil)) => /its field "arch" is null, where "x86_64" or "arm64" belongs/,
      JSON.generate(valid.merge("local" => true)) => /its field "built_with_ruby" is missing/,
      JSON.generate(valid.merge("local" => true, "built_with_ruby" => 3, "built_on" => "x86_64")) =>
        /its field "built_with_ruby" is 3 \(a number\)/
    }.each do |content, what|
      it "is a BootError saying what is wrong and what to do for #{content.dump[0, 60]}" do
        broken_record(content) do |path|
          expect { Megamode::PackageTarget.check!(path, ruby: "3.4.1", cpu: "x86_64") }
            .to raise_error(Megamode::BootError) { |e|
              expect(e.message).to include("record of what it was built for (#{path}) is broken")
              expect(e.message).to match(what)
              expect(e.message).to match(advice)
            }
        end
      end
    end

    # A link to /dev/zero would be read without end, a FIFO would block the boot forever: the record
    # is read only as a regular file, and only so much of it.
    {
      "a link to /dev/zero" => [->(path) { File.symlink("/dev/zero", path) }, /a symbolic link/],
      "a link to a good record" => [lambda { |path|
        File.write("#{path}.real", JSON.generate(valid))
        File.symlink("#{path}.real", path)
      }, /a symbolic link/],
      "a FIFO" => [->(path) { File.mkfifo(path) }, /not a regular file \(fifo\)/],
      "a directory" => [->(path) { Dir.mkdir(path) }, /not a regular file \(directory\)/],
      "a file beyond the bound" => [->(path) { File.write(path, " " * 100_000) }, /larger than 65536 bytes/]
    }.each do |name, (make, what)|
      it "is a BootError, at once, for #{name}" do
        broken_record(make) do |path|
          outcome = Timeout.timeout(30) do
            Megamode::PackageTarget.check!(path, ruby: "3.4.1", cpu: "x86_64")
          rescue Megamode::BootError => e
            e
          end
          expect(outcome).to be_a(Megamode::BootError)
          expect(outcome.message).to match(what).and(match(advice))
        end
      end
    end

    it "stops `require \"megamode\"` with the BootError, not a TypeError or NoMethodError" do
      %w([] 5 null {"ruby":3.3}).each do |content|
        out, status = require_in_package(content)

        expect(status).not_to be_success
        expect(out).to include("Megamode::BootError", "is broken").and(match(advice))
        expect(out).not_to match(/TypeError|NoMethodError/)
      end
    end
  end

  it "refuses, when the handler loads, a package whose target is another Ruby" do
    out, status = require_in_package(JSON.generate("runtime" => "ruby9.9", "arch" => "x86_64", "ruby" => "9.9",
                                                   "local" => false))

    expect(status).not_to be_success
    expect(out).to include("Megamode::BootError", "built for Ruby 9.9 on x86_64 (Lambda's ruby9.9), and this is Ruby #{abi}")
  end

  # `require "megamode"` from a package laid out as the build lays it out (megamode/lib beside
  # megamode/target.json, which holds `target`): its output and status.
  def require_in_package(target)
    Dir.mktmpdir do |dir|
      lib = File.join(dir, "megamode", "lib")
      FileUtils.mkdir_p(lib)
      FileUtils.cp_r(Dir[File.join(SpecHelpers::ROOT, "lib", "*")], lib)
      File.write(File.join(dir, "megamode", "target.json"), target)
      Open3.capture2e(RbConfig.ruby, "-I", lib, "-e", 'require "megamode"')
    end
  end
end
