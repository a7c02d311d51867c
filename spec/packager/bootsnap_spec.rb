# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

# A Rails app with bootsnap, as `rails new` makes one: `megamode build` boots the package to make
# bootsnap's cache where megamode copies the app on Lambda, and ships it; the package, run as Lambda runs it
# (`megamode invoke --package`: as root, a read-only task root and a fresh /tmp), boots on it. Cache
# hits are seen through bootsnap's own log of misses (BOOTSNAP_LOG), never through time.
RSpec.describe "bootsnap's cache in a package" do
  include PackageBuild

  let(:cache_dir) { "app/#{Megamode::Build::BootsnapCache::CACHE}" }
  let(:record_file) { "app/#{Megamode::Build::BootsnapCache::RECORD}" }

  before(:all) do
    # The Lambda stand-in has no bootsnap: its C source is not in the archive reachable here.
    skip "bootsnap is not installed here" if Gem::Specification.find_all_by_name("bootsnap").empty?
    @dir = PackageBuild.scratch("megamode-bootsnap-spec-")
    app = File.join(@dir, "blog")
    FileUtils.cp_r(RailsApp.with_bootsnap, app)
    @out = File.join(@dir, "out", "blog")
    @status, @build_log = PackageBuild.build(app, @out)
  end

  after(:all) { FileUtils.rm_rf(@dir) if @dir }

  # A copy of the package, changed by the block.
  def variant(name)
    path = File.join(@dir, name)
    FileUtils.rm_rf(path)
    FileUtils.cp_r(@out, path)
    yield path
    path
  end

  # The results and log of a prewarm and a page, the app copied where it is on Lambda
  # (MEGAMODE_TMP's default, a fresh tmpfs in the private namespace), with bootsnap saying each file
  # it had to compile.
  def run_package(package)
    tmp = File.join(@dir, "run-#{File.basename(package)}")
    FileUtils.mkdir_p(tmp)
    env = { "MEGAMODE_TMP" => nil, "BOOTSNAP_LOG" => "1", "SECRET_KEY_BASE" => "s" * 64 }
    invoke(package, [{ "_prewarm" => true }, staged_event("/posts")], tmp: tmp, env: env)
  end

  def misses(log)
    log.scan("[Bootsnap] miss ").size
  end

  it "is made by booting the package where megamode copies it on Lambda, and shipped with what it was made for" do
    expect(@status).to be_success, @build_log
    id = File.read(File.join(@out, "app", ".megamode-build-id")).strip
    expect(@build_log).to include("bootsnap: made its cache for /tmp/megamode/app-#{id}")
    cache = File.join(@out, cache_dir)
    expect(File.file?(File.join(cache, "load-path-cache"))).to be(true)
    compiled = Dir.glob("compile-cache*/**/*", base: cache).select { |f| File.file?(File.join(cache, f)) }
    expect(compiled.size).to be > 100
    record = JSON.parse(File.read(File.join(@out, record_file)))
    sha = JSON.parse(File.read(File.join(@out, "megamode", "bundle.json"))).fetch("sha256")
    expect(record).to eq("app" => "/tmp/megamode/app-#{id}", "bundle" => "/tmp/megamode/bundle-#{sha[0, 16]}",
                         "ruby" => { "version" => RUBY_VERSION, "revision" => RUBY_REVISION,
                                     "platform" => RUBY_PLATFORM })
    expect(Dir.exist?("/tmp/megamode/app-#{id}")).to be(false), "the build leaves no copy of the app behind"
  end

  it "is what the packaged app boots on: bootsnap compiles next to nothing, where an empty cache compiles hundreds" do
    shipped_results, shipped = run_package(@out)
    no_cache = variant("empty") { |p| FileUtils.rm_rf([File.join(p, cache_dir), File.join(p, record_file)]) }
    empty_results, empty = run_package(no_cache)

    [shipped_results, empty_results].each { |results| expect(results[1]["statusCode"]).to eq(200) }
    expect(shipped).to match(/cold start: .*spawn to ready \d+ ms \(bootsnap: the package's cache, \d+ of its \d+ entries written while booting\)/)
    expect(empty).to match(/cold start: .*\(bootsnap: none in the package, written while booting\)/)
    expect(misses(empty)).to be > 300
    # What the boot loaded is cached; what only the first request loads (a few files) is not.
    expect(misses(shipped) * 10).to be < misses(empty), shipped.lines.grep(/Bootsnap/).first(20).join
  end

  # bootsnap's own log of this boot's cache writes: a miss or a stale entry, each written again.
  def writes(log)
    log.scan(/\[Bootsnap\] (?:miss|stale) /).size
  end

  it "is where bootsnap reads it when the app was booted in place, with a cache of its own, which is not shipped",
     :aggregate_failures do
    app = File.join(@dir, "booted", "blog")
    FileUtils.mkdir_p(File.dirname(app))
    FileUtils.cp_r(RailsApp.with_bootsnap, app)
    # Booted in place once, as on a developer's machine: bootsnap's cache of its own in tmp/cache/bootsnap.
    output, status = Open3.capture2e({ "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "s" * 64 },
                                     "bin/rails", "runner", "Post.count", chdir: app)
    expect(status).to be_success, output
    own = File.join(app, Megamode::Build::BootsnapCache::CACHE)
    expect(Dir.glob("compile-cache*/**/*", base: own).count { |f| File.file?(File.join(own, f)) }).to be > 100
    FileUtils.mkdir_p(File.join(own, "from-the-app"))
    out = File.join(@dir, "out-booted", "blog")
    status, build_log = PackageBuild.build(app, out)
    expect(status).to be_success, build_log

    cache = File.join(out, cache_dir)
    top = Dir.children(cache).sort
    expect(top).to include("load-path-cache", a_string_starting_with("compile-cache"))
    expect(top.grep_v(/\Acompile-cache|\Aload-path-cache\z/)).to eq([]), "the app's own cache is not shipped, " \
                                                                          "nor the build's inside it: #{top}"
    results, log = run_package(out)
    expect(results[1]["statusCode"]).to eq(200)
    # As few misses as from an app that never booted in place: only what the first request loads.
    _, fresh = run_package(@out)
    expect(misses(log)).to be <= misses(fresh) + 5, log.lines.grep(/Bootsnap/).first(20).join
    expect(misses(log)).to be < 50
    # The cold start line counts what the boot wrote to the cache: at least what bootsnap says it
    # missed (its log starts after bootsnap/setup has loaded its own files, psych and json, which it
    # writes unsaid on an empty cache), and as few.
    line = log[/cold start: .*/]
    expect(line).to match(/\(bootsnap: the package's cache, \d+ of its \d+ entries written while booting\)/)
    written, entries = line.match(/, (\d+) of its (\d+) entries/).captures.map(&:to_i)
    expect(written).to be >= writes(log)
    expect(written).to be < 50
    expect(entries).to be > 100
  end

  it "made by another Ruby is left out of the app's copy, said once, and the app boots as with an empty cache" do
    other = variant("other-ruby") do |p|
      record = JSON.parse(File.read(File.join(p, record_file)))
      record["ruby"]["revision"] = "0123456789"
      File.write(File.join(p, record_file), JSON.generate(record))
    end
    results, log = run_package(other)

    expect(results[1]["statusCode"]).to eq(200)
    said = log.lines.grep(/bootsnap cache does not fit here/)
    expect(said.size).to eq(1), log
    expect(said.first).to include("made by Ruby #{RUBY_VERSION} (0123456789", "this is Ruby #{RUBY_VERSION} (#{RUBY_REVISION}")
    expect(log).to match(/cold start: .*\(bootsnap: the package's cache does not fit here, written while booting\)/)
    expect(misses(log)).to be > 300
  end
end
