# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

# A gem whose compiled part is missing from the bundle and whose authors document a pure-Ruby
# fallback (nio4r: NIO4R_PURE=true) runs on that fallback because the package says so, not because
# the machine that runs it happens to set the variable: Lambda sets none of them.
RSpec.describe "gems on their pure-Ruby fallback" do
  # A gem home holding nio4r as it is when its compiled part could not be built: its Ruby files
  # (this machine's nio4r's) under a version above any other, and no extension. As the Lambda
  # stand-in installs it (bin/lib/lambda_gems.rb), and as a bundle copied from where it did not build.
  def pure_nio4r(home, version: "2.99.0")
    installed = Gem::Specification.find_by_name("nio4r")
    dir = File.join(home, "gems", "nio4r-#{version}")
    FileUtils.mkdir_p(dir)
    FileUtils.cp_r(File.join(installed.full_gem_path, "lib"), dir)
    FileUtils.rm_f(Dir.glob(File.join(dir, "lib", "**", "*.{so,bundle}")))
    spec = Gem::Specification.new do |s|
      s.name = "nio4r"
      s.version = version
      s.summary = "nio4r without its compiled part"
      s.authors = ["megamode's tests"]
      s.files = Dir.glob("**/*", base: dir).select { |f| File.file?(File.join(dir, f)) }
      s.require_paths = ["lib"]
    end
    FileUtils.mkdir_p(File.join(home, "specifications"))
    File.write(File.join(home, "specifications", "nio4r-#{version}.gemspec"), spec.to_ruby)
    spec
  end

  describe Megamode::Build::Fallbacks do
    around do |example|
      @home = PackageBuild.scratch("megamode-fallbacks-")
      example.run
    ensure
      FileUtils.rm_rf(@home)
    end

    gem = Struct.new(:name, :version, :full_name)
    let(:spec) { gem.new("nio4r", "2.99.0", "nio4r-2.99.0") }

    it "turns on nio4r's fallback when its compiled library is nowhere in the bundle" do
      FileUtils.mkdir_p(File.join(@home, "gems", "nio4r-2.99.0", "lib"))
      fallbacks = described_class.new(@home, [spec])

      expect(fallbacks.gems).to eq(["nio4r"])
      expect(fallbacks.environment).to eq("NIO4R_PURE" => "true")
      expect(fallbacks.messages.join).to include("nio4r-2.99.0 has no compiled nio4r_ext", "NIO4R_PURE=true")
    end

    it "needs none when the library is in the gem's extension directory or its own" do
      ext = File.join(@home, "extensions", "x86_64-linux", "3.4.0", "nio4r-2.99.0")
      FileUtils.mkdir_p(ext)
      File.write(File.join(ext, "nio4r_ext.so"), "")
      expect(described_class.new(@home, [spec]).environment).to eq({})

      FileUtils.rm_rf(File.join(@home, "extensions"))
      FileUtils.mkdir_p(File.join(@home, "gems", "nio4r-2.99.0", "lib"))
      File.write(File.join(@home, "gems", "nio4r-2.99.0", "lib", "nio4r_ext.so"), "")
      expect(described_class.new(@home, [spec]).gems).to eq([])
    end

    it "knows nothing of gems without a documented fallback" do
      other = gem.new("bootsnap", "1.0", "bootsnap-1.0")
      expect(described_class.new(@home, [other]).gems).to eq([])
    end

    # websocket-driver rescues the failed require of its compiled part from 0.6.5 on: 0.6.3 (Debian
    # 12's and 13's) raises the LoadError wherever it is loaded.
    it "counts websocket-driver's fallback from the version that has it, and warns of an older one" do
      new_one = gem.new("websocket-driver", "0.6.5", "websocket-driver-0.6.5")
      old_one = gem.new("websocket-driver", "0.6.3", "websocket-driver-0.6.3")

      expect(described_class.new(@home, [new_one]).gems).to eq(["websocket-driver"])
      expect(described_class.new(@home, [new_one]).warnings).to eq([])
      older = described_class.new(@home, [old_one])
      expect(older.gems).to eq([])
      expect(older.warnings.join).to include("websocket-driver-0.6.3 has no compiled websocket_mask",
                                             "no pure-Ruby fallback before websocket-driver 0.6.5",
                                             "bundle update websocket-driver")
    end
  end

  describe Megamode::PackageTarget do
    it "sets the recorded variables the function does not set, and keeps those it does" do
      env = { "KEPT" => "mine" }
      described_class.apply_environment({ "environment" => { "NIO4R_PURE" => "true", "KEPT" => "package's" } }, env)
      expect(env).to eq("NIO4R_PURE" => "true", "KEPT" => "mine")
      described_class.apply_environment({}, env)
      expect(env.size).to eq(2), "a record without the field sets nothing"
    end

    it "refuses a record whose environment is not names and strings" do
      Dir.mktmpdir do |dir|
        path = File.join(dir, "target.json")
        base = { "runtime" => "ruby3.4", "arch" => "x86_64", "ruby" => "3.4", "local" => false }
        [{ "A=B" => "x" }, { "A" => 1 }, ["NIO4R_PURE"], { "A" => "x\u0000y" }].each do |bad|
          File.write(path, JSON.generate(base.merge("environment" => bad)))
          expect { described_class.read(path) }
            .to raise_error(Megamode::BootError, /its field "environment" is .* where an object of variable names/)
        end
      end
    end
  end

  # The symptom: puma needs nio4r, nio4r without NIO4R_PURE requires its compiled part, so without
  # the switch in the package every request is a 502 (`cannot load such file -- nio4r_ext`).
  describe "a package whose nio4r has no compiled part", :builds do
    before(:all) do
      @dir = PackageBuild.scratch("megamode-fallbacks-e2e-")
      @home = File.join(@dir, "gems")
      @pure = pure_nio4r(@home)
      # This machine's gems, and the home with the pure nio4r, whose version Bundler prefers.
      @env = { "GEM_PATH" => [@home, *Gem.path].join(File::PATH_SEPARATOR) }
      app = PackageBuild.app("rack_hello", @dir, ruby_line: nil)
      FileUtils.rm_f(File.join(app, "Gemfile.lock"))
      PackageBuild.lock!(app, env: @env)
      @locked = File.read(File.join(app, "Gemfile.lock"))
      @package = File.join(@dir, "out", "hello")
      status, @log = PackageBuild.build(app, @package, env: @env)
      raise "megamode build failed:\n#{@log}" unless status.success?
    end
    after(:all) { FileUtils.rm_rf(@dir) if @dir }

    it "records NIO4R_PURE in the package and says so in the build" do
      expect(@locked).to include("nio4r (2.99.0)"), "the app is locked to the nio4r without its compiled part"
      expect(JSON.parse(File.read(File.join(@package, "megamode", "target.json")))["environment"])
        .to eq("NIO4R_PURE" => "true")
      expect(@log).to include("megamode build: nio4r-2.99.0 has no compiled nio4r_ext in the bundle: it runs on its " \
                              "pure-Ruby fallback (the package sets NIO4R_PURE=true at boot)")
    end

    it "answers with NIO4R_PURE unset where it runs, as on Lambda" do
      results, log = PackageBuild.invoke(@package, [PackageBuild.staged_event("/whoami")], tmp: @dir,
                                                                                           env: { "NIO4R_PURE" => nil })
      expect(results.first["statusCode"]).to eq(200), log
      expect(log).not_to include("nio4r_ext")
    end
  end
end
