# frozen_string_literal: true

require "open3"
require "rbconfig"
require "rubygems/package"
require "megamode/runtime/native_library"
require "megamode/build/elf"

# The precompiled gem (`rake native:gem`): installed from its .gem file into an empty GEM_HOME with
# no Rust on PATH, it loads and serves. bin/test builds it once, before the Debian 13 root and the
# Lambda stand-ins run this (Debian's Ruby 3.3, upstream's 3.3 and 3.4): building it compiles the extension
# in both stand-ins, which cannot be entered from inside one of them or the Debian 13 root, and takes
# minutes; installing it takes seconds. Where it is absent, or older than the checkout's Ruby, the
# examples skip, saying so.
RSpec.describe "the precompiled megamode gem" do
  platform = NativeGemFile::PLATFORM
  gem_file = NativeGemFile.path
  abi = Megamode::PackageTarget.abi
  file = Megamode::NativeLibrary::FILE
  # What its libraries may link: glibc (the C library and the loader; built on glibc 2.31, Rust's
  # standard library also names libpthread and libdl, which glibc 2.34 merged into libc and keeps as
  # stubs) and libgcc_s. No libruby: the gem loads in Debian's Ruby (libruby-3.3.so.3.3) as in
  # upstream's and Lambda's (libruby.so.3.3).
  system_libraries = %w[libc.so.6 libpthread.so.0 libdl.so.2 ld-linux-x86-64.so.2 libgcc_s.so.1]
  # The stand-ins' glibc: the oldest the gem loads on (Lambda has 2.34).
  oldest_glibc = "2.31"

  before do
    skip "no #{gem_file.delete_prefix("#{SpecHelpers::ROOT}/")}: bin/test builds it first (`rake native:gem`, as root)" unless File.file?(gem_file)
  end

  # This PATH without the directories that hold cargo.
  def path_without_cargo
    ENV.fetch("PATH").split(File::PATH_SEPARATOR).reject { |d| File.executable?(File.join(d, "cargo")) }
       .join(File::PATH_SEPARATOR)
  end

  # Installs the gem into an empty GEM_HOME under `dir` with no cargo on PATH; the environment that
  # finds it (and this machine's gems: puma, rack), and the installed gem's directory.
  def install(gem_file, dir)
    home = File.join(dir, "home")
    env = { "GEM_HOME" => home, "GEM_PATH" => [home, *Gem.path].join(File::PATH_SEPARATOR), "PATH" => path_without_cargo }
    out, status = Open3.capture2e(env, "sh", "-c", "command -v cargo rustc")
    expect(status).not_to be_success, "cargo on PATH: #{out}"

    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    out, status = Open3.capture2e(env, File.join(RbConfig::CONFIG["bindir"], "gem"), "install", "--local", "--no-document",
                                  gem_file, chdir: dir)
    seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    expect(status).to be_success, out
    expect(out).not_to include("Building native extensions")
    puts "\n  `gem install` of #{File.basename(gem_file)} (#{File.size(gem_file)} bytes) on Ruby #{RUBY_VERSION} " \
         "(#{RUBY_PLATFORM}, RubyGems #{Gem::VERSION}): #{seconds.round(2)} s"
    gem_dir = File.join(home, "gems", File.basename(gem_file, ".gem"))
    expect(File.directory?(gem_dir)).to be(true), Dir.glob("#{home}/gems/*").inspect
    [env, gem_dir]
  end

  # Skips when the gem's Ruby files are not the checkout's: it was built before the last change.
  def skip_when_stale(gem_file, gem_dir)
    stale = NativeGemFile.stale(gem_dir)
    skip "#{File.basename(gem_file)} holds other Ruby files than this checkout (#{stale.first(3).join(", ")}): run `rake native:gem`" unless stale.empty?
  end

  it "holds megamode's Ruby and commands and a library for Ruby 3.3 and 3.4 that links no libruby, and no Rust" do
    spec = Gem::Package.new(gem_file).spec

    expect(spec.platform.to_s).to eq(platform)
    expect(spec.extensions).to eq([])
    expect(spec.dependencies).to eq([])
    expect(spec.required_ruby_version).to eq(Gem::Requirement.new(">= 3.3", "< 3.5.dev"))
    source = Dir.chdir(SpecHelpers::ROOT) { Gem::Specification.load(File.join(SpecHelpers::ROOT, "megamode.gemspec")) }
    expect([spec.name, spec.version, spec.summary, spec.license, spec.executables])
      .to eq([source.name, source.version, source.summary, source.license, source.executables])
    Dir.mktmpdir("megamode-native-gem-") do |dir|
      Gem::Package.new(gem_file).extract_files(dir)
      contents = Dir.glob("**/*", base: dir).select { |f| File.file?(File.join(dir, f)) }
      libraries = contents.select { |f| File.basename(f) == file }
      expect(libraries).to contain_exactly("lib/megamode/3.3/#{file}", "lib/megamode/3.4/#{file}")
      expect(contents).to include("lib/megamode.rb", "lib/megamode/runtime/native_library.rb", "exe/megamode")
      expect(contents.grep(%r{\A(ext/|Cargo\.)|\.rs\z})).to eq([])

      libraries.each do |library|
        path = File.join(dir, library)
        out, status = Open3.capture2e("readelf", "-d", path)
        expect(status).to be_success, out
        needed = out.scan(/\(NEEDED\)\s+Shared library: \[(.*?)\]/).flatten
        expect(needed).to include("libc.so.6")
        expect(needed.grep(/libruby/)).to eq([])
        expect(needed - system_libraries).to eq([]), "#{library} links #{needed.inspect}"
        elf = Megamode::Build::Elf.read(path)
        expect(elf.machine_name).to eq("x86_64")
        expect(Gem::Version.new(elf.glibc_required)).to be <= Gem::Version.new(oldest_glibc)
      end
    end
  rescue Errno::ENOENT => e
    raise unless e.message.include?("readelf")

    skip "readelf (binutils) is not installed here"
  end

  context "on a Ruby it has a library for" do
    before do
      skip "the gem has libraries for Ruby 3.3 and 3.4; this is #{RUBY_VERSION}" unless %w[3.3 3.4].include?(abi)
    end

    it "installs in seconds with no cargo, loads its library for this Ruby, and serves an HTTP API event through puma" do
      Dir.mktmpdir("megamode-native-gem-") do |dir|
        env, gem_dir = install(gem_file, dir)
        skip_when_stale(gem_file, gem_dir)
        # RubyGems takes x86_64-linux for this Ruby's platform (Debian's Ruby calls itself x86_64-linux-gnu).
        out, status = Open3.capture2e(env, RbConfig.ruby, "-e", "puts RUBY_PLATFORM, Gem::Platform.local", chdir: dir)
        expect(status).to be_success, out
        puts "  RUBY_PLATFORM #{out.lines.first.chomp}; RubyGems' platform #{out.lines.last.chomp}"

        event = File.join(dir, "event.json").tap { |f| File.write(f, JSON.generate(v2_event("/"))) }
        script = <<~'RUBY'
          require "megamode"
          require "json"
          app, event = ARGV
          Megamode.configure { |c| c.app_root = app }
          context = Megamode::Context.new(aws_request_id: "native-gem", deadline_ms: (Time.now.to_f * 1000).to_i + 30_000)
          result = Megamode.handler(event: JSON.parse(File.read(event)), context: context)
          library = $LOADED_FEATURES.grep(/megamode\.(so|bundle)\z/)
          Megamode.shutdown
          puts JSON.generate("result" => result, "library" => library)
        RUBY
        # Outside the checkout, so only the installed gem can answer.
        out, err, status = Open3.capture3(env, RbConfig.ruby, "-e", script, fixture_app("rack_hello"), event, chdir: dir)
        expect(status).to be_success, err + out
        answer = JSON.parse(out.lines.last)
        expect(answer["result"]).to include("statusCode" => 200, "body" => "Hello from Rack", "cookies" => ["visited=yes; path=/"])
        expect(answer["result"]["headers"]).to include("x-served-by" => "rack_hello")
        expect(out).to include("Rack: handling GET /")
        expect(answer["library"].map { |f| File.realpath(f) }).to eq([File.realpath(File.join(gem_dir, "lib", "megamode", abi, file))])
      end
    end

    # As `gem install megamode` chooses from a gem server holding both: here, two local .gem files.
    it "is the one RubyGems chooses over the source gem for this Ruby's platform" do
      Dir.mktmpdir("megamode-native-gem-") do |dir|
        out, status = Open3.capture2e("gem", "build", "megamode.gemspec", "--output", File.join(dir, "megamode-#{Megamode::VERSION}.gem"),
                                      chdir: SpecHelpers::ROOT)
        expect(status).to be_success, out
        FileUtils.cp(gem_file, dir)
        home = File.join(dir, "home")
        env = { "GEM_HOME" => home, "GEM_PATH" => [home, *Gem.path].join(File::PATH_SEPARATOR), "PATH" => path_without_cargo }

        out, status = Open3.capture2e(env, File.join(RbConfig::CONFIG["bindir"], "gem"), "install", "--local", "--no-document",
                                      "megamode", chdir: dir)
        expect(status).to be_success, out
        expect(Dir.children(File.join(home, "gems"))).to eq([File.basename(gem_file, ".gem")])
      end
    end

    it "puts its library for this Ruby into the packages the installed megamode builds" do
      Dir.mktmpdir("megamode-native-gem-") do |dir|
        env, gem_dir = install(gem_file, dir)
        skip_when_stale(gem_file, gem_dir)
        app = PackageBuild.app("rack_hello", dir)
        out = File.join(dir, "out", "rack_hello")
        megamode = File.join(env["GEM_HOME"], "bin", "megamode") # the command RubyGems installed
        log, status = Open3.capture2e(env, megamode, "build", "--app", app, "--out", out, "--local", "--no-boot-check",
                                      chdir: dir)
        expect(status).to be_success, log

        carried = Dir.glob("**/#{file}", base: out)
        expect(carried).to eq(["megamode/lib/megamode/#{file}"])
        expect(File.binread(File.join(out, carried.first)))
          .to eq(File.binread(File.join(gem_dir, "lib", "megamode", abi, file)))
        event = File.join(dir, "event.json").tap { |f| File.write(f, JSON.generate(v2_event("/"))) }
        answer, log, status = Open3.capture3(env, megamode, "invoke", "--package", out, "--event", event, chdir: dir)
        expect(status).to be_success, log
        expect(JSON.parse(answer.lines.last)).to include("statusCode" => 200, "body" => "Hello from Rack")
      end
    end

    it "refuses, naming both Rubies, the other Ruby's library put in this one's place" do
      Dir.mktmpdir("megamode-native-gem-") do |dir|
        env, gem_dir = install(gem_file, dir)
        other = abi == "3.3" ? "3.4" : "3.3"
        FileUtils.cp(File.join(gem_dir, "lib", "megamode", other, file), File.join(gem_dir, "lib", "megamode", abi, file))

        out, status = Open3.capture2e(env, RbConfig.ruby, "-e", 'require "megamode"', chdir: dir)
        expect(status).not_to be_success
        expect(out).to include("LoadError", "compiled for Ruby #{other} and this is Ruby #{abi}")
      end
    end
  end

  context "on a Ruby it has no library for" do
    before { skip "the gem has a library for this Ruby (#{RUBY_VERSION})" if %w[3.3 3.4].include?(abi) }

    it "is refused by gem install, naming the Rubies it is for (such a Ruby installs the source gem)" do
      Dir.mktmpdir("megamode-native-gem-") do |dir|
        home = File.join(dir, "home")
        out, status = Open3.capture2e({ "GEM_HOME" => home }, File.join(RbConfig::CONFIG["bindir"], "gem"), "install",
                                      "--local", "--no-document", gem_file, chdir: dir)
        expect(status).not_to be_success
        expect(out).to include("requires Ruby version >= 3.3, < 3.5.dev")
      end
    end
  end
end
