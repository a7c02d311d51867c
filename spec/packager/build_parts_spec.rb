# frozen_string_literal: true

require "spec_helper"
require "megamode/build"
require "yaml"
require "timeout"

RSpec.describe Megamode::Build::Gemfile do
  fixtures = File.join(SpecHelpers::ROOT, "spec", "fixtures", "gemfiles")
  commented = {
    "string" => [2], "pessimistic" => [4], "file" => [2], "engine" => [2],
    "multiline" => [2, 3, 4, 5, 6, 8, 9], "conditional" => [4, 6], "odd" => [], "none" => []
  }

  commented.each do |name, lines|
    it "comments out every ruby declaration in the #{name} Gemfile, and nothing else" do
      gemfile = described_class.new(File.read(File.join(fixtures, name, "Gemfile")))

      expect(gemfile.comment_ruby_declarations!).to eq(lines)
      expect(gemfile.text).to eq(File.read(File.join(fixtures, name, "Gemfile.expected")))
      expect(Ripper.sexp(gemfile.text)).not_to be_nil, "the result is still Ruby"
    end
  end

  it "adds the adapter once: for Rails with its require, for other apps with none" do
    rails = described_class.new(File.read(File.join(fixtures, "string", "Gemfile")))
    expect(rails.add_adapter!("1.2.3", rails: true)).to be(true)
    expect(rails.text).to end_with(%(gem "megamode", "1.2.3", require: "megamode/rails"\n))
    expect(rails.add_adapter!("1.2.3", rails: true)).to be(false)

    rack = described_class.new(File.read(File.join(fixtures, "file", "Gemfile")))
    rack.add_adapter!("1.2.3", rails: false)
    expect(rack.text).to end_with(%(gem "megamode", "1.2.3", require: false\n))

    own = described_class.new(File.read(File.join(fixtures, "none", "Gemfile")))
    expect(own.add_adapter!("1.2.3", rails: true)).to be(false), "the app's own megamode line stays"
  end

  it "refuses a Gemfile Ruby cannot parse, naming the line" do
    text = %(source "https://rubygems.org"\ngem "rack"\ngem "puma", require: \n  end\n)

    expect { described_class.new(text, path: "/app/Gemfile") }
      .to raise_error(Megamode::BuildError, %r{/app/Gemfile cannot be understood \(line \d.*nothing was changed}m)
  end

  it "refuses a ruby declaration that shares its line with other code, naming the line" do
    gemfile = described_class.new(%(source "https://rubygems.org"\nruby "3.3.0"; gem "rack"\n), path: "Gemfile")

    expect { gemfile.comment_ruby_declarations! }
      .to raise_error(Megamode::BuildError, /Gemfile line 2: .*on a line of its own/)
  end
end

RSpec.describe Megamode::Build::Lockfile do
  lock = <<~LOCK
    GEM
      remote: https://rubygems.org/
      specs:
        nio4r (2.5.8)
        puma (5.6.5)
          nio4r (~> 2.0)
        rack (2.2.22)

    PLATFORMS
      x86_64-linux

    DEPENDENCIES
      puma
      rack

    RUBY VERSION
       ruby 3.3.0p0

    BUNDLED WITH
       2.3.15
  LOCK

  it "drops the Ruby version and adds a gem in sorted place in the specs and the dependencies" do
    lockfile = described_class.new(lock)
    lockfile.drop_ruby_version!
    lockfile.add_gem!("megamode", "0.1.0")

    expect(lockfile.text).not_to include("RUBY VERSION")
    expect(lockfile.text).to include("  specs:\n    megamode (0.1.0)\n    nio4r (2.5.8)\n")
    expect(lockfile.text).to include("DEPENDENCIES\n  megamode (= 0.1.0)\n  puma\n  rack\n")
    expect(lockfile.text).to end_with("BUNDLED WITH\n   2.3.15\n")
  end

  it "adds a gem that sorts last at the end of its sections" do
    lockfile = described_class.new(lock)
    lockfile.add_gem!("zeitwerk-extra", "1.0")

    expect(lockfile.text).to include("    rack (2.2.22)\n    zeitwerk-extra (1.0)\n\nPLATFORMS")
    expect(lockfile.text).to include("  rack\n  zeitwerk-extra (= 1.0)\n\nRUBY VERSION")
  end

  it "says what to do when the lock has no sections to add to" do
    expect { described_class.new("BUNDLED WITH\n   2.3.15\n").add_gem!("megamode", "0.1.0") }
      .to raise_error(Megamode::BuildError, /run `bundle lock`/)
  end
end

RSpec.describe "Megamode::Build.read_text (how the build reads an app's text files)" do
  around do |example|
    Dir.mktmpdir("megamode-read-text-") do |dir|
      @dir = dir
      # A hang guard, not a speed bound: the old read of a FIFO never returned.
      Timeout.timeout(30) { example.run }
    end
  end

  def path(name) = File.join(@dir, name)

  it "reads a regular file, through a link too, as UTF-8" do
    File.binwrite(path("Gemfile.lock"), "GEM\n  caf\xC3\xA9\n")
    File.symlink("Gemfile.lock", path("link"))
    text = Megamode::Build.read_text(path("link"))
    expect([text, text.encoding]).to eq(["GEM\n  café\n", Encoding::UTF_8])
  end

  it "refuses a FIFO, a device and a directory without blocking, naming the file and what it is" do
    File.mkfifo(path("fifo"))
    File.symlink("/dev/zero", path("zero"))
    Dir.mkdir(path("dir"))
    { "fifo" => "fifo", "zero" => "characterSpecial", "dir" => "directory" }.each do |name, kind|
      expect { Megamode::Build.read_text(path(name)) }
        .to raise_error(Megamode::BuildError, /\A#{Regexp.escape(path(name))} is a #{kind}, not a regular file/)
    end
  end

  it "refuses a file larger than it reads, without reading it whole" do
    File.open(path("huge"), "wb") { |f| f.truncate(Megamode::Build::MAX_TEXT_BYTES + 1) } # sparse: no disk
    expect { Megamode::Build.read_text(path("huge")) }
      .to raise_error(Megamode::BuildError, /huge is larger than the #{Megamode::Build::MAX_TEXT_BYTES} bytes/)
  end
end

RSpec.describe Megamode::Build::AppKind do
  def app_with(files)
    dir = Dir.mktmpdir("megamode-kind-")
    files.each do |path, text|
      FileUtils.mkdir_p(File.dirname(File.join(dir, path)))
      File.write(File.join(dir, path), text)
    end
    dir
  end

  after { FileUtils.rm_rf(@dir) if @dir }

  let(:lock) { "GEM\n  specs:\n    railties (7.2.2)\n    sinatra (4.1.1)\n" }

  it "tells a full Rails app, an API-only one and Rack apps apart, from the app itself" do
    application = "module Blog\n  class Application < Rails::Application\n    config.load_defaults 7.2\n%s  end\nend\n"
    full = described_class.detect(@dir = app_with("config/application.rb" => format(application, ""),
                                                  "Gemfile.lock" => lock))
    expect([full.rails?, full.api_only?, full.to_s]).to eq([true, false, "a Rails app (Rails 7.2.2)"])
    FileUtils.rm_rf(@dir)

    api = described_class.detect(@dir = app_with("config/application.rb" => format(application, "    config.api_only = true\n"),
                                                 "Gemfile.lock" => lock))
    expect([api.rails?, api.api_only?, api.to_s]).to eq([true, true, "an API-only Rails app (Rails 7.2.2)"])
    FileUtils.rm_rf(@dir)

    sinatra = described_class.detect(@dir = app_with("config.ru" => "run Shop", "Gemfile.lock" => lock.sub(/^.*railties.*\n/, "")))
    expect([sinatra.rails?, sinatra.to_s]).to eq([false, "a Rack app (Sinatra 4.1.1)"])
    FileUtils.rm_rf(@dir)

    plain = described_class.detect(@dir = app_with("config.ru" => "run ->(_) { [200, {}, []] }"))
    expect(plain.to_s).to eq("a plain Rack app")
  end

  it "reads the app's files as UTF-8 in a C locale, where Ruby would read them as US-ASCII" do
    @dir = app_with("config/application.rb" => "# Café ✓\nmodule Blog\n  class Application < Rails::Application\n" \
                                                "    config.api_only = true # ✓\n  end\nend\n",
                    "Gemfile.lock" => "#{lock}    café-✓ (1.0)\n")
    script = 'require "megamode/build"; print Megamode::Build::AppKind.detect(ARGV[0])'
    out, err, status = Open3.capture3(SpecHelpers::C_LOCALE, RbConfig.ruby, "-I", File.join(SpecHelpers::ROOT, "lib"),
                                      "-e", script, @dir)

    expect(status).to be_success, err
    expect(out).to eq("an API-only Rails app (Rails 7.2.2)")
  end

  it "asks the core's rule, the one megamode's log prefix follows" do
    rails = described_class.detect(@dir = app_with("config/application.rb" => "class App < ::Rails::Application\nend\n"))
    expect(rails.rails?).to be(true)
    FileUtils.rm_rf(@dir)

    other = described_class.detect(@dir = app_with("config/application.rb" => "# Rails::Application is not used here\n",
                                                   "config/environment.rb" => ""))
    expect(other.rails?).to be(false)
  end
end

RSpec.describe Megamode::Build::Output do
  let(:files) { Megamode::Build::Files }
  let(:tree) { Megamode::Build::Tree }

  # projects/shop (the app, with its .git) beside projects/notes.txt, and links to the app from
  # elsewhere/: what a developer's directories hold.
  around do |example|
    @dir = PackageBuild.scratch("megamode-output-")
    @projects = File.join(@dir, "projects")
    @app = File.join(@projects, "shop")
    FileUtils.mkdir_p(File.join(@app, ".git"))
    File.write(File.join(@app, ".git", "HEAD"), "ref: refs/heads/main\n")
    File.write(File.join(@app, "config.ru"), "run Shop\n")
    File.write(File.join(@projects, "notes.txt"), "mine\n")
    FileUtils.mkdir_p(File.join(@dir, "elsewhere"))
    File.symlink(@app, File.join(@dir, "elsewhere", "shop"))
    example.run
  ensure
    FileUtils.rm_rf(@dir)
  end

  def output(out, app: @app)
    described_class.new(app: app, out: out)
  end

  # The message of the BuildError that checking `out` raises; the check must change nothing.
  def refusal(out)
    before = tree.digest(@dir)
    message = nil
    expect { output(out).check! }.to raise_error(Megamode::BuildError) { |e| message = e.message }
    expect(tree.digest(@dir)).to eq(before), "checking #{out} changed nothing"
    message
  end

  def template(**overrides)
    files.template_yaml(name: "shop", code_uri: "pkg.zip", runtime: "ruby3.3", architecture: "x86_64", memory: 1024,
                        ephemeral_mb: 512, env: { "RACK_ENV" => "production" }, version: "0.1.0", **overrides)
  end

  # A zip of `entries` (name => text), in that order, as `zip` makes it.
  def zip(path, entries)
    Dir.mktmpdir("megamode-zip-", @dir) do |src|
      entries.each { |name, text| File.write(File.join(src, name), text) }
      system("zip", "-q", "-X", path, *entries.keys, chdir: src, exception: true)
    end
  end

  it "refuses the app itself, however the path names it" do
    [@app, "#{@app}/.", "#{@app}/../shop", File.join(@dir, "elsewhere", "shop", ".")].each do |out|
      expect(refusal(out)).to match(%r{the output directory #{@app} is the app itself: .*without --out, it goes to #{@app}/build/megamode})
    end
  end

  it "refuses a directory that holds the app, through `..` and links as the system resolves them" do
    expect(refusal("#{@app}/..")).to include("the output directory #{@projects} contains the app (#{@app})")
    expect(refusal("/")).to include("the output directory / contains the app")
    # elsewhere/shop/.. is projects (where the link leads), not elsewhere.
    expect(refusal(File.join(@dir, "elsewhere", "shop", ".."))).to include("#{@projects} contains the app")
    expect(Dir.chdir(@app) { described_class.resolve("..") }).to eq(@projects)
  end

  it "refuses a directory inside the app, even through a link, except under the app's build/" do
    expect(refusal("#{@app}/pkg")).to include("is inside the app, so the package would contain itself")
    expect(refusal(File.join(@dir, "elsewhere", "shop", "pkg"))).to include("#{@app}/pkg is inside the app")
    expect(refusal("#{@app}/build")).to include("is inside the app")

    inside = output("#{@app}/build/megamode")
    expect { inside.check! }.not_to raise_error
    expect(inside.in_app_build?).to be(true)
    expect(output(File.join(@dir, "out", "pkg")).in_app_build?).to be(false)
  end

  it "refuses an output path that is a file, a link, or a directory holding files megamode did not make" do
    out = File.join(@dir, "out")
    File.write(out, "a file\n")
    expect(refusal(out)).to include("#{out} exists and is not a directory: move it, or choose another")
    File.delete(out)

    File.symlink(File.join(@dir, "elsewhere"), out)
    expect(refusal(out)).to include("the output directory #{out} is a symbolic link")
    File.delete(out)

    FileUtils.mkdir_p(File.join(out, "docs"))
    File.write(File.join(out, "docs", "plan.md"), "mine\n")
    expect(refusal(out)).to match(/#{out} is not empty and is not a package megamode made \(it has no \.megamode-package\).*choose a new or empty directory/)
    File.write(File.join(out, ".megamode-package"), "not megamode's\n")
    expect(refusal(out)).to include("is not a package megamode made")
  end

  it "replaces an empty directory, or a package with megamode's marker" do
    out = File.join(@dir, "out", "pkg")
    FileUtils.mkdir_p(out)
    expect { output(out).check! }.not_to raise_error

    File.write(File.join(out, ".megamode-package"), files.package_marker("0.1.0"))
    File.write(File.join(out, "handler.rb"), "# an older build's\n")
    expect { output(out).check! }.not_to raise_error
  end

  it "refuses a zip beside the output directory unless it starts with a package's marker" do
    out = File.join(@dir, "out", "pkg")
    FileUtils.mkdir_p(File.dirname(out))
    File.write("#{out}.zip", "my backup\n")
    expect(refusal(out)).to match(/#{out}\.zip is not a zip megamode made.*move it, or choose another output directory/)

    File.delete("#{out}.zip")
    zip("#{out}.zip", "notes.txt" => "mine\n", ".megamode-package" => files.package_marker("0.1.0"))
    expect(refusal(out)).to include("#{out}.zip is not a zip megamode made")

    File.delete("#{out}.zip")
    zip("#{out}.zip", ".megamode-package" => files.package_marker("0.1.0"), "handler.rb" => "")
    expect { output(out).check! }.not_to raise_error
  end

  it "gives a Rails app's template an optional RailsMasterKey that sets RAILS_MASTER_KEY only when given" do
    # CloudFormation's tags (!Ref, !If) read as their plain values: what is checked here is the YAML.
    tags = Class.new(Psych::Visitors::ToRuby) { def deserialize(node) = node.tag&.start_with?("!") ? node.value : super }
    [false, true].each do |stream|
      text = template(rails: true, stream: stream)
      parsed = YAML.parse(text).then { |doc| tags.create.accept(doc) }

      expect(parsed.dig("Parameters", "RailsMasterKey")).to include("Type" => "String", "NoEcho" => true, "Default" => "")
      expect(parsed["Conditions"]).to have_key("HasRailsMasterKey")
      expect(parsed.dig("Resources", "App", "Properties", "Environment", "Variables"))
        .to include("SECRET_KEY_BASE", "RAILS_MASTER_KEY")
      expect(text).to include(%(  HasRailsMasterKey: !Not [!Equals [!Ref RailsMasterKey, ""]]\n),
                              "RAILS_MASTER_KEY: !If [HasRailsMasterKey, !Ref RailsMasterKey, !Ref AWS::NoValue]\n")
    end
    expect(template).not_to include("RailsMasterKey", "RAILS_MASTER_KEY"), "a Rack app's has none"
  end

  it "deploys an image (megamode build --image) from the package's Dockerfile, its native loop as the entry point" do
    tags = Class.new(Psych::Visitors::ToRuby) { def deserialize(node) = node.tag&.start_with?("!") ? node.value : super }
    image = { context: "megamode", tag: "megamode-shop:v2" }
    [false, true].each do |stream|
      text = template(image: image, stream: stream)
      app = YAML.parse(text).then { |doc| tags.create.accept(doc) }.dig("Resources", "App")
      expect(app["Metadata"]).to eq("Dockerfile" => "Dockerfile", "DockerContext" => "./megamode", "DockerTag" => "v2")
      expect(app["Properties"]).to include("PackageType" => "Image", "Architectures" => ["x86_64"])
      expect(app["Properties"].keys).not_to include("CodeUri", "Handler", "Runtime")
      expect(text).not_to include("AWS_LAMBDA_EXEC_WRAPPER:"), "the base image's entry point does not honour it"
      if stream
        expect(app.dig("Properties", "ImageConfig")).to eq("EntryPoint" => ["/var/task/megamode/runtime"])
      else
        expect(text).to include("ImageConfig: !If [NativeLoop, {EntryPoint: [/var/task/megamode/runtime]}, !Ref AWS::NoValue]\n")
      end
    end
    dockerfile = Megamode::Build::Image.dockerfile("ruby3.4", "0.1.0")
    expect(dockerfile).to include("FROM public.ecr.aws/lambda/ruby:3.4\n", "COPY . ${LAMBDA_TASK_ROOT}/\n",
                                  %(CMD ["handler.handler"]\n))
    expect(Megamode::Build::Image.default_tag("/apps/My Shop_")).to eq("megamode-my-shop:latest")
  end

  it "says where an image's build failed, the failing step and the engine's error first" do
    engine = File.join(@dir, "engine")
    File.write(engine, <<~SH)
      #!/bin/sh
      echo "STEP 1/3: FROM public.ecr.aws/lambda/ruby:3.4"
      echo "STEP 2/3: COPY . \\${LAMBDA_TASK_ROOT}/"
      echo 'Error: building at STEP "COPY . /var/task/": no space left on device' >&2
      exit 125
    SH
    File.chmod(0o755, engine)
    image = Megamode::Build::Image.new(dir: @dir, tag: "megamode-shop:latest", arch: "arm64")
    expect { image.build(engine) }.to raise_error(Megamode::BuildError) { |e|
      expect(e.message.lines.first(3).map(&:strip)).to eq(
        ["engine build of #{@dir} failed (exit status 125)", "at STEP 2/3: COPY . ${LAMBDA_TASK_ROOT}/",
         %(Error: building at STEP "COPY . /var/task/": no space left on device)]
      )
      expect(e.message).to include("the command: #{engine} build --platform linux/arm64 -t megamode-shop:latest #{@dir}")
    }
  end

  it "says, when the base image is neither here nor reachable, which one and how to get it" do
    engine = File.join(@dir, "podman")
    File.write(engine, <<~SH)
      #!/bin/sh
      echo "STEP 1/3: FROM public.ecr.aws/lambda/ruby:3.4"
      echo "Trying to pull public.ecr.aws/lambda/ruby:3.4..."
      echo 'Error: creating build container: initializing source docker://public.ecr.aws/lambda/ruby:3.4: pinging container registry public.ecr.aws: dial tcp: lookup public.ecr.aws: no such host' >&2
      exit 125
    SH
    File.chmod(0o755, engine)
    image = Megamode::Build::Image.new(dir: @dir, tag: "megamode-shop:latest", arch: "x86_64")
    expect { image.build(engine) }.to raise_error(Megamode::BuildError) { |e|
      expect(e.message.lines.first).to start_with("the base image public.ecr.aws/lambda/ruby:3.4 is not on this machine " \
                                                  "and podman could not pull it: pull it where the registry can be reached " \
                                                  "(podman pull public.ecr.aws/lambda/ruby:3.4)")
      expect(e.message).to include("at STEP 1/3: FROM public.ecr.aws/lambda/ruby:3.4", "no such host")
    }
  end

  it "rewrites only a template megamode wrote and nobody edited" do
    out = File.join(@dir, "out", "pkg")
    path = File.join(@dir, "out", "template.yaml")
    FileUtils.mkdir_p(File.dirname(out))
    File.write(path, "AWSTemplateFormatVersion: \"2010-09-09\"\n# my own stack\n")
    expect(refusal(out)).to match(%r{#{path} was not written by megamode.*move it, or choose another output directory})

    File.write(path, "# Written by megamode build. Deploy with: sam deploy\nAWSTemplateFormatVersion: x\n")
    expect(refusal(out)).to include("was not written by megamode"), "an unstamped template cannot be told from an edited one"

    File.write(path, template.sub("MemorySize: 1024", "MemorySize: 2048"))
    expect(refusal(out)).to match(/#{path} was edited since megamode wrote it.*under another name/)

    File.write(path, template(memory: 512))
    expect(files.own_template?(template)).to be(true)
    expect { output(out).check! }.not_to raise_error
  end

  it "installs a package made in the work directory in place of the previous one, checking again first" do
    out = File.join(@dir, "out", "pkg")
    FileUtils.mkdir_p(out)
    File.write(File.join(out, ".megamode-package"), files.package_marker("0.1.0"))
    target = output(out)
    target.check!
    target.work_dir do |work|
      package = File.join(work, "package")
      Dir.mkdir(package)
      File.write(File.join(package, ".megamode-package"), files.package_marker("0.1.0"))
      File.write(File.join(package, "handler.rb"), "# new\n")
      zip("#{package}.zip", ".megamode-package" => files.package_marker("0.1.0"))
      File.write("#{out}.zip", "appeared during the build\n")
      expect { target.install(package, "#{package}.zip") }.to raise_error(Megamode::BuildError, /pkg\.zip is not a zip megamode made/)
      expect(File.read("#{out}.zip")).to eq("appeared during the build\n")
      expect(File.exist?(File.join(out, "handler.rb"))).to be(false)

      File.delete("#{out}.zip")
      target.install(package, "#{package}.zip")
      target.install_template(template, work)
    end
    expect(File.read(File.join(out, "handler.rb"))).to eq("# new\n")
    expect(File.read(File.join(@dir, "out", "template.yaml"))).to eq(template)
    expect(Dir.children(File.join(@dir, "out")).sort).to eq(%w[pkg pkg.zip template.yaml]), "the work directory is gone"
  end
end

RSpec.describe "what a package carries of megamode (Megamode::Build::RUNTIME and ADAPTER)" do
  lib = File.join(SpecHelpers::ROOT, "lib")
  runtime = Megamode::Build::RUNTIME
  adapter = Megamode::Build::ADAPTER

  it "is each part's entry files and its folder, whole" do
    expect(runtime.files(lib)).to eq(runtime.entries + Dir.glob("megamode/runtime/**/*.rb", base: lib).sort)
    expect(adapter.files(lib)).to eq(adapter.entries + Dir.glob("megamode/rack/**/*.rb", base: lib).sort)
    expect(runtime.files(lib)).to include("megamode/runtime/native.rb", "megamode/runtime/errors.rb")
  end

  it "is every file the runtime and the adapter load, and nothing they do not" do
    script = <<~'RUBY'
      require "megamode"
      require "megamode/runtime"
      require "megamode/rails"
      lib = "#{File.expand_path($LOAD_PATH.first)}/"
      puts $LOADED_FEATURES.select { |f| f.start_with?(lib) && f.end_with?(".rb") }.map { |f| f.delete_prefix(lib) }
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I", lib, "-e", script)

    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to match_array(runtime.files(lib) + adapter.files(lib))
  end

  it "loads, in each part, nothing from outside the part but the runtime" do
    %w[megamode/rails megamode/rack/prefix megamode/rack/event_stream megamode/rack/lifecycle].each do |entry|
      script = %(require "#{entry}"; lib = "\#{File.expand_path($LOAD_PATH.first)}/"; ) +
               %(puts $LOADED_FEATURES.select { |f| f.start_with?(lib) }.map { |f| f.delete_prefix(lib) })
      out, err, status = Open3.capture3(RbConfig.ruby, "-I", lib, "-e", script)

      expect(status).to be_success, err
      expect(out.lines.map(&:chomp)).to all(satisfy { |f| adapter.files(lib).include?(f) || f == "megamode/version.rb" }),
                                        "#{entry} loads only the adapter (and the version), which the app's bundle carries"
    end
  end

  it "leaves out only the packager and the local tools" do
    left_out = Dir.glob("**/*.rb", base: lib) - runtime.files(lib) - adapter.files(lib)

    expect(left_out).to all(match(%r{\Amegamode/(?:build\.rb|build/|tasks\.rb|cli\.rb|local\.rb|local/)}))
  end
end

RSpec.describe Megamode::Build::Gems do
  around do |example|
    Dir.mktmpdir("megamode-gems-") do |dir|
      @dir = dir
      example.run
    end
  end

  # A gem as Debian installs it: its Ruby files in place, its extension elsewhere.
  def spec_of(name, files:, loaded_from: nil)
    FileUtils.mkdir_p(File.join(@dir, "installed", "#{name}-1.0", "lib"))
    gem = Gem::Specification.new do |s|
      s.name = name
      s.version = "1.0"
      s.summary = name
      s.files = files
    end
    Megamode::Build::Gems::Spec.new(
      name: name, version: "1.0", full_name: "#{name}-1.0", gem_dir: File.join(@dir, "installed", "#{name}-1.0"),
      require_paths: ["lib"], files: files, extensions: [], extension_dir: nil, executables: [], bindir: "bin",
      default: false, source: "Bundler::Source::Rubygems", spec: gem.to_ruby, loaded_from: loaded_from
    )
  end

  it "puts an extension a distribution kept in Ruby's shared arch directory into the gem's require path" do
    arch = File.join(@dir, "vendor_arch")
    FileUtils.mkdir_p(File.join(arch, "sqlite3"))
    File.write(File.join(arch, "sqlite3", "sqlite3_native.so"), "ELF")
    File.write(File.join(arch, "websocket_mask.so"), "ELF")
    File.write(File.join(arch, "other.so"), "ELF")
    sqlite = spec_of("sqlite3", files: %w[lib/sqlite3.rb ext/sqlite3/extconf.rb ext/sqlite3/database.c])
    # Known to the package manager: its files, whatever their names.
    socket = spec_of("websocket-driver", files: %w[lib/websocket/driver.rb ext/websocket-driver/extconf.rb],
                                         loaded_from: "/specs/websocket-driver-1.0.gemspec")
    owned = { "/specs/websocket-driver-1.0.gemspec" => [File.join(arch, "websocket_mask.so"), "/usr/share/doc/x"] }
    gems = described_class.new([sqlite, socket], groups: [], without: [], arch_dirs: [arch],
                                                 owned_files: ->(path) { owned[path] })
    home = gems.vendor(File.join(@dir, "bundle"), app: @dir)

    expect(File.read(File.join(home, "gems", "sqlite3-1.0", "lib", "sqlite3", "sqlite3_native.so"))).to eq("ELF")
    expect(File.exist?(File.join(home, "gems", "websocket-driver-1.0", "lib", "websocket_mask.so"))).to be(true)
    expect(Dir.glob("**/other.so", base: home)).to eq([])
    expect(gems.adopted_extensions).to eq("sqlite3-1.0" => ["sqlite3/sqlite3_native.so"],
                                          "websocket-driver-1.0" => ["websocket_mask.so"])
  end

  it "rebuilds a gem whose specification lists a directory with everything in it, as Debian's bootsnap needs" do
    roots = RbConfig::CONFIG.values_at("vendorlibdir", "vendordir").compact
    shared = roots.find { |r| File.file?(File.join(r, "bootsnap", "setup.rb")) }
    skip "no bootsnap in Ruby's shared vendor directory (a distribution's ruby-bootsnap)" unless shared

    # Debian's ruby-bootsnap: only a specification where the gem would be; its files in vendor_ruby.
    spec = spec_of("bootsnap", files: %w[lib/bootsnap lib/bootsnap.rb])
    FileUtils.rm_rf(spec.gem_dir)
    home = described_class.new([spec], groups: [], without: [], arch_dirs: [], owned_files: ->(_) {})
                          .vendor(File.join(@dir, "bundle"), app: @dir)

    lib = File.join(home, "gems", "bootsnap-1.0", "lib")
    expect(File.read(File.join(lib, "bootsnap", "setup.rb"))).to eq(File.read(File.join(shared, "bootsnap", "setup.rb")))
    expect(File.file?(File.join(lib, "bootsnap", "load_path_cache", "store.rb"))).to be(true)
    expect(File.file?(File.join(lib, "bootsnap.rb"))).to be(true)
  end

  # An installed gem with extensions: `files` in its gem directory and `built` in its extension
  # directory (path => bytes), laid out as RubyGems installs into a GEM_HOME.
  def installed_gem(name, files:, built:)
    home = File.join(@dir, "gem_home")
    gem_dir = File.join(home, "gems", "#{name}-1.0")
    extension_dir = File.join(home, "extensions", "x86_64-linux", "3.1.0", "#{name}-1.0")
    { gem_dir => files, extension_dir => built }.each do |root, entries|
      entries.each do |path, bytes|
        FileUtils.mkdir_p(File.dirname(File.join(root, path)))
        File.write(File.join(root, path), bytes)
      end
    end
    gem = Gem::Specification.new do |s|
      s.name = name
      s.version = "1.0"
      s.summary = name
      s.files = files.keys
      s.extensions = ["ext/#{name}/Cargo.toml"]
    end
    Megamode::Build::Gems::Spec.new(
      name: name, version: "1.0", full_name: "#{name}-1.0", gem_dir: gem_dir, require_paths: ["lib"], files: files.keys,
      extensions: gem.extensions, extension_dir: extension_dir, executables: [], bindir: "exe", default: false,
      source: "Bundler::Source::Rubygems", spec: gem.to_ruby, loaded_from: nil
    )
  end

  def bundle_of(specs)
    home = described_class.new(specs, groups: [], without: [], arch_dirs: [], owned_files: ->(_) {})
                          .vendor(File.join(@dir, "bundle-#{specs.size}"), app: @dir)
    files = Dir.glob("**/*", File::FNM_DOTMATCH, base: home).select { |f| File.file?(File.join(home, f)) }
    [home, files.sort, files.sum { |f| File.size(File.join(home, f)) }]
  end

  it "gathers of the megamode gem its Ruby, its library and its commands, never the leftovers of its Rust build" do
    junk = "\0" * (4 * 1024 * 1024)
    # As RubyGems 3.3's Cargo builder leaves it: Cargo's target directory is the extension directory
    # (which RubyGems made, so Cargo put no CACHEDIR.TAG in it).
    megamode = installed_gem("megamode",
                             files: { "lib/megamode.rb" => "# megamode\n", "lib/megamode.so" => "ELF" * 100,
                                      "exe/megamode" => "#!ruby\n", "README.md" => "# megamode\n",
                                      "Cargo.toml" => "[workspace]\n", "ext/megamode/Cargo.toml" => "[package]\n",
                                      "ext/megamode/src/lib.rs" => "// the binding\n" },
                             built: { "gem.build_complete" => "", "gem_make.out" => "cargo rustc\n",
                                      ".rustc_info.json" => "{}", "release/.cargo-lock" => "", "release/megamode.so" => "ELF",
                                      "release/libmegamode.so" => "ELF", "release/deps/libmegamode-1.so" => "ELF",
                                      "release/deps/libserde_derive-1.so" => junk, "release/deps/libtokio-1.rlib" => junk,
                                      "release/incremental/megamode-1/s-1/query-cache.bin" => junk,
                                      "release/build/rb-sys-1/out/bindings.rs" => "//" })
    plain = spec_of("rack", files: %w[lib/rack.rb])
    File.write(File.join(plain.gem_dir, "lib", "rack.rb"), "# rack\n")

    home, files, size = bundle_of([plain, megamode])
    _, _, size_without = bundle_of([plain])

    megamode_files = files.select { |f| f.include?("megamode-1.0") }
    expect(megamode_files).to eq(%w[extensions/x86_64-linux/3.1.0/megamode-1.0/gem.build_complete gems/megamode-1.0/exe/megamode
                                    gems/megamode-1.0/lib/megamode.rb gems/megamode-1.0/lib/megamode.so
                                    specifications/megamode-1.0.gemspec])
    expect(size - size_without).to be < 64 * 1024
    expect(File.read(File.join(home, "gems", "megamode-1.0", "lib", "megamode.so"))).to eq("ELF" * 100)
  end

  it "gathers of the precompiled megamode gem the library for this Ruby alone" do
    abi = Megamode::PackageTarget.abi
    other = abi == "3.4" ? "3.3" : "3.4"
    megamode = installed_gem("megamode",
                             files: { "lib/megamode.rb" => "# megamode\n", "lib/megamode/#{abi}/megamode.so" => "ELF #{abi}",
                                      "lib/megamode/#{other}/megamode.so" => "ELF #{other}", "lib/megamode/runtime/x.rb" => "#",
                                      "exe/megamode" => "#!ruby\n" },
                             built: {})

    _, files, = bundle_of([megamode])

    expect(files.grep(%r{\Agems/})).to eq(["gems/megamode-1.0/exe/megamode", "gems/megamode-1.0/lib/megamode.rb",
                                           "gems/megamode-1.0/lib/megamode/#{abi}/megamode.so",
                                           "gems/megamode-1.0/lib/megamode/runtime/x.rb"])
  end

  it "gathers of any gem what its extension directory loads, and no build cache" do
    tag = "Signature: 8a477f597d28d172789f06886806bc55\n"
    gem = installed_gem("rusty",
                        files: { "lib/rusty.rb" => "#", "data/words.txt" => "words", "ext/rusty/Cargo.toml" => "[package]\n",
                                 "ext/rusty/target/CACHEDIR.TAG" => tag, "ext/rusty/target/release/librusty.so" => "ELF" },
                        built: { "gem.build_complete" => "", "gem_make.out" => "make\n", "mkmf.log" => "cc\n",
                                 "rusty/rusty.so" => "ELF", "rusty/version.rb" => "#", "libhelper.so.1" => "ELF",
                                 "Makefile" => "all:\n", "rusty.o" => "obj", "tmp/CACHEDIR.TAG" => tag, "tmp/stage.so" => "ELF" })

    _, files, = bundle_of([gem])

    expect(files).to eq(%w[extensions/x86_64-linux/3.1.0/rusty-1.0/gem.build_complete
                           extensions/x86_64-linux/3.1.0/rusty-1.0/libhelper.so.1
                           extensions/x86_64-linux/3.1.0/rusty-1.0/rusty/rusty.so
                           extensions/x86_64-linux/3.1.0/rusty-1.0/rusty/version.rb
                           gems/rusty-1.0/data/words.txt gems/rusty-1.0/ext/rusty/Cargo.toml gems/rusty-1.0/lib/rusty.rb
                           specifications/rusty-1.0.gemspec])
  end
end

RSpec.describe Megamode::Build::BootsnapCache do
  # Without root the build boots the package in the machine's MEGAMODE_TMP (Lambda's path), where
  # the app is copied, to make the cache: only where no one else could put code there for it to
  # boot and ship, and where no other copy is (copying would remove it from under a local run). The boot that checks
  # the package happens all the same, in a directory of its own: here, of a package that is empty,
  # so it fails, and says why.
  def boot(tmp, said)
    package = File.join(File.dirname(tmp), "never-copied")
    FileUtils.mkdir_p(package)
    described_class.new(package: package, build_id: "b1", bundle_sha256: "0" * 64,
                        say: ->(line) { said << line }, tmp: tmp, isolated: false).boot(cache: true)
  end

  def expect_checked_elsewhere(result, tmp)
    expect(result.cached).to be(false)
    expect(result.failure.line).to match(/\ALoadError: cannot load such file -- megamode/)
    expect(Dir.exist?(File.join(tmp, "app-b1"))).to be(false)
  end

  it "without root, makes no cache in a MEGAMODE_TMP others own or can write, or that holds other copies" do
    Dir.mktmpdir do |dir|
      tmp = File.join(dir, "megamode")
      said = []
      FileUtils.mkdir_p(tmp)
      File.chmod(0o777, tmp)
      expect_checked_elsewhere(boot(tmp, said), tmp)
      expect(said.last).to include("warning: bootsnap: no cache made: #{tmp} can be written by others")

      File.chmod(0o755, tmp)
      FileUtils.mkdir_p(File.join(tmp, "bundle-other"))
      expect_checked_elsewhere(boot(tmp, said), tmp)
      expect(said.last).to include("holds other packages' app copies or gem bundles (bundle-other), which a local run may be using")

      if Process.euid.zero?
        File.chown(65_534, nil, tmp)
        expect_checked_elsewhere(boot(tmp, said), tmp)
        expect(said.last).to include("#{tmp} belongs to another user")
      end
    end
  end

  it "without root, makes no cache in a MEGAMODE_TMP that is a link, even to a directory fit for it" do
    Dir.mktmpdir do |dir|
      # Fit on its own (this user's, private, empty): but whoever owns the link chooses where it leads.
      target = File.join(dir, "elsewhere")
      FileUtils.mkdir_p(target, mode: 0o700)
      tmp = File.join(dir, "megamode")
      File.symlink(target, tmp)
      said = []

      expect_checked_elsewhere(boot(tmp, said), tmp)
      expect(said.last).to include("warning: bootsnap: no cache made: #{tmp} is a symbolic link (to #{target})")
      expect(Dir.children(target)).to eq([])
    end
  end
end

RSpec.describe Megamode::Build::BootsnapCache, "placing the cache its boot made" do
  def cache_for(package, said)
    described_class.new(package: package, build_id: "b1", bundle_sha256: "0" * 64,
                        say: ->(line) { said << line }, tmp: File.join(package, "unused"), isolated: true)
  end

  def made_in(dir)
    File.join(dir, "made").tap do |made|
      FileUtils.mkdir_p(File.join(made, "compile-cache-iseq", "ab"))
      File.write(File.join(made, "compile-cache-iseq", "ab", "cd"), "entry")
      File.write(File.join(made, "load-path-cache"), "paths")
    end
  end

  # FileUtils.cp_r copies into a directory that exists: the cache landed in tmp/cache/bootsnap/bootsnap.
  it "puts it at exactly tmp/cache/bootsnap, whatever is there already, never inside it" do
    Dir.mktmpdir do |dir|
      package = File.join(dir, "package")
      FileUtils.mkdir_p(File.join(package, "app", "tmp", "cache", "bootsnap", "compile-cache-iseq", "00"))
      said = []
      expect(cache_for(package, said).send(:place, made_in(dir))).to be(true)
      cache = File.join(package, "app", "tmp", "cache", "bootsnap")
      expect(Dir.glob("**/*", base: cache).sort).to eq(%w[compile-cache-iseq compile-cache-iseq/ab
                                                           compile-cache-iseq/ab/cd load-path-cache])
      expect(said).to eq([])
    end
  end

  it "does not write through an app's tmp that is a link, and says why the package has no cache" do
    Dir.mktmpdir do |dir|
      package = File.join(dir, "package")
      elsewhere = File.join(dir, "elsewhere")
      FileUtils.mkdir_p([File.join(package, "app"), elsewhere])
      File.symlink(elsewhere, File.join(package, "app", "tmp"))
      said = []
      expect(cache_for(package, said).send(:place, made_in(dir))).to be(false)
      expect(said.last).to include("warning: bootsnap: the app's tmp is a symbolic link, so the package has no cache")
      expect(Dir.children(elsewhere)).to eq([])
    end
  end
end

RSpec.describe Megamode::Build::Secrets do
  around do |example|
    @app = Dir.mktmpdir("megamode-secrets-")
    example.run
  ensure
    FileUtils.rm_rf(@app)
  end

  def add(*paths)
    paths.each do |path|
      FileUtils.mkdir_p(File.dirname(File.join(@app, path)))
      File.write(File.join(@app, path), "x\n")
    end
  end

  it "finds Rails' keys and the .env files at the app's root, but not their templates or the encrypted credentials" do
    add(".env", ".env.local", ".env.production.local", ".envrc", ".env.example", ".env.sample", ".env.template",
        ".env.development.erb", "config/master.key", "config/credentials/production.key",
        "config/credentials/production.yml.enc", "config/credentials.yml.enc", "lib/.env", "config.ru")

    expect(described_class.find(@app)).to eq(%w[.env .env.local .env.production.local .envrc
                                                config/credentials/production.key config/master.key])
  end

  it "finds a key that is a link, and nothing in an app that has none" do
    expect(described_class.find(@app)).to eq([])
    FileUtils.mkdir_p(File.join(@app, "config"))
    File.symlink("/nonexistent/master.key", File.join(@app, "config", "master.key"))

    expect(described_class.find(@app)).to eq(%w[config/master.key])
  end
end

RSpec.describe "a package's modes (Megamode::Build::Tree)" do
  let(:tree) { Megamode::Build::Tree }

  around do |example|
    @dir = Dir.mktmpdir("megamode-modes-")
    example.run
  ensure
    FileUtils.rm_rf(@dir)
  end

  def mode(path)
    File.lstat(File.join(@dir, path)).mode & 0o7777
  end

  it "gives every file and directory a mode anyone can read, executables 0755, whatever the app had" do
    app = File.join(@dir, "app")
    FileUtils.mkdir_p(File.join(app, "private", "deep"))
    { "secret.yml" => 0o600, "run" => 0o700, "tool" => 0o4750, "shared" => 0o666, "ro" => 0o400,
      "private/deep/file" => 0o640 }.each do |name, file_mode|
      File.write(File.join(app, name), "x\n")
      File.chmod(file_mode, File.join(app, name))
    end
    File.symlink("run", File.join(app, "link"))
    File.chmod(0o700, File.join(app, "private"))
    File.chmod(0o1777, File.join(app, "private", "deep"))

    tree.copy(app, File.join(@dir, "package"))
    # What the build writes itself, under a umask that gives others nothing.
    File.open(File.join(@dir, "package", "written"), "w", 0o600) { |f| f.write("x\n") }
    tree.fix_modes(File.join(@dir, "package"))

    expect(%w[package/secret.yml package/shared package/ro package/private/deep/file package/written].map { |p| mode(p) })
      .to all(eq(0o644))
    expect(%w[package package/run package/tool package/private package/private/deep].map { |p| mode(p) }).to all(eq(0o755))
    expect(File.readlink(File.join(@dir, "package", "link"))).to eq("run")
  end
end

RSpec.describe Megamode::Build::Prerequisites do
  around do |example|
    @app = Dir.mktmpdir("megamode-prerequisites-")
    example.run
  ensure
    FileUtils.rm_rf(@app)
  end

  def write(path, text)
    FileUtils.mkdir_p(File.dirname(File.join(@app, path)))
    File.write(File.join(@app, path), text)
  end

  def check(env: {}) = described_class.new(@app, env: env)

  # As `rails new` writes it: ERB, an alias merged into each environment.
  let(:database_yml) { <<~YAML }
    default: &default
      adapter: sqlite3
      pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>
      timeout: 5000
    development:
      <<: *default
      database: db/development.sqlite3
    production:
      <<: *default
      database: <%= "db/production" %>.sqlite3
  YAML

  it "reads database.yml's ERB and aliases, and names a production SQLite file the app lacks, until it exists" do
    write("config/database.yml", database_yml)
    expect(check.problems).to eq(["the production database (config/database.yml: SQLite, db/production.sqlite3) " \
                                  "does not exist in the app, so every query would fail: make it with " \
                                  "`RAILS_ENV=production bin/rails db:prepare`"])
    write("db/production.sqlite3", "")
    expect(check.problems).to eq([])
  end

  it "checks each of a three-tier production's SQLite databases, and none when DATABASE_URL or a url names it" do
    write("config/database.yml", <<~YAML)
      production:
        primary:
          adapter: sqlite3
          database: storage/production.sqlite3
        cache:
          adapter: sqlite3
          database: storage/production_cache.sqlite3
        queue:
          adapter: postgresql
          url: postgres://db/queue
    YAML
    write("storage/production.sqlite3", "")
    expect(check.problems.size).to eq(1)
    expect(check.problems.first).to start_with('the production database "cache" (config/database.yml: SQLite, ' \
                                                "storage/production_cache.sqlite3) does not exist")
    said = check(env: { "DATABASE_URL" => "postgres://db/app" })
    expect([said.problems, said.notes]).to eq([[], ["the production database is not checked: DATABASE_URL is set, " \
                                                    "and Rails takes it over config/database.yml (give the function " \
                                                    "the same on Lambda)"]])
  end

  it "skips the database, saying so, when database.yml's ERB needs the app" do
    write("config/database.yml", "production:\n  adapter: sqlite3\n  database: <%= Rails.root.join(\"x\") %>\n")
    expect(check.problems).to eq([])
    expect(check.notes).to eq(["the production database is not checked: config/database.yml could not be read " \
                               "without the app (NameError: uninitialized constant " \
                               "Megamode::Build::Prerequisites::ERBScope::Rails)"])
  end

  it "names assets not precompiled for an asset pipeline the app loads, until public/assets has a manifest" do
    write("app/assets/config/manifest.js", "//= link_tree ../images\n")
    write("Gemfile.lock", "GEM\n  specs:\n    rails (6.1.7)\n      sprockets-rails (>= 2.0.0)\n    sprockets-rails (3.4.1)\n")
    write("config/application.rb", %(require "rails"\n# require "sprockets/railtie"\n))
    expect(check.problems).to eq([]), "locked through rails, its railtie not loaded: no pipeline"

    write("config/application.rb", %(require "rails/all"\n))
    expect(check.problems).to eq(["the assets are not precompiled (sprockets-rails, app/assets; no manifest in " \
                                  "public/assets), and production compiles none, so every page that links one " \
                                  "would fail: precompile them with " \
                                  "`RAILS_ENV=production SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile`"])
    write("public/assets/.sprockets-manifest-0123abcd.json", "{}")
    expect(check.problems).to eq([])

    FileUtils.rm_rf(File.join(@app, "public", "assets"))
    write("Gemfile.lock", "GEM\n  specs:\n    propshaft (1.1.0)\n")
    expect(check.problems.first).to include("(propshaft, app/assets;")
    write("public/assets/.manifest.json", "{}")
    expect(check.problems).to eq([])
  end
end

RSpec.describe "Megamode::Build::Files.handler_rb (the package's handler.rb)" do
  let(:text) { Megamode::Build::Files.handler_rb }

  it "is Ruby, and with SnapStart runs the cycle at load without swallowing an init failure" do
    expect { RubyVM::InstructionSequence.compile(text) }.not_to raise_error
    snap_start, on_demand = text.split(/^else$/, 2)
    expect(snap_start).to include('if ENV["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"')
      .and include("Megamode.snap_start")
    # Only the restore's failure is rescued there (it ends the process); any other error reaches
    # the runtime client, which reports it as the init error.
    expect(snap_start.scan(/^\s*rescue.*$/).map(&:strip)).to eq(["rescue Megamode::RestoreError"])
    expect(snap_start).to include("Megamode.shutdown").and include("exit!(1)")
    expect(on_demand).to include("rescue Megamode::Error => e").and include("Megamode.wait_ready")
    # The image label would make Lambda snapshot at the first /next with no hooks: named only to
    # say why it is not used.
    expect(text.lines.grep(/com\.amazonaws\.lambda\.feature\.snapstart/).all? { |l| l.strip.start_with?("#") })
      .to be(true)
  end
end
