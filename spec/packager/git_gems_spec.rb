# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

# `megamode build` on an app with gems from git sources, offline: the repositories are made here,
# and `bundle install --local` checks them out under a GEM_HOME of the spec's own (the developer's
# gems, as rbenv or chruby set one; Debian's Bundler sees the machine's rack and puma beside it,
# which a BUNDLE_PATH would hide). Bundler at boot looks for each git source's checkout at
# bundler/gems/<repo>-<sha12> and for each gem at its place in it, a subdirectory in a monorepo
# (rails/rails: actionpack/, activerecord/, ...).
RSpec.describe "megamode build with gems from git sources" do
  include PackageBuild

  def sh(*argv, chdir:, env: {})
    out, status = Open3.capture2e(env, *argv, chdir: chdir)
    raise "#{argv.join(" ")} failed in #{chdir}:\n#{out}" unless status.success?

    out
  end

  # A gem `name` in `dir`, whose library says where it was loaded from.
  def write_gem(dir, name, body: %(DIR = __dir__), depends: nil)
    FileUtils.mkdir_p(File.join(dir, "lib"))
    File.write(File.join(dir, "#{name}.gemspec"), <<~RUBY)
      Gem::Specification.new do |s|
        s.name = #{name.inspect}
        s.version = "0.1.0"
        s.summary = "a fixture gem"
        s.authors = ["megamode"]
        s.files = ["lib/#{name}.rb"]
        #{%(s.add_dependency #{depends.inspect}) if depends}
      end
    RUBY
    File.write(File.join(dir, "lib", "#{name}.rb"), "module Fixture#{name.capitalize}\n  #{body}\nend\n")
  end

  # A repository at `dir` with what `block` writes there, committed; its revision.
  def repository(dir)
    FileUtils.mkdir_p(dir)
    yield dir
    sh("git", "init", "-q", chdir: dir)
    sh("git", "add", "-A", chdir: dir)
    sh("git", "-c", "user.name=megamode", "-c", "user.email=megamode@example.com", "commit", "-qm", "fixture", chdir: dir)
    sh("git", "rev-parse", "HEAD", chdir: dir).strip
  end

  before(:all) do
    @dir = PackageBuild.scratch("megamode-git-gems-spec-")
    # A monorepo: gems a and b in subdirectories, a VERSION at its root that a reads, a gem c the app
    # does not use, and documentation.
    mono = File.join(@dir, "repos", "mono")
    @mono_sha = repository(mono) do |root|
      File.write(File.join(root, "VERSION"), "7.0.0\n")
      write_gem(File.join(root, "a"), "a",
                body: %(DIR = __dir__\n  VERSION = File.read(File.expand_path("../../VERSION", __dir__)).strip))
      write_gem(File.join(root, "b"), "b")
      write_gem(File.join(root, "c"), "c")
      FileUtils.mkdir_p(File.join(root, "docs"))
      File.write(File.join(root, "docs", "guide.md"), "# a guide\n")
    end
    # A repository that is one gem, at its root.
    @solo_sha = repository(File.join(@dir, "repos", "solo")) { |root| write_gem(root, "solo") }
    # As rails/rails is: a gem at the root (rails.gemspec) that depends on gems in subdirectories.
    @meta_sha = repository(File.join(@dir, "repos", "meta")) do |root|
      write_gem(root, "meta", depends: "part")
      write_gem(File.join(root, "part"), "part")
      FileUtils.mkdir_p(File.join(root, "tools"))
      File.write(File.join(root, "tools", "release.rb"), "# a tool\n")
    end

    @app = File.join(@dir, "app")
    FileUtils.mkdir_p(@app)
    File.write(File.join(@app, "Gemfile"), <<~RUBY)
      source "https://rubygems.org"

      gem "rack"
      gem "puma"
      git "file://#{mono}" do
        gem "a"
        gem "b"
      end
      gem "solo", git: "file://#{File.join(@dir, "repos", "solo")}"
      gem "meta", git: "file://#{File.join(@dir, "repos", "meta")}"
    RUBY
    File.write(File.join(@app, "config.ru"), <<~RUBY)
      require "json"
      require "a"
      require "b"
      require "solo"
      require "part"
      run(lambda do |_env|
        [200, { "content-type" => "application/json" },
         [JSON.generate(a: FixtureA::DIR, version: FixtureA::VERSION, b: FixtureB::DIR, solo: FixtureSolo::DIR,
                        part: FixturePart::DIR)]]
      end)
    RUBY
    @gem_home = File.join(@dir, "gems")
    # The git checkouts go to GEM_HOME; rack and puma are found where this Ruby has them (GEM_PATH:
    # Debian's directories, or the stand-in's /usr/local/bundle, which GEM_HOME alone would hide).
    @env = { "GEM_HOME" => @gem_home, "GEM_PATH" => [@gem_home, *Gem.path].uniq.join(File::PATH_SEPARATOR),
             "BUNDLE_GEMFILE" => nil, "BUNDLE_PATH" => nil, "BUNDLE_APP_CONFIG" => nil }
    sh("bundle", "install", "--local", chdir: @app, env: @env)
    @mono = "mono-#{@mono_sha[0, 12]}"
    @solo = "solo-#{@solo_sha[0, 12]}"
    @meta = "meta-#{@meta_sha[0, 12]}"
  end

  after(:all) { FileUtils.rm_rf(@dir) }

  # The package built from `app` into `out`, and its bundle's listing.
  def build(app, out)
    status, log = PackageBuild.build(app, out, env: @env)
    raise "megamode build failed:\n#{log}" unless status.success?

    listing, = Open3.capture2("tar", "-I", "zstd", "-tf", File.join(out, "megamode", "bundle.tar.zst"))
    [log, listing.lines.map(&:chomp)]
  end

  # What the package's app says about where its git gems were loaded from, run without the developer's
  # gems (moved away for the run), so that only the package can have them.
  def served(out)
    away = "#{@gem_home}.away"
    FileUtils.mv(@gem_home, away)
    begin
      (result,), = PackageBuild.invoke(out, [PackageBuild.staged_event("/")], tmp: @dir)
    ensure
      FileUtils.mv(away, @gem_home)
    end
    expect(result["statusCode"]).to eq(200), result.inspect
    JSON.parse(result["body"])
  end

  it "has bundle install check out the monorepo's whole tree, the case the package must reproduce" do
    checkout = File.join(@gem_home, "bundler", "gems", @mono)

    expect(Dir.children(checkout).sort).to eq(%w[.git VERSION a b c docs])
  end

  describe "from the bundle" do
    before(:all) do
      @out = File.join(@dir, "out", "bundled")
      @log, @listing = build(@app, @out)
    end

    it "copies each git source's checkout once, keeping every gem at its place in it" do
      abi = RbConfig::CONFIG["ruby_version"]
      gems = "ruby/#{abi}/bundler/gems"
      kept = @listing.select { |entry| entry.start_with?("#{gems}/") }.map { |entry| entry.delete_prefix("#{gems}/") }

      expect(kept).to include("#{@mono}/a/a.gemspec", "#{@mono}/a/lib/a.rb", "#{@mono}/b/b.gemspec", "#{@mono}/b/lib/b.rb",
                              "#{@mono}/VERSION", "#{@solo}/solo.gemspec", "#{@solo}/lib/solo.rb",
                              "#{@meta}/meta.gemspec", "#{@meta}/part/part.gemspec", "#{@meta}/part/lib/part.rb")
      expect(kept.map { |entry| entry.split("/").first }.uniq.sort).to eq([@meta, @mono, @solo].sort)
    end

    it "leaves out the checkouts' git metadata and the monorepo's directories that hold no gem the app uses" do
      gems = "ruby/#{RbConfig::CONFIG["ruby_version"]}/bundler/gems"

      expect(@listing.grep(%r{/\.git(/|\z)})).to eq([])
      expect(@listing.grep(%r{\A#{gems}/#{@mono}/(c|docs)(/|\z)})).to eq([])
      expect(@listing).to include("#{gems}/#{@meta}/tools/release.rb"), "with a gem at the root, all of it is the gem's"
    end

    it "boots and serves, with the git gems loaded from the package's bundle" do
      body = served(@out)
      bundle = %r{/bundle-\h+/ruby/[\d.]+/bundler/gems/}

      expect(body["a"]).to match(%r{#{bundle}#{@mono}/a/lib\z})
      expect(body["b"]).to match(%r{#{bundle}#{@mono}/b/lib\z})
      expect(body["solo"]).to match(%r{#{bundle}#{@solo}/lib\z})
      expect(body["part"]).to match(%r{#{bundle}#{@meta}/part/lib\z})
      expect(body["version"]).to eq("7.0.0"), "a reads the VERSION at its repository's root"
    end
  end

  describe "from the app's vendor/cache" do
    before(:all) do
      # As `bundle cache --all` leaves them: the checkouts in vendor/cache, which Bundler, finding
      # them there, uses in place of bundler/gems.
      @cached_app = File.join(@dir, "cached_app")
      FileUtils.cp_r(@app, @cached_app)
      cache = File.join(@cached_app, "vendor", "cache")
      FileUtils.mkdir_p(cache)
      [@mono, @solo, @meta].each do |name|
        FileUtils.cp_r(File.join(@gem_home, "bundler", "gems", name), cache)
        FileUtils.rm_rf(File.join(cache, name, ".git"))
        FileUtils.touch(File.join(cache, name, ".bundlecache"))
      end
      @out = File.join(@dir, "out", "cached")
      @log, @listing = build(@cached_app, @out)
    end

    # Where Bundler loads a cached checkout from depends on its version: Debian 12's Bundler 2.3 uses
    # the copy in vendor/cache in place; Debian 13's and the stand-ins' (2.5 and later) use the
    # checkout installed under bundler/gems when there is one, as there is here. The package follows
    # whichever this Bundler chose, carrying that checkout once.
    it "boots and serves, with the git gems loaded from where this Bundler uses their checkouts, carried once" do
      body = served(@out)

      expect(File.file?(File.join(@out, "app", "vendor", "cache", @mono, "a", "a.gemspec"))).to be(true)
      places = { "a" => "#{@mono}/a/lib", "solo" => "#{@solo}/lib" }
      places.each do |gem, place|
        expect(body[gem]).to match(%r{(/app-\h+/vendor/cache|/bundle-\h+/ruby/[^/]+/bundler/gems)/#{place}\z}), body.inspect
      end
      if body["a"].include?("/vendor/cache/")
        expect(@listing.grep(%r{/bundler/gems/})).to eq([]), "used from the app's vendor/cache: not in the bundle too"
      end
    end
  end
end
