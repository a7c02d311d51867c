# frozen_string_literal: true

require "open3"
require "rbconfig"
require "megamode/runtime/native_library"

# The gem as users get it: built from the gemspec, installed from the .gem file into an empty
# GEM_HOME (RubyGems' own Cargo builder compiles the extension; no rb_sys gem, no RubyGems.org).
RSpec.describe "the megamode gem" do
  it "builds, installs into an empty GEM_HOME, and loads" do
    Dir.mktmpdir("megamode-gem-") do |dir|
      gem_file = File.join(dir, "megamode.gem")
      home = File.join(dir, "home")
      out, status = Open3.capture2e("gem", "build", "megamode.gemspec", "--output", gem_file, chdir: SpecHelpers::ROOT)
      expect(status).to be_success, out

      # Its one dependency, rake (for the install's second step), comes from this machine's gems, as
      # RubyGems.org is out of reach; the gem itself goes into the empty home.
      env = { "GEM_HOME" => home, "GEM_PATH" => [home, *Gem.path].join(File::PATH_SEPARATOR) }
      out, status = Open3.capture2e(env, "gem", "install", "--local", "--no-document", gem_file, chdir: dir)
      expect(status).to be_success, out

      # Outside the checkout, so only the installed gem can answer.
      out, status = Open3.capture2e(env, RbConfig.ruby, "-e",
                                    'require "megamode"; puts Megamode::VERSION; ' \
                                    'puts Megamode.const_get(:Native)::Engine.instance_method(:handle).owner',
                                    chdir: dir)
      expect(status).to be_success, out
      expect(out.lines.map(&:chomp)).to eq([Megamode::VERSION, "Megamode::Native::Engine"])
      expect(File.executable?(File.join(home, "bin", "megamode"))).to be(true)

      # Nothing of Cargo's build stays: the gem is its files and the library.
      gem_dir = File.join(home, "gems", "megamode-#{Megamode::VERSION}")
      extension_dir = File.join(home, "extensions", Gem::Platform.local.to_s, Gem.extension_api_version,
                                "megamode-#{Megamode::VERSION}")
      installed = [gem_dir, extension_dir].flat_map { |d| Dir.glob("#{d}/**/*", File::FNM_DOTMATCH) }.select { |f| File.file?(f) }
      library = installed.select { |f| File.basename(f) == Megamode::NativeLibrary::FILE }
      # RubyGems' own files and the library (RubyGems 3.4+ put it in megamode/ there), nothing else.
      in_extension_dir = Dir.glob("**/*", File::FNM_DOTMATCH, base: extension_dir)
                            .select { |f| File.file?(File.join(extension_dir, f)) }
      expect(in_extension_dir - %w[gem.build_complete gem_make.out mkmf.log]).to all(end_with(Megamode::NativeLibrary::FILE))
      expect(installed.grep(/CACHEDIR\.TAG|rustc_info|cargo-lock|\.rlib\z|\.d\z|\.fingerprint/)).to eq([])
      # One library; RubyGems 3.4+ install it twice, in the gem's lib/ and its extension directory.
      expect(library.size).to be_between(1, 2), library.inspect
      expect(library.map { |f| File.binread(f) }.uniq.size).to eq(1), "the copies are one library"
      expect((installed - library).sum { |f| File.size(f) }).to be < 2 * 1024 * 1024

      # The installed command runs the events in its handler process, which ships with it (the app's
      # server, puma, comes from this machine's gems).
      event = File.join(dir, "event.json").tap { |f| File.write(f, JSON.generate(v2_event("/"))) }
      with_system_gems = env.merge("GEM_PATH" => [home, *Gem.path].join(File::PATH_SEPARATOR))
      out, err, status = Open3.capture3(with_system_gems, File.join(home, "bin", "megamode"), "invoke",
                                        "--app", fixture_app("rack_hello"), "--event", event, chdir: dir)
      expect(status).to be_success, err
      expect(JSON.parse(out)).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(err).to include("START RequestId:", "REPORT RequestId:")
      expect(File.exist?(File.join(home, "bin", "megamode-handler-process"))).to be(false), "not a command"

      # The sample events ship in the gem: listed with their files there, run by their names.
      out, status = Open3.capture2e(with_system_gems, File.join(home, "bin", "megamode"), "events", chdir: dir)
      expect(status).to be_success, out
      listed = out.lines.map(&:strip).grep(/\.json\z/)
      expect(listed.map { |f| File.basename(f, ".json") })
        .to eq(%w[rest http-v1 http-v2 url alb alb-multi-value sqs prewarm])
      expect(listed).to all(start_with("#{File.realpath(gem_dir)}/").or(start_with("#{gem_dir}/")))
      listed.each { |f| expect(JSON.parse(File.read(f))).to be_a(Hash) }
      out, err, status = Open3.capture3(with_system_gems, File.join(home, "bin", "megamode"), "invoke",
                                        "--app", fixture_app("rack_hello"), "--event", "sqs", "--get", "/", chdir: dir)
      expect(status).to be_success, err
      expect(out.lines.map { |l| JSON.parse(l) }).to match([{ "received" => 1 }, include("statusCode" => 200)])
    end
  end

  # ext/megamode/Rakefile, the install's step after the Cargo builder, run as RubyGems' Rake builder
  # runs it, on an installed gem laid out as RubyGems 3.3's Cargo builder leaves it: Cargo's target
  # directory is the extension directory.
  it "removes Cargo's target directory from the extension directory once the library is in lib/" do
    Dir.mktmpdir("megamode-gem-") do |home|
      full_name = "megamode-#{Megamode::VERSION}"
      gem_dir = File.join(home, "gems", full_name)
      extension_dir = File.join(home, "extensions", Gem::Platform.local.to_s, Gem.extension_api_version, full_name)
      # The Rakefile and what it loads: NativeLibrary and the runtime files it needs.
      ["ext/megamode/Rakefile", *Dir.glob("lib/megamode/runtime/*.rb", base: SpecHelpers::ROOT)].each do |file|
        FileUtils.mkdir_p(File.dirname(File.join(gem_dir, file)))
        FileUtils.cp(File.join(SpecHelpers::ROOT, file), File.join(gem_dir, file))
      end
      { ".rustc_info.json" => "{}", "gem_make.out" => "cargo rustc\n", "release/libmegamode.so" => "ELF",
        "release/megamode.so" => "ELF", "release/deps/libtokio-1.rlib" => "rlib",
        "release/.fingerprint/tokio-1/lib-tokio" => "0" }.each do |path, text|
        FileUtils.mkdir_p(File.dirname(File.join(extension_dir, path)))
        File.write(File.join(extension_dir, path), text)
      end
      # As Gem::Ext::RakeBuilder runs it: rake in the Rakefile's directory, the extension directory given.
      step = lambda do
        Open3.capture2e(RbConfig.ruby, "-S", "rake", "RUBYARCHDIR=#{extension_dir}", "RUBYLIBDIR=#{extension_dir}",
                        chdir: File.join(gem_dir, "ext", "megamode"))
      end

      # Before the library is in lib/ (it is all the gem would have), the build tree stays.
      out, status = step.call
      expect(status).to be_success, out
      expect(out).to include("kept Cargo's target directory #{extension_dir}")
      expect(File.file?(File.join(extension_dir, "release", "megamode.so"))).to be(true)

      File.write(File.join(gem_dir, "lib", Megamode::NativeLibrary::FILE), "ELF")
      out, status = step.call
      expect(status).to be_success, out
      expect(out).to include("removed Cargo's target directory from #{extension_dir}")
      expect(Dir.children(extension_dir)).to eq(["gem_make.out"])

      out, status = step.call
      expect(status).to be_success, out
      expect(out).to include("nothing to clean"), "a RubyGems that leaves no target directory leaves nothing to do"
    end
  end
end
