# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

RSpec.describe Megamode::Build::Target do
  it "defaults to the build Ruby's runtime when Lambda offers it, and to a local package, with advice, when not" do
    target, warning = described_class.resolve(build_ruby: "3.4.1", host_cpu: "aarch64", libruby: "libruby.so.3.4.1", shared: true)
    expect([target.runtime, target.arch, target.ruby, target.local?, warning]).to eq(["ruby3.4", "arm64", "3.4", false, nil])

    target, warning = described_class.resolve(build_ruby: "3.1.2", host_cpu: "x86_64", libruby: "libruby-3.1.so.3.1.2", shared: true)
    expect([target.runtime, target.arch, target.ruby, target.local?]).to eq(["ruby3.3", "x86_64", "3.1", true])
    expect(warning).to include("Ruby 3.1.2, which Lambda does not offer (ruby3.3, ruby3.4, ruby4.0)",
                               "for local runs only", "public.ecr.aws/sam/build-ruby3.3", "megamode build --runtime ruby3.3")

    # A distribution's Ruby of a version Lambda offers: its extensions link the distribution's libruby.
    target, warning = described_class.resolve(build_ruby: "3.3.8", host_cpu: "x86_64", libruby: "libruby-3.3.so.3.3.8", shared: true)
    expect([target.runtime, target.local?]).to eq(["ruby3.3", true])
    expect(warning).to include("a distribution's Ruby 3.3.8 (libruby-3.3.so.3.3.8)")
  end

  it "takes --runtime and --arch as given, and --local on any Ruby" do
    target, = described_class.resolve(runtime: "ruby4.0", arch: "arm64", build_ruby: "3.1.2")
    expect([target.runtime, target.arch, target.ruby, target.local?, target.libruby]).to eq(["ruby4.0", "arm64", "4.0", false, "libruby.so.4.0"])

    target, warning = described_class.resolve(local: true, build_ruby: "3.2.9", host_cpu: "x86_64")
    expect([target.runtime, target.ruby, target.local?, warning]).to eq(["ruby3.3", "3.2", true, nil])
    target, = described_class.resolve(local: true, runtime: "ruby3.4", build_ruby: "3.1.2")
    expect([target.runtime, target.ruby, target.local?]).to eq(["ruby3.4", "3.4", true])
  end

  it "refuses runtimes and architectures Lambda does not have, naming those it has" do
    expect { described_class.resolve(runtime: "ruby3.2") }
      .to raise_error(Megamode::BuildError, /"ruby3.2" is not a Lambda Ruby runtime .*ruby3.3, ruby3.4, ruby4.0/)
    expect { described_class.resolve(arch: "amd64") }.to raise_error(Megamode::BuildError, /give x86_64 or arm64/)
  end

  it "knows what the base image and the runtime's Ruby provide, in one list" do
    target = described_class.new(runtime: "ruby3.3", arch: "x86_64")
    expect(%w[libc.so.6 libm.so.6 libpthread.so.0 ld-linux-x86-64.so.2 libz.so.1 libssl.so.3 libruby.so.3.3]
             .reject { |s| target.provides?(s) }).to eq([])
    expect(%w[ld-linux-aarch64.so.1 libruby.so.3.4 libruby-3.3.so.3.3 libcrypt.so.1 libyaml-0.so.2 libxslt.so.1
              libxml2.so.2 libsqlite3.so.0]
             .select { |s| target.provides?(s) }).to eq([])
    expect(target.glibc_too_old_for?("2.35")).to be(true)
    expect(target.glibc_too_old_for?("2.34")).to be(false)
    expect(target.to_h(version: "9.9.9", build_ruby: "3.3.6"))
      .to eq("runtime" => "ruby3.3", "arch" => "x86_64", "ruby" => "3.3", "ruby_abi" => "3.3.0", "glibc" => "2.34",
             "local" => false, "built_with_ruby" => "3.3.6",
                "built_on" => Megamode::PackageTarget.lambda_arch, "megamode" => "9.9.9", "environment" => {})
  end
end

RSpec.describe Megamode::Build::Verify do
  around do |example|
    @dir = Dir.mktmpdir("megamode-verify-spec-")
    @package = File.join(@dir, "package")
    FileUtils.mkdir_p(@package)
    example.run
  ensure
    FileUtils.rm_rf(@dir)
  end

  let(:target) { Megamode::Build::Target.new(runtime: "ruby3.3", arch: "x86_64") }
  let(:libc) { { "libc.so.6" => %w[GLIBC_2.2.5 GLIBC_2.17] } }

  def verify(target = self.target, library_dirs: [], ruby_arch_dirs: [])
    described_class.new(target, package: @package, library_dirs: library_dirs, ruby_arch_dirs: ruby_arch_dirs)
  end

  # A hand-built ELF file at `relative` below the package.
  def elf(relative, **options)
    TinyElf.write(File.join(@package, relative), **options)
  end

  def problems(verify)
    verify.offences.map { |o| [o.file, o.kind, o.problem] }
  end

  it "passes a file for the target's machine that needs only the base image, its glibc and the runtime's Ruby" do
    elf("app/ext/ok.so", needed: %w[libc.so.6 libm.so.6 libz.so.1 libssl.so.3 libruby.so.3.3],
                         versions: { "libc.so.6" => %w[GLIBC_2.2.5 GLIBC_2.34], "libm.so.6" => ["GLIBC_2.29"] })
    elf("app/ext/ok.o", machine: 183, type: 1) # an object file is never loaded
    check = verify
    check.check_package

    expect(check.offences).to eq([])
    expect(check.checked).to eq(1)
    expect { check.enforce! }.not_to raise_error
  end

  it "refuses a build Ruby other than the target's" do
    check = verify
    check.check_ruby("3.1.2")

    expect(problems(check)).to eq([["Ruby", :ruby, "this build runs Ruby 3.1.2, and ruby3.3 runs Ruby 3.3: the gems " \
                                                   "are laid out for Ruby 3.1 (ruby/3.1.0) and their native extensions are built for it"]])
    check = verify
    check.check_ruby("3.3.7")
    expect(check.offences).to eq([])
  end

  it "refuses a file for another machine" do
    elf("app/bin/tool", machine: 183, needed: ["libc.so.6"])
    elf("app/lib/old.so", machine: 3, bits: 32)
    check = verify
    check.check_package

    expect(problems(check)).to eq([
      ["app/bin/tool", :machine, "is for aarch64 (64-bit, little-endian), and ruby3.3 runs on x86_64"],
      ["app/lib/old.so", :machine, "is for x86 (32-bit) (32-bit, little-endian), and ruby3.3 runs on x86_64"]
    ])
  end

  it "refuses a file that needs a newer glibc than Amazon Linux 2023's, or one of its newer ABI markers" do
    elf("app/new.so", needed: ["libc.so.6"], versions: { "libc.so.6" => %w[GLIBC_2.17 GLIBC_2.38] })
    elf("app/relr.so", needed: ["libc.so.6"], versions: { "libc.so.6" => %w[GLIBC_2.17 GLIBC_ABI_DT_RELR] })
    elf("app/math.so", needed: ["libm.so.6"], versions: { "libm.so.6" => %w[GLIBC_2.35] })
    check = verify
    check.check_package

    expect(problems(check)).to eq([
      ["app/math.so", :glibc, "needs glibc 2.35 (symbol version GLIBC_2.35), and Amazon Linux 2023 has glibc 2.34"],
      ["app/new.so", :glibc, "needs glibc 2.38 (symbol version GLIBC_2.38), and Amazon Linux 2023 has glibc 2.34"],
      ["app/relr.so", :glibc, "needs GLIBC_ABI_DT_RELR, which only a glibc newer than Amazon Linux 2023's 2.34 has"]
    ])
  end

  it "refuses a file linked against a distribution's libruby or another Ruby's" do
    elf("app/debian.so", needed: %w[libruby-3.3.so.3.3 libc.so.6])
    elf("app/other.so", needed: %w[libruby.so.3.2 libc.so.6])
    check = verify
    check.check_package

    expect(problems(check)).to eq([
      ["app/debian.so", :libruby, "is linked against a distribution's Ruby library (libruby-3.3.so.3.3); " \
        "Lambda runs upstream Ruby, whose library is libruby.so.3.3"],
      ["app/other.so", :ruby, "is linked against Ruby 3.2's library (libruby.so.3.2), and ruby3.3 runs " \
        "Ruby 3.3 (libruby.so.3.3)"]
    ])
  end

  it "refuses a file that needs a library the base image lacks, the package does not ship and this machine does not have" do
    elf("app/needy.so", needed: %w[libc.so.6 libnowhere.so.7])
    check = verify(library_dirs: [File.join(@dir, "host")])
    check.check_package

    expect(problems(check)).to eq([
      ["app/needy.so", :library, "needs libnowhere.so.7, which Lambda's base image lacks and the package does not ship; " \
        "this machine has no libnowhere.so.7 for x86_64 to ship (looked in #{@dir}/host)"]
    ])
  end

  it "ships a library this machine has when it passes the same checks, and refuses one that does not" do
    host = File.join(@dir, "host")
    TinyElf.write(File.join(host, "libgood.so.1.2.3"), soname: "libgood.so.1", needed: %w[libc.so.6 libdep.so.2], versions: libc)
    File.symlink("libgood.so.1.2.3", File.join(host, "libgood.so.1"))
    TinyElf.write(File.join(host, "libdep.so.2"), soname: "libdep.so.2", needed: %w[libc.so.6 libgood.so.1], versions: libc)
    TinyElf.write(File.join(host, "libnew.so.1"), needed: ["libc.so.6"], versions: { "libc.so.6" => ["GLIBC_2.39"] })
    TinyElf.write(File.join(host, "libarm.so.1"), machine: 183) # the machine's other architecture: not a candidate
    elf("app/uses_good.so", needed: %w[libc.so.6 libgood.so.1], versions: libc)
    elf("app/uses_new.so", needed: %w[libc.so.6 libnew.so.1])
    elf("app/uses_arm.so", needed: %w[libc.so.6 libarm.so.1])
    check = verify(library_dirs: [host])
    check.check_package

    expect(Dir.children(File.join(@package, "lib")).sort).to eq(%w[libdep.so.2 libgood.so.1])
    expect(File.binread(File.join(@package, "lib", "libgood.so.1"))).to eq(File.binread(File.join(host, "libgood.so.1.2.3")))
    expect(check.shipped).to eq("libgood.so.1" => File.join(host, "libgood.so.1.2.3"), "libdep.so.2" => File.join(host, "libdep.so.2"))
    expect(check.summary.first).to start_with("shipped in lib/ ").and include("libgood.so.1 (from #{host}/libgood.so.1.2.3)")
    expect(problems(check)).to eq([
      ["app/uses_arm.so", :library, "needs libarm.so.1, which Lambda's base image lacks and the package does " \
        "not ship; this machine has no libarm.so.1 for x86_64 to ship (looked in #{host})"],
      ["app/uses_new.so", :library, "needs libnew.so.1, which Lambda's base image lacks and the package does " \
        "not ship; this machine's #{host}/libnew.so.1 cannot be shipped: it needs " \
        "glibc 2.39 (symbol version GLIBC_2.39), and Amazon Linux 2023 has glibc 2.34"]
    ])
  end

  it "counts a library as shipped in the package's lib/, its root, or beside the file through $ORIGIN" do
    elf("lib/libmine.so.1", needed: ["libc.so.6"])
    elf("libroot.so.1", needed: ["libc.so.6"])
    elf("app/vendor/lib/libbeside.so.3", needed: ["libc.so.6"])
    elf("app/vendor/ext/x.so", needed: %w[libc.so.6 libmine.so.1 libroot.so.1 libbeside.so.3], runpath: "$ORIGIN/../lib")
    check = verify
    check.check_package

    expect(check.offences).to eq([])
  end

  it "refuses a library needed by a path (a name with / or ..), whatever that path finds here, and copies nothing" do
    host = File.join(@dir, "host")
    TinyElf.write(File.join(host, "sub", "libsub.so.1"), needed: ["libc.so.6"])
    TinyElf.write(File.join(@dir, "outside.so"), needed: ["libc.so.6"])
    TinyElf.write(File.join(@dir, "lib", "escape.so"), needed: ["libc.so.6"])
    elf("app/paths.so", needed: %w[libc.so.6 sub/libsub.so.1 ../outside.so ../../lib/escape.so .. /usr/lib/libz.so.1])
    check = verify(library_dirs: [host])
    check.check_package

    expect(File.exist?(File.join(@package, "lib"))).to be(false)
    expect(check.shipped).to eq({})
    expect(problems(check).map { |file, kind, problem| [file, kind, problem[/\Aneeds the library "[^"]*"/]] }).to eq([
      ["app/paths.so", :name, 'needs the library "sub/libsub.so.1"'],
      ["app/paths.so", :name, 'needs the library "../outside.so"'],
      ["app/paths.so", :name, 'needs the library "../../lib/escape.so"'],
      ["app/paths.so", :name, 'needs the library ".."'],
      ["app/paths.so", :name, 'needs the library "/usr/lib/libz.so.1"']
    ])
    expect(check.offences.first.problem).to include("by a path, not by a name", "/var/task")
    expect(check.refusal).to include("link each library by its name")
  end

  it "counts a library found through an $ORIGIN run path only when it is inside the package" do
    TinyElf.write(File.join(@dir, "outside", "libout.so.1"), needed: ["libc.so.6"])
    elf("app/ext/x.so", needed: %w[libc.so.6 libout.so.1], runpath: "$ORIGIN/../../../outside")
    check = verify
    check.check_package

    expect(problems(check).map { |f, k, _| [f, k] }).to eq([["app/ext/x.so", :library]])
  end

  it "follows links within the package to the files they reach, and reports links that leave it or dangle" do
    host = File.join(@dir, "host")
    arm = TinyElf.write(File.join(host, "libarm.so.1"), machine: 183)
    File.write(File.join(host, "notes.txt"), "not ELF")
    elf("app/vendor/real/libin.so.1", machine: 183)
    FileUtils.mkdir_p(File.join(@package, "app", "lib"))
    {
      "app/lib/libarm.so" => arm, # an absolute link, as a copied app keeps it
      "app/lib/libabs.so" => File.join(@package, "app/vendor/real/libin.so.1"), # inside here, not on Lambda
      "app/lib/libin.so" => "../vendor/real/libin.so.1",
      "app/lib/libdir" => "../vendor/real",
      "app/lib/libgone.so" => "../vendor/gone.so.1",
      "app/lib/loop.so" => "loop.so",
      "app/lib/notes.txt" => File.join(host, "notes.txt")
    }.each { |link, target| File.symlink(target, File.join(@package, link)) }
    check = verify
    check.check_package

    expect(problems(check)).to eq([
      ["app/lib/libabs.so", :link, "is a link to #{@package}/app/vendor/real/libin.so.1, outside the package: the " \
        "package carries the link and not the ELF file, so on Lambda it dangles"],
      ["app/lib/libarm.so", :link, "is a link to #{arm}, outside the package: the package carries the link and " \
        "not the ELF file, so on Lambda it dangles"],
      ["app/vendor/real/libin.so.1", :machine, "is for aarch64 (64-bit, little-endian), and ruby3.3 runs on x86_64"]
    ])
    expect(check.summary).to eq([
      "warning: app/lib/libgone.so is a link to ../vendor/gone.so.1, which does not exist: it ships dangling",
      "warning: app/lib/loop.so is a link to loop.so, which does not resolve (a loop of links): it ships dangling",
      "warning: app/lib/notes.txt is a link to #{host}/notes.txt, outside the package: it ships dangling"
    ])
    expect(check.refusal).to include("replace each link that leaves the package")
  end

  it "names the files it could not read and the links it could not follow in a refusal too" do
    File.binwrite(File.join(@package, "broken.so"), TinyElf.build(needed: ["libc.so.6"]).byteslice(0, 100))
    File.symlink("gone.so", File.join(@package, "dangling.so"))
    elf("app/arm.so", machine: 183)
    check = verify
    check.check_package

    expect { check.enforce! }.to raise_error(Megamode::BuildError) { |e|
      expect(e.message).to include(
        "  app/arm.so: is for aarch64",
        "Also found, and not a reason for the refusal:\n" \
        "  could not check broken.so, which is truncated: the program headers (112 bytes at 64) lies past its end (100 bytes)\n" \
        "  dangling.so is a link to gone.so, which does not exist: it ships dangling\n" \
        "What to do:"
      )
    }
  end

  it "lists at most a few problems of one file, and a bounded number in all, saying how many more" do
    elf("app/a_needy.so", needed: ["libc.so.6"] + (1..500).map { |i| "libmissing#{i}.so.1" })
    (1..30).each { |i| elf("app/arm#{format("%02d", i)}.so", machine: 183, needed: (1..8).map { |k| "libm#{k}.so" }) }
    (1..150).each { |i| elf("app/more/x#{format("%03d", i)}.so", machine: 183) }
    check = verify(library_dirs: [])
    check.check_package

    expect(check.offences.size).to eq(500 + 30 + 150)
    lines = check.offence_lines
    expect(lines.grep(/a_needy\.so/).size).to eq(11)
    expect(lines).to include("  app/a_needy.so: and 490 more like these")
    expect(lines.size).to be <= 120
    expect(lines.last).to match(/\A  and \d+ more in \d+ more files\z/)
    expect(check.refusal.lines.size).to be < 140
  end

  it "shows names with control characters escaped, so that no file, library or link name adds a line to the report" do
    elf("app/x.so\nWhat to do:\n  - nothing", machine: 183)
    elf("app/z.so", needed: ["libq\n  - install nothing.so"])
    File.symlink("gone\nWhat to do:", File.join(@package, "app/l\nx.so"))
    check = verify
    check.check_package

    expect { check.enforce! }.to raise_error(Megamode::BuildError) { |e|
      expect(e.message.lines.grep(/\AWhat to do:/).size).to eq(1)
      expect(e.message.lines.grep(/nothing/)).to eq([
        "  app/x.so\\nWhat to do:\\n  - nothing: is for aarch64 (64-bit, little-endian), and ruby3.3 runs on x86_64\n",
        "  app/z.so: needs libq\\n  - install nothing.so, which Lambda's base image lacks and the package does not " \
        "ship; this machine has no libq\\n  - install nothing.so for x86_64 to ship (looked in )\n"
      ])
    }
    expect(check.summary).to eq(["warning: app/l\\nx.so is a link to gone\\nWhat to do:, which does not exist: it ships dangling"])
  end

  it "lists a file whose name is not ASCII, needing a library whose name is not either, in a C locale" do
    elf("app/caf\u00e9.so", needed: ["lib\u00e9.so"])
    script = <<~'RUBY'
      require "megamode/build"
      check = Megamode::Build::Verify.new(Megamode::Build::Target.new(runtime: "ruby3.3", arch: "x86_64"),
                                          package: ARGV[0], library_dirs: [], ruby_arch_dirs: [])
      check.check_package
      $stdout.binmode.print check.offence_lines.join("\n")
    RUBY
    out, err, status = Open3.capture3(SpecHelpers::C_LOCALE, RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"),
                                      "-e", script, @package, binmode: true)
    expect(status).to be_success, err
    expect(out.force_encoding(Encoding::UTF_8)).to start_with("  app/caf\u00e9.so: needs lib\u00e9.so, which")
  end

  it "checks a 516 KB library with thousands of repeated run paths, and a million identical libraries, in bounded memory and time" do
    long = "$ORIGIN/x:" * 50_000
    elf("app/a.so", needed: %w[libc.so.6 libnowhere.so.1], runpath: [long] * 1000)
    elf("app/b.so", needed: %w[libc.so.6 libnowhere.so.1], runpath: ["$ORIGIN/y:" * 3_000] * 30_000)
    elf("app/c.so", needed: ["libnowhere.so.1"] * 1_000_000)
    expect(File.size(File.join(@package, "app/a.so"))).to be_between(500_000, 530_000)
    found = BoundedChild.run(seconds: 120, memory: 1 << 30) do
      check = verify
      check.check_package
      [problems(check).map { |file, kind, problem| [file, kind, problem[/\Aneeds \S+/]] }, check.summary]
    end
    expect(found).to eq([[["app/a.so", :library, "needs libnowhere.so.1,"], ["app/b.so", :library, "needs libnowhere.so.1,"],
                          ["app/c.so", :library, "needs libnowhere.so.1,"]], []])
  end

  it "does not ship for a local package, and reports what it finds without refusing" do
    host = File.join(@dir, "host")
    TinyElf.write(File.join(host, "libgood.so.1"), needed: ["libc.so.6"])
    elf("app/a.so", machine: 183)
    elf("app/b.so", needed: %w[libc.so.6 libgood.so.1])
    local = Megamode::Build::Target.new(runtime: "ruby3.3", arch: "x86_64", ruby: "3.1", local: true)
    check = verify(local, library_dirs: [host])
    check.check_package

    expect(File.exist?(File.join(@package, "lib"))).to be(false)
    expect(check.summary.first).to start_with("would ship (for a Lambda build) libgood.so.1")
    expect(check.offence_lines).to eq(["  app/a.so: is for aarch64 (64-bit, little-endian), and ruby3.3 runs on x86_64"])
    expect { check.enforce! }.not_to raise_error
  end

  it "refuses a gem whose native extension is not in the bundle, naming where a distribution put it" do
    home = File.join(@dir, "bundle", "ruby", "3.3.0")
    spec = lambda do |name, files:, extensions: []|
      Megamode::Build::Gems::Spec.new(name: name, version: "1.0", full_name: "#{name}-1.0", gem_dir: "/nowhere/#{name}-1.0",
                                      require_paths: ["lib"], files: files, extensions: extensions, extension_dir: nil,
                                      executables: [], bindir: "bin", default: false, source: "Bundler::Source::Rubygems",
                                      spec: "")
    end
    FileUtils.mkdir_p(File.join(home, "gems", "sqlite3-1.0", "lib", "sqlite3"))
    built = spec.call("built", files: ["ext/built/extconf.rb"], extensions: ["ext/built/extconf.rb"])
    TinyElf.write(File.join(home, "extensions", "x86_64-linux", "3.3.0", "built-1.0", "built", "built.so"), needed: ["libc.so.6"])
    pure = spec.call("pure", files: ["lib/pure.rb", "test/fixtures/ext/extconf.rb"])
    # Debian's sqlite3: its specification keeps ext/ in its files and drops `extensions`, and the
    # extension itself is in Ruby's vendor directory, outside the gem.
    sqlite = spec.call("sqlite3", files: ["ext/sqlite3/extconf.rb", "ext/sqlite3/database.c", "lib/sqlite3.rb", "lib/sqlite3/database.rb"])
    vendor = File.join(@dir, "vendor_ruby", "3.3.0")
    TinyElf.write(File.join(vendor, "sqlite3", "sqlite3_native.so"), needed: ["libc.so.6"])
    rust = spec.call("oxide", files: ["lib/oxide.rb"], extensions: ["ext/oxide/Cargo.toml"])
    check = verify(ruby_arch_dirs: [vendor])
    check.check_bundle(File.join(@dir, "bundle"), home, [built, pure, sqlite, rust])

    expect(problems(check)).to eq([
      ["the gem sqlite3-1.0", :extension, "has a native extension (ext/sqlite3/extconf.rb) and none built " \
        "is in the package; this machine has #{vendor}/sqlite3/sqlite3_native.so " \
        "outside the gem, where a distribution's package put it"],
      ["the gem oxide-1.0", :extension, "has a native extension (ext/oxide/Cargo.toml) and none built is in the package"]
    ])
    expect(check.checked).to eq(1)
  end

  it "reports a file it cannot read as ELF, without refusing for it" do
    File.binwrite(File.join(@package, "broken.so"), TinyElf.build(needed: ["libc.so.6"]).byteslice(0, 100))
    check = verify
    check.check_package

    expect(check.offences).to eq([])
    expect(check.summary).to eq(["warning: could not check broken.so, which is truncated: the program headers (112 bytes at 64) lies past its end (100 bytes)"])
  end

  it "refuses with every offence, file by file, and what to do about each kind" do
    elf("app/arm.so", machine: 183)
    elf("app/new.so", needed: ["libc.so.6"], versions: { "libc.so.6" => ["GLIBC_2.36"] })
    check = verify
    check.check_ruby("3.1.2")
    check.check_package

    expect { check.enforce! }.to raise_error(Megamode::BuildError) { |e|
      expect(e.message.lines.map(&:chomp)).to eq([
        "the package could not run on Lambda's ruby3.3 (x86_64), so it was not made:",
        "  Ruby: this build runs Ruby 3.1.2, and ruby3.3 runs Ruby 3.3: the gems are laid out for Ruby 3.1 " \
        "(ruby/3.1.0) and their native extensions are built for it",
        "  app/arm.so: is for aarch64 (64-bit, little-endian), and ruby3.3 runs on x86_64",
        "  app/new.so: needs glibc 2.36 (symbol version GLIBC_2.36), and Amazon Linux 2023 has glibc 2.34",
        "What to do:",
        "  - build with ruby3.3's Ruby (3.3, upstream, on Amazon Linux 2023): in the SAM build image " \
        "public.ecr.aws/sam/build-ruby3.3, with the app's gems installed there by `bundle install` " \
        "(`megamode build --container --runtime ruby3.3 --arch x86_64` does all of it)",
        "  - build on x86_64 (or in the SAM build image for x86_64), or target the machine the files are for with --arch",
        "  - or, to run the package locally only: megamode build --local (rake megamode:build LOCAL=1)"
      ])
    }
  end
end

RSpec.describe Megamode::Build::HostLibraries do
  it "reads the loader's configuration, its includes, and LD_LIBRARY_PATH first" do
    Dir.mktmpdir("megamode-ldconf-") do |dir|
      %w[a b c].each { |d| FileUtils.mkdir_p(File.join(dir, d)) }
      FileUtils.mkdir_p(File.join(dir, "conf.d"))
      File.write(File.join(dir, "ld.so.conf"), "# comment\ninclude conf.d/*.conf\n#{dir}/a\n#{dir}/missing\n")
      File.write(File.join(dir, "conf.d", "x.conf"), "#{dir}/b # arch\n")

      dirs = described_class.dirs(File.join(dir, "ld.so.conf"), env: "#{dir}/c:")
      expect(dirs.first(3)).to eq(%W[#{dir}/c #{dir}/b #{dir}/a])
      expect(dirs).not_to include("#{dir}/missing")
    end
  end

  it "reads a configuration with bytes of another encoding in a C locale" do
    Dir.mktmpdir("megamode-ldconf-") do |dir|
      FileUtils.mkdir_p(File.join(dir, "a"))
      File.binwrite(File.join(dir, "ld.so.conf"), "# caf\xE9 (Latin-1), \xE2\x9C\x93\n#{dir}/a\n")
      script = 'require "megamode/build"; print Megamode::Build::HostLibraries.dirs(ARGV[0], env: "").first'
      out, err, status = Open3.capture3(SpecHelpers::C_LOCALE, RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"),
                                        "-e", script, File.join(dir, "ld.so.conf"))
      expect(status).to be_success, err
      expect(out).to eq("#{dir}/a")
    end
  end
end
