# frozen_string_literal: true

require "spec_helper"
require "megamode/build"
require "open3"
require "stringio"
require "yaml"

# `megamode build --image --snapstart [--prime PATH]`: what the template says, and what the build
# refuses before it does anything. Images cannot be built here (a package for an image needs a Lambda
# target, and this Ruby is none), so the template is checked as Files writes it and the refusals as
# the build makes them, before any of its work.
RSpec.describe "megamode build --snapstart" do
  let(:files) { Megamode::Build::Files }
  let(:exe) { File.join(SpecHelpers::ROOT, "exe", "megamode") }

  around do |example|
    @dir = PackageBuild.scratch("megamode-snapbuild-")
    example.run
  ensure
    FileUtils.rm_rf(@dir)
  end

  # CloudFormation's tags (!Ref, !If, !Sub) read as their plain values: what is checked is the YAML.
  def parse(text)
    tags = Class.new(Psych::Visitors::ToRuby) { def deserialize(node) = node.tag&.start_with?("!") ? node.value : super }
    YAML.parse(text).then { |doc| tags.create.accept(doc) }
  end

  def template(**overrides)
    files.template_yaml(name: "shop", code_uri: "megamode.zip", runtime: "ruby3.4", architecture: "arm64",
                        memory: 1024, ephemeral_mb: 512, env: { "RAILS_ENV" => "production" }, version: "0.1.0",
                        rails: true, image: { context: "megamode", tag: "megamode-shop:latest" }, **overrides)
  end

  def app_dir
    File.join(@dir, "shop").tap do |app|
      FileUtils.mkdir_p(app)
      %w[config.ru Gemfile Gemfile.lock].each { |f| File.write(File.join(app, f), "") }
    end
  end

  it "turns SnapStart on for published versions behind the alias live, primes MEGAMODE_PRIME, and 512 MB of /tmp" do
    [false, true].each do |stream|
      parsed = parse(template(stream: stream, snapstart: { prime: ["/up", "/products?page=1"] }))
      function = parsed.dig("Resources", "App", "Properties")

      expect(function).to include("AutoPublishAlias" => "live", "SnapStart" => { "ApplyOn" => "PublishedVersions" },
                                  "EphemeralStorage" => { "Size" => 512 }, "PackageType" => "Image")
      expect(function.dig("Environment", "Variables")).to include("MEGAMODE_PRIME" => "/up,/products?page=1",
                                                                  "RAILS_ENV" => "production")
      expect(parsed.dig("Outputs", "FunctionAlias", "Value")).to eq("AppAliaslive"), "SAM's name for the alias"
      next unless stream

      # The streaming REST API is the template's own: it calls the alias, as SAM makes the URL do.
      text = template(stream: true, snapstart: { prime: [] })
      expect(text).to include("/functions/${AppAliaslive}/response-streaming-invocations")
      expect(text).not_to include("${App.Arn}")
      expect(parse(text).dig("Resources", "RestApiInvoke", "Properties", "FunctionName")).to eq("AppAliaslive")
      expect(parse(text).dig("Resources", "App", "Properties", "Environment", "Variables")).not_to have_key("MEGAMODE_PRIME")
    end
  end

  it "leaves a template without --snapstart as it was: no alias, no SnapStart, nothing primed" do
    [false, true].each do |stream|
      text = template(stream: stream)
      function = parse(text).dig("Resources", "App", "Properties")

      expect(function.keys).not_to include("AutoPublishAlias", "SnapStart")
      expect(function.dig("Environment", "Variables")).not_to have_key("MEGAMODE_PRIME")
      expect(parse(text)["Outputs"]).not_to have_key("FunctionAlias")
      expect(text).not_to include("AppAliaslive")
    end
  end

  it "refuses --snapstart without --image, naming why and what to add, before it does anything" do
    app = app_dir
    out = File.join(@dir, "out")
    expect { Megamode::Build.new(app: app, out: out, snapstart: true, log: StringIO.new).run }
      .to raise_error(Megamode::BuildError, /\A--snapstart needs --image: Lambda's managed Ruby runtimes do not offer SnapStart for zip packages; SnapStart for Ruby works with a container image: add --image/)
    expect(File.exist?(out)).to be(false)

    _, err, status = Open3.capture3(RbConfig.ruby, exe, "build", "--app", app, "--out", out, "--snapstart")
    expect(status.exitstatus).to eq(1)
    expect(err).to start_with("megamode build: --snapstart needs --image: ")

    rake = { "APP" => app, "OUT" => out, "SNAPSTART" => "1" }
    _, err, status = Open3.capture3(rake, RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"), "-e",
                                    'require "megamode/tasks"; Rake::Task["megamode:build"].invoke')
    expect(status.success?).to be(false)
    expect(err).to include("megamode build: --snapstart needs --image: "), "the rake task reads SNAPSTART"
    expect(File.exist?(out)).to be(false)
  end

  it "refuses a --prime path that does not start with /, and --prime without --snapstart" do
    app = app_dir
    out = File.join(@dir, "out")
    build = ->(**options) { Megamode::Build.new(app: app, out: out, image: true, log: StringIO.new, **options).run }

    expect { build.call(snapstart: true, prime: ["/up", "health"]) }
      .to raise_error(Megamode::BuildError, %r{\A--prime health: a path the app serves, starting with / \(such as /up})
    # What MEGAMODE_PRIME refuses at boot (every SnapStart publish would fail its init) is refused here.
    ["//up", "/up\x01"].each do |path|
      expect { build.call(snapstart: true, prime: [path]) }
        .to raise_error(Megamode::BuildError, /\A--prime #{Regexp.escape(path.inspect[1..-2])}: a path the app serves/), path.inspect
    end
    expect { build.call(snapstart: true, prime: ["/posts#top"]) }
      .to raise_error(Megamode::BuildError, %r{\A--prime /posts#top: has a #fragment, which a client never sends})
    expect { build.call(prime: ["/up"]) }
      .to raise_error(Megamode::BuildError, /\A--prime names paths to request before SnapStart's snapshot: it goes with --snapstart/)

    # --prime splits on commas: the second of /up,health is refused.
    _, err, status = Open3.capture3(RbConfig.ruby, exe, "build", "--app", app, "--out", out, "--image", "--snapstart",
                                    "--prime", "/up,health")
    expect(status.exitstatus).to eq(1)
    expect(err).to start_with("megamode build: --prime health: a path the app serves, starting with /")
    expect(File.exist?(out)).to be(false)
  end

  it "finds a Rails app's health check in its routes, which --snapstart primes without --prime" do
    app = app_dir
    routes = File.join(app, "config", "routes.rb")
    FileUtils.mkdir_p(File.dirname(routes))
    expect(Megamode::Build.health_check_path(app)).to be_nil

    File.write(routes, <<~RUBY)
      Rails.application.routes.draw do
        resources :products
        # Reveal health status on /up that returns 200 if the app boots with no exceptions, otherwise 500.
        get "up" => "rails/health#show", as: :rails_health_check
      end
    RUBY
    expect(Megamode::Build.health_check_path(app)).to eq("/up")

    File.write(routes, %(Rails.application.routes.draw do\n  get "/healthz", to: "rails/health#show"\nend\n))
    expect(Megamode::Build.health_check_path(app)).to eq("/healthz")

    File.write(routes, %(Rails.application.routes.draw do\n  root "products#index"\nend\n))
    expect(Megamode::Build.health_check_path(app)).to be_nil
  end

  it "primes a Rails app's health check when --prime names nothing, saying so in one line; a Rack app's nothing" do
    app = app_dir
    FileUtils.mkdir_p(File.join(app, "config"))
    File.write(File.join(app, "config", "routes.rb"),
               %(Rails.application.routes.draw do\n  get "up" => "rails/health#show", as: :rails_health_check\nend\n))
    primed = lambda do
      log = StringIO.new
      build = Megamode::Build.new(app: app, log: log, image: true, snapstart: true)
      build.instance_variable_set(:@kind, Megamode::Build::AppKind.detect(app))
      [build.send(:default_prime), log.string]
    end

    expect(primed.call).to eq([[], ""]), "not a Rails app: no config/application.rb"

    File.write(File.join(app, "config", "application.rb"),
               %(require "rails"\nmodule Shop\n  class Application < Rails::Application\n  end\nend\n))
    paths, said = primed.call
    expect(paths).to eq(["/up"])
    expect(said.lines).to eq(["megamode build: SnapStart: priming /up, the app's Rails health check (config/routes.rb), " \
                              "before the snapshot (--prime PATH names others)\n"])
  end

  describe "ephemeral storage" do
    let(:mb) { 1024 * 1024 }

    # A report on a one-file package whose lazy bundle unpacks to `unpacked` bytes at cold start.
    def report(unpacked, snapstart:)
      package = File.join(@dir, "package")
      FileUtils.mkdir_p(File.join(package, "app"))
      File.write(File.join(package, "app", "config.ru"), "run App\n")
      zip = File.join(@dir, "package.zip")
      system("zip", "-q", "-r", zip, ".", chdir: package, exception: true)
      Megamode::Build::Report.new(package: package, zip: zip, manifest: { "unpacked_bytes" => unpacked, "files" => 10 },
                                  gems: nil, log: StringIO.new, target: nil, verify: nil, snapstart: snapstart)
    end

    it "asks for 512 MB with SnapStart, and refuses a package whose /tmp would need more, saying why first" do
      expect(report(100 * mb, snapstart: true).ephemeral_mb).to eq(512)
      expect(report(300 * mb, snapstart: false).ephemeral_mb).to eq(1024), "without SnapStart, room to spare"
      expect(report(300 * mb, snapstart: true).ephemeral_mb).to eq(512), "SnapStart's most, which it fits"

      expect { report(480 * mb, snapstart: true).ephemeral_mb }.to raise_error(Megamode::BuildError) { |e|
        expect(e.message).to start_with("SnapStart refuses ephemeral storage above 512 MB, and this package needs 544.")
        expect(e.message).to include("Make the package smaller", "or build without --snapstart (the template then asks for 1024 MB)")
      }
    end
  end

  it "says, after the build, how to publish the snapshotted version and what SnapStart costs" do
    log = StringIO.new
    Megamode::Build.new(app: app_dir, log: log, image: true, snapstart: true).snapstart_next_steps

    expect(log.string.lines.size).to eq(2)
    expect(log.string).to include("SnapStart: ApplyOn: PublishedVersions", "AutoPublishAlias: live", "sam deploy",
                                  "call the alias live", "$LATEST is never snapshotted")
    expect(log.string).to include("each published version's snapshot is billed for as long as it is cached",
                                  "each restore is billed", "Billed Restore Duration")
  end
end
