# frozen_string_literal: true

require "spec_helper"
require "megamode/build"
require "timeout"

# The build's ELF reader, on this machine's own libraries and extensions and on hand-built files.
RSpec.describe Megamode::Build::Elf do
  around do |example|
    @dir = Dir.mktmpdir("megamode-elf-spec-")
    example.run
  ensure
    FileUtils.rm_rf(@dir)
  end

  multiarch = "/usr/lib/#{RbConfig::CONFIG["host_cpu"]}-linux-gnu"
  libz = ["#{multiarch}/libz.so.1", "/lib64/libz.so.1", "/usr/lib64/libz.so.1"].find { |f| File.exist?(f) }
  puma = Gem::Specification.find_all_by_name("puma").first
  puma_ext = puma && Dir.glob(File.join(puma.extension_dir, "**", "puma_http11.so")).first
  megamode_so = Megamode::NativeLibrary.compiled

  # What binutils says of a file, when binutils is installed (the build itself never runs it).
  def readelf(path)
    out, status = Open3.capture2("readelf", "--dynamic", "--version-info", "--wide", path)
    return nil unless status.success?

    { needed: out.scan(/\(NEEDED\)\s+Shared library: \[(.*?)\]/).flatten,
      glibc: out[/Version needs section.*/m].to_s.scan(/Name: GLIBC_(\d+(?:\.\d+)+)/).flatten
                                                .max_by { |v| v.split(".").map(&:to_i) } }
  rescue Errno::ENOENT
    nil
  end

  # `versions`: false for hand-built files, which have no section headers for readelf to find them by.
  def expect_agrees_with_readelf(path, elf, versions: true)
    binutils = readelf(path) or return
    expect(elf.needed).to eq(binutils[:needed])
    expect(elf.glibc_required).to eq(binutils[:glibc]) if versions
  end

  it "reads this machine's zlib: its machine, soname, libraries and glibc versions" do
    skip "no libz.so.1 here" unless libz
    elf = described_class.read(libz)

    expect([elf.bits, elf.byte_order, elf.type]).to eq([64, :little, :shared])
    expect(elf.machine_name).to eq(RbConfig::CONFIG["host_cpu"] == "aarch64" ? "aarch64" : "x86_64")
    expect(elf.soname).to eq("libz.so.1")
    expect(elf.needed).to include("libc.so.6")
    expect(elf.glibc_required).to match(/\A2\.\d+\z/)
    expect_agrees_with_readelf(libz, elf)
  end

  it "reads a distribution's gem extension: linked against the distribution's libruby" do
    skip "puma's extension is not installed here" unless puma_ext
    elf = described_class.read(puma_ext)

    expect(elf.needed.grep(/\Alibruby/)).to eq([File.basename(RbConfig::CONFIG["LIBRUBY_SO"])[/\Alibruby.*?\.so\.\d+\.\d+/]])
    expect_agrees_with_readelf(puma_ext, elf)
  end

  it "reads megamode's own extension" do
    skip "megamode.so is not built (rake compile)" unless File.file?(megamode_so)
    elf = described_class.read(megamode_so)

    expect(elf.type).to eq(:shared)
    expect(elf.needed).to include("libc.so.6")
    expect_agrees_with_readelf(megamode_so, elf)
  end

  it "reads what a hand-built file declares, in either class and byte order" do
    path = TinyElf.write(File.join(@dir, "liba.so"), needed: %w[libc.so.6 libfoo.so.1], soname: "liba.so.1",
                                                     runpath: "$ORIGIN/../lib",
                                                     versions: { "libc.so.6" => %w[GLIBC_2.2.5 GLIBC_2.38 GLIBC_PRIVATE],
                                                                 "libm.so.6" => %w[GLIBC_2.29] })
    elf = described_class.read(path)
    expect([elf.machine, elf.needed, elf.soname, elf.runpath]).to eq([62, %w[libc.so.6 libfoo.so.1], "liba.so.1", ["$ORIGIN/../lib"]])
    expect(elf.versions_needed).to eq("libc.so.6" => %w[GLIBC_2.2.5 GLIBC_2.38 GLIBC_PRIVATE], "libm.so.6" => %w[GLIBC_2.29])
    expect(elf.glibc_required).to eq("2.38")
    expect_agrees_with_readelf(path, elf, versions: false)

    arm = described_class.read(TinyElf.write(File.join(@dir, "arm.so"), machine: 40, bits: 32, needed: ["libc.so.6"]))
    expect([arm.bits, arm.machine_name, arm.needed]).to eq([32, "ARM (32-bit)", ["libc.so.6"]])
    ppc = described_class.read(TinyElf.write(File.join(@dir, "ppc.so"), machine: 21, endian: :big,
                                                                        versions: { "libc.so.6" => ["GLIBC_2.17"] }))
    expect([ppc.byte_order, ppc.machine_name, ppc.glibc_required]).to eq([:big, "PowerPC64", "2.17"])
  end

  it "tells glibc's ABI markers from its versions" do
    elf = described_class.read(TinyElf.write(File.join(@dir, "relr.so"),
                                             versions: { "libc.so.6" => %w[GLIBC_2.2.5 GLIBC_ABI_DT_RELR] }))
    expect(elf.glibc_required).to eq("2.2.5")
    expect(elf.glibc_abi_markers).to eq(["GLIBC_ABI_DT_RELR"])
  end

  it "takes the one run path the loader uses (the last DT_RUNPATH, else the last DT_RPATH) and each library once" do
    elf = described_class.read(TinyElf.write(File.join(@dir, "repeats.so"),
                                             needed: %w[libc.so.6 libm.so.6 libc.so.6 libm.so.6], soname: "librep.so.1",
                                             rpath: ["/ignored"], runpath: ["/first", "$ORIGIN/../lib:/opt/x::$ORIGIN/../lib"]))
    expect([elf.needed, elf.runpath]).to eq([%w[libc.so.6 libm.so.6], ["$ORIGIN/../lib", "/opt/x"]])

    elf = described_class.read(TinyElf.write(File.join(@dir, "rpath.so"), rpath: ["/old", "$ORIGIN"]))
    expect(elf.runpath).to eq(["$ORIGIN"])
  end

  it "refuses, as a malformed file, more libraries, run path directories or bytes of a name than any real file has" do
    cases = {
      "many.so" => [{ needed: (0..1024).map { |i| "lib#{i}.so" } }, /needs more than 1024 libraries/],
      "dirs.so" => [{ runpath: (0..256).map { |i| "/d#{i}" }.join(":") }, /run path of more than 256 directories/],
      "long.so" => [{ needed: ["l" * 5000] }, /a name of more than 4096 bytes/]
    }
    cases.each do |name, (options, message)|
      path = TinyElf.write(File.join(@dir, name), **options)
      expect { described_class.read(path) }.to raise_error(described_class::Error, message), name
    end
  end

  it "answers every file of a generated corpus of malformed ones, or raises Elf::Error, in bounded memory and time" do
    corpus = MalformedElf.corpus
    expect(corpus.size).to be > 1000
    outcomes = BoundedChild.run(seconds: 300, memory: 1 << 30) do
      corpus.to_h do |name, bytes|
        path = File.join(@dir, "corpus.so")
        File.binwrite(path, bytes)
        outcome = begin
          Timeout.timeout(60) { described_class.read(path) }
          :answer
        rescue described_class::Error
          :elf_error
        rescue StandardError, NoMemoryError => e
          "#{e.class}: #{e.message[0, 200]}"
        end
        [name, outcome]
      end
    end
    expect(outcomes.reject { |_, o| %i[answer elf_error].include?(o) }).to eq({})
    expect(outcomes.values.tally.keys).to contain_exactly(:answer, :elf_error)
  end

  it "says what is wrong with a file that is not ELF, truncated or inconsistent, and raises nothing else" do
    good = TinyElf.build(needed: ["libc.so.6"], versions: { "libc.so.6" => ["GLIBC_2.17"] })
    cases = {
      "text" => ["#!/bin/sh\necho hi\n", /not an ELF file|truncated/],
      "short" => [good.byteslice(0, 40), /truncated: the ELF header/],
      "cut" => [good.byteslice(0, good.bytesize - 20), /truncated/],
      "class" => [good.dup.tap { |g| g.setbyte(4, 9) }, /unknown ELF class \(9\)/],
      "strsz" => [TinyElf.build(needed: ["libc.so.6"], strsz: 1 << 40), /string table of \d+ bytes, more than/],
      "strtab" => [TinyElf.build(needed: ["libc.so.6"], strsz: 1 << 20), /truncated: the dynamic string table/]
    }
    cases.each do |name, (bytes, message)|
      path = File.join(@dir, name)
      File.binwrite(path, bytes)
      expect { described_class.read(path) }.to raise_error(described_class::Error, message), name
    end
    expect(described_class.elf?(File.join(@dir, "text"))).to be(false)
    expect(described_class.elf?(File.join(@dir, "cut"))).to be(true)
  end

  it "answers a file with a few bytes corrupted, or raises Elf::Error, never anything else" do
    good = TinyElf.build(needed: %w[libc.so.6 libm.so.6], soname: "libx.so.1",
                         versions: { "libc.so.6" => %w[GLIBC_2.17 GLIBC_2.34], "libm.so.6" => ["GLIBC_2.29"] })
    path = File.join(@dir, "fuzzed.so")
    random = Random.new(17)
    400.times do
      bytes = good.dup
      3.times { bytes.setbyte(random.rand(bytes.bytesize), random.rand(256)) }
      File.binwrite(path, bytes)
      begin
        described_class.read(path)
      rescue described_class::Error
        nil
      end
    end
  end
end
