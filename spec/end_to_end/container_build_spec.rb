# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "rubygems/package"
require "megamode/build"

# `megamode build --container` run for real, by the precompiled gem (`rake native:gem`): in Podman,
# in the Lambda stand-in's SAM build image (bin/lambda-image), it builds a small Rack app (rack and
# puma) for ruby3.4 with no Rust (the gem's library for Ruby 3.4 is copied in), and the package and
# its zip, run by the ruby3.4 stand-in's `run` flavour (bin/lambda-root), answer 200.
#
# One step is replaced, as nothing here reaches RubyGems.org: the app's gems come from its
# vendor/cache (Bundler's own offline source, `bundle cache`), which holds the .gem files the
# stand-in's gem layer installed (bin/lib/lambda_gems.rb), and the app's Gemfile.lock is made from
# them by the image's Bundler. The container's `bundle install` is the one megamode runs for any app.
#
# Skipped, saying why, without root (bin/lambda-root and the stand-in's layers are root's), an engine
# that runs, the stand-in's image and layers, or the precompiled gem built from this checkout's Ruby;
# bin/test runs it on the host, as root, after building the gem and the images.
RSpec.describe "megamode build --container, run for real", :image do
  roots = StandInImages::ROOTS
  runtime = "ruby3.4"
  abi = "3.4"
  gem_cache = File.join(roots, "gems-#{runtime}", "usr", "local", "bundle", "cache")
  let(:lambda_root) { File.join(SpecHelpers::ROOT, "bin", "lambda-root") }

  before(:all) do
    @engine = stand_in_engine(runtime, layers: ["runtime", runtime, "gems-#{runtime}"], tool: "bin/lambda-root")
    image = Megamode::Build::Container.base_image(runtime)
    said, status = Open3.capture2e(@engine, "image", "inspect", "--format", "{{json .Config.Labels}}", image)
    unless status.success? && said.include?("megamode.stand-in")
      skip "#{image} is not the Lambda stand-in's here (#{said.lines.grep(/\S/).last&.strip}): bin/lambda-image #{runtime}"
    end
    gem_file = NativeGemFile.path
    skip "no #{gem_file.delete_prefix("#{SpecHelpers::ROOT}/")}: bin/test builds it first (`rake native:gem`, as root)" unless
      File.file?(gem_file)

    # In the checkout, which bin/lambda-root's run flavour shows (read-only, to a user that owns
    # nothing: hence readable by all).
    FileUtils.mkdir_p(File.join(SpecHelpers::ROOT, "tmp"))
    @dir = Dir.mktmpdir("container-build-spec-", File.join(SpecHelpers::ROOT, "tmp"))
    File.chmod(0o755, @dir)
    # The precompiled gem as it installs: megamode's Ruby and lib/megamode/<abi>/megamode.so, no Rust.
    @megamode = File.join(@dir, "megamode")
    Gem::Package.new(gem_file).extract_files(@megamode)
    stale = NativeGemFile.stale(@megamode)
    skip "#{File.basename(gem_file)} holds other Ruby files than this checkout (#{stale.first(3).join(", ")}): run `rake native:gem`" unless
      stale.empty?

    @app = File.join(@dir, "hello")
    FileUtils.cp_r(fixture_app("rack_hello"), @app)
    File.write(File.join(@app, "Gemfile"), %(source "https://rubygems.org"\n\ngem "rack"\ngem "puma"\n))
    cache = File.join(@app, "vendor", "cache")
    FileUtils.mkdir_p(cache)
    %w[rack puma nio4r].each do |name|
      found = Dir.glob(File.join(gem_cache, "#{name}-[0-9]*.gem"))
      raise "no #{name} gem (one) in #{gem_cache}: #{found.inspect}" unless found.size == 1

      FileUtils.cp(found.first, cache)
    end
    said, status = Open3.capture2e(@engine, "run", "--rm", "-v", "#{@app}:/app", "-w", "/app", "-e", "HOME=/tmp",
                                   "-e", "BUNDLE_PATH=/tmp/bundle", image, "bundle", "install", "--local")
    raise "bundle install --local in #{image} could not lock the app's gems:\n#{said}" unless status.success?
  end

  after(:all) { FileUtils.rm_rf(@dir) if @dir }

  # `megamode invoke --package package --get /` by the gem's own command in the runtime's stand-in's
  # run flavour: Lambda's Ruby, no compiler, no gems but the package's.
  def invoke_in_stand_in(package, runtime)
    out, err, status = Open3.capture3(lambda_root, runtime, "run", "--", File.join(@megamode, "exe", "megamode"),
                                      "invoke", "--package", package, "--get", "/", chdir: SpecHelpers::ROOT)
    expect(status).to be_success, "megamode invoke in the #{runtime} stand-in:\n#{err}#{out}"
    JSON.parse(out.lines.last)
  end

  it "builds a package and its zip with the gem's library and no Rust, which the ruby3.4 stand-in runs" do
    out = File.join(@dir, "out", "hello")
    cache = File.join(@dir, "container-cache")
    env = { "MEGAMODE_CONTAINER_ENGINE" => @engine, "MEGAMODE_CONTAINER_CACHE" => cache, "RUBYLIB" => nil,
            "RUBYOPT" => nil, "BUNDLE_GEMFILE" => nil }
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    log, status = Open3.capture2e(env, RbConfig.ruby, File.join(@megamode, "exe", "megamode"), "build", "--container",
                                  "--runtime", runtime, "--app", @app, "--out", out)
    seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    expect(status).to be_success, log
    puts "\n  megamode build --container --runtime #{runtime} in #{File.basename(@engine)}: #{seconds.round(1)} s"

    library = File.join(@megamode, "lib", "megamode", abi, Megamode::NativeLibrary::FILE)
    expect(log).to include("megamode's extension: precompiled, #{library}")
    expect(log).not_to include("cargo build")
    dockerfile = File.read(File.join(cache, "images", runtime, "Dockerfile"))
    expect(dockerfile).not_to include("rustup")
    expect(Dir.exist?(File.join(cache, "cargo"))).to be(false)
    target = JSON.parse(File.read(File.join(out, "megamode", "target.json")))
    expect(target).to include("runtime" => runtime, "local" => false, "built_with_ruby" => start_with("#{abi}."))
    carried = File.join(out, "megamode", "lib", "megamode", Megamode::NativeLibrary::FILE)
    expect(File.binread(carried)).to eq(File.binread(library))

    unzipped = File.join(@dir, "unzipped")
    said, status = Open3.capture2e("unzip", "-q", "#{out}.zip", "-d", unzipped)
    expect(status).to be_success, said
    [out, unzipped].each do |package|
      answer = invoke_in_stand_in(package, runtime)
      expect(answer).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(answer["headers"]).to include("x-served-by" => "rack_hello")
    end
  end
end
