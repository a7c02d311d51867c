# frozen_string_literal: true

require "open3"
require "rbconfig"

# Lazy loading: the app's gems come from megamode's bundle archive, unpacked into MEGAMODE_TMP.
RSpec.describe "the lazy-loaded gem bundle" do
  # A vendor/bundle holding only the fixture gem, built and installed offline, packed by megamode.
  def package(dir)
    gem_file = File.join(dir, "hello_megamode.gem")
    source = File.join(SpecHelpers::ROOT, "spec", "fixtures", "gems", "hello_megamode")
    out, status = Open3.capture2e("gem", "build", "hello_megamode.gemspec", "--output", gem_file, chdir: source)
    raise out unless status.success?

    gem_dir = File.join(dir, "vendor", "bundle", "ruby", RbConfig::CONFIG["ruby_version"])
    out, status = Open3.capture2e("gem", "install", "--local", "--no-document", "--install-dir", gem_dir, gem_file)
    raise out unless status.success?

    Megamode.const_get(:Native).pack(File.join(dir, "vendor", "bundle"), File.join(dir, "package"))
  end

  it "boots an app whose gem is only in the bundle, and says so in the cold start line" do
    Dir.mktmpdir("megamode-lazy-") do |dir|
      manifest = package(dir)
      expect(manifest).to include("format" => 1, "files" => be >= 2)
      Megamode.configure do |c|
        c.app_root = fixture_app("lazy_gem")
        c.bundle = File.join(dir, "package", "bundle.json")
        c.tmp = File.join(dir, "tmp")
      end
      result = nil
      log = capture_stdout_fd { result = Megamode.handler(event: v2_event("/"), context: context) }

      expect(result["body"]).to eq("hello from a lazy-loaded gem")
      expect(log).to match(/megamode: unpacked the gem bundle into .*bundle-[0-9a-f]{16} in \d+ ms/)
      expect(log).to match(/cold start: copy \d+ ms, lazy-load \d+ ms/)
    end
  end

  it "unpacks once when two threads boot at the same time" do
    Dir.mktmpdir("megamode-lazy-") do |dir|
      package(dir)
      Megamode.configure do |c|
        c.app_root = fixture_app("lazy_gem")
        c.bundle = File.join(dir, "package", "bundle.json")
        c.tmp = File.join(dir, "tmp")
      end
      log = capture_stdout_fd { 2.times.map { Thread.new { Megamode.boot } }.each(&:join) }

      expect(log.scan("unpacked the gem bundle").size).to eq(1)
      expect(Dir.children(File.join(dir, "tmp")).grep(/bundle/)).to match([/\Abundle-[0-9a-f]{16}\z/])
    end
  end

  it "cannot boot that app without the bundle: the gem is nowhere else" do
    Megamode.configure { |c| c.app_root = fixture_app("lazy_gem") }

    expect { Megamode.handler(event: v2_event("/"), context: context) }
      .to raise_error(Megamode::BootError, /hello_megamode/)
  end

  it "refuses a corrupted bundle with a BootError that says to redeploy" do
    Dir.mktmpdir("megamode-lazy-") do |dir|
      package(dir)
      archive = File.join(dir, "package", "bundle.tar.zst")
      bytes = File.binread(archive)
      bytes.setbyte(bytes.bytesize - 1, bytes.getbyte(bytes.bytesize - 1) ^ 0xff)
      File.binwrite(archive, bytes)
      Megamode.configure do |c|
        c.app_root = fixture_app("lazy_gem")
        c.bundle = "file://#{File.join(dir, "package", "bundle.json")}"
        c.tmp = File.join(dir, "tmp")
      end

      expect { Megamode.boot }.to raise_error(Megamode::BootError, /corrupted.*redeploy/)
    end
  end
end
