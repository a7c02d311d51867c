# frozen_string_literal: true

require "spec_helper"
require "open3"
require "shellwords"
require "megamode/build"
require "megamode/cli"

# `megamode build --container`: checked through its dry run (the commands it would run, printed and
# not run), and run for real only where a container engine and the SAM build image are present.
RSpec.describe Megamode::Build::Container do
  let(:container) { described_class }
  let(:root) { Dir.mktmpdir("megamode-container-spec-") }
  # A directory for PATH holding fake engines that record their arguments if they are ever run.
  let(:bin) { File.join(root, "bin").tap { |d| FileUtils.mkdir_p(d) } }
  let(:ran) { File.join(root, "ran") }
  let(:app) do
    File.join(root, "my app").tap do |dir|
      FileUtils.mkdir_p(dir)
      File.write(File.join(dir, "config.ru"), "run ->(_) { [200, {}, ['hi']] }\n")
      File.write(File.join(dir, "Gemfile"), %(source "https://rubygems.org"\ngem "rack"\n))
      File.write(File.join(dir, "Gemfile.lock"), "GEM\n  specs:\n\nDEPENDENCIES\n  rack\n")
    end
  end
  let(:cache) { File.join(root, "cache") }

  after { FileUtils.rm_rf(root) }

  def fake_engine(name)
    path = File.join(bin, name)
    File.write(path, %(#!/bin/sh\necho "#{name} $*" >> #{ran.shellescape}\n))
    File.chmod(0o755, path)
    path
  end

  def target(runtime, arch)
    Megamode::Build::Target.new(runtime: runtime, arch: arch)
  end

  def steps(engine: "docker", runtime: "ruby3.4", arch: "x86_64", out: File.join(app, "build", "megamode"),
            uid: 1000, gid: 1000)
    container.steps(engine: engine, target: target(runtime, arch), app: app, out: out, gem_root: "/gems/megamode",
                    cache: cache, uid: uid, gid: gid)
  end

  # The words of the `ENGINE run` command, as a shell would split its printed line.
  def run_words(**options)
    Shellwords.split(steps(**options).last.to_s)
  end

  # The volumes of a run command: host => [inside, options].
  def volumes(words)
    words.each_cons(2).select { |flag, _| flag == "-v" }.to_h do |_, v|
      host, inside, mode = v.split(":")
      [host, [inside, mode]]
    end
  end

  # The `megamode build` command run inside the container.
  def inner_build(words)
    Shellwords.split(words.last.split(" && ").last)
  end

  def cli(*args, env: {})
    out = StringIO.new
    err = StringIO.new
    saved = env.to_h { |k, _| [k, ENV[k]] }
    env.each { |k, v| ENV[k] = v }
    status = Megamode::CLI.new(args, out: out, err: err).run
    [status, out.string, err.string]
  ensure
    saved&.each { |k, v| ENV[k] = v }
  end

  # A copy of megamode under `root` without any compiled library: the source gem's files
  # (`entries`), or with entries: %w[lib exe], a precompiled gem's Ruby files, without the Rust source.
  def megamode_copy(entries = %w[lib exe Cargo.toml Cargo.lock ext megamode.gemspec])
    copy = File.join(root, "megamode")
    FileUtils.mkdir_p(copy)
    entries.each { |entry| FileUtils.cp_r(File.join(SpecHelpers::ROOT, entry), copy) }
    FileUtils.rm_f(Dir.glob("#{copy}/lib/**/*.{so,bundle}"))
    FileUtils.rm_rf(Dir.glob("#{copy}/lib/megamode/[0-9]*.[0-9]*"))
    FileUtils.rm_rf(File.join(copy, "ext", "megamode-core", "fuzz"))
    copy
  end

  # A dry run of `megamode build --container` by the copy's exe/megamode: [stdout, stderr, status].
  def copy_dry_run(copy, *args)
    env = { "PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_ENGINE" => "docker",
            "MEGAMODE_CONTAINER_CACHE" => cache, "RUBYLIB" => nil, "RUBYOPT" => nil }
    Open3.capture3(env, RbConfig.ruby, File.join(copy, "exe", "megamode"), "build", "--app", app,
                   "--container", "--dry-run", *args)
  end

  describe "the dry run" do
    # A Mac (or any machine) without megamode's compiled extension: the build runs in the container,
    # which builds megamode itself, so nothing compiled is needed here.
    it "needs no compiled extension on this machine" do
      fake_engine("docker")
      copy = megamode_copy
      out, err, status = copy_dry_run(copy, "--runtime", "ruby3.4")

      expect(Dir.glob("#{copy}/lib/**/*.{so,bundle}")).to eq([])
      expect(status).to be_success, err
      expect(out).to include("docker run ")
      expect(out).to include("sh.rustup.rs").and include("cargo build ")
      expect(err).to include("megamode's extension: compiled there, with Rust")
      expect(err).not_to include("native extension is not built")
    end

    # The precompiled gem (lib/megamode/<abi>/megamode.so for Ruby 3.3 and 3.4, x86_64; no Cargo.toml):
    # for a target it has a library for, no Rust anywhere; for another, it says what to do.
    context "with a precompiled megamode" do
      # Any ELF file of this machine stands in for the library: the dry run only reads its header.
      let(:library) { File.realpath(RbConfig.ruby) }
      let(:arch) { Megamode::PackageTarget.lambda_arch(RbConfig::CONFIG["host_cpu"]) }
      let(:copy) do
        megamode_copy(%w[lib exe]).tap do |copy|
          %w[3.3 3.4].each do |abi|
            FileUtils.mkdir_p(File.join(copy, "lib", "megamode", abi))
            FileUtils.cp(library, File.join(copy, "lib", "megamode", abi, "megamode.so"))
          end
        end
      end

      before do
        fake_engine("docker")
        skip "this Ruby (#{library}) is not an ELF file of a Lambda architecture" unless
          arch && Megamode::Build::Elf.elf?(library)
      end

      it "installs no Rust or clang in the image, compiles nothing and copies the target's library in" do
        out, err, status = copy_dry_run(copy, "--runtime", "ruby3.4", "--arch", arch)

        expect(status).to be_success, err
        expect(err).to include("megamode's extension: precompiled, #{copy}/lib/megamode/3.4/megamode.so")
        expect(out).to include("FROM public.ecr.aws/sam/build-ruby3.4\n" \
                               "RUN command -v zip >/dev/null || { dnf install -y zip && dnf clean all; }\n")
        expect(out).not_to include("rustup")
        expect(out).not_to include("clang")
        words = Shellwords.split(out.lines.find { |l| l.start_with?("docker run ") })
        script = words.last.split(" && ")
        expect(script.grep(/cargo/)).to eq([])
        expect(script).to include("cp /megamode/gem/lib/megamode/3.4/megamode.so " \
                                  "/tmp/megamode-build/megamode/lib/megamode/megamode.so")
        expect(script.index { |c| c.start_with?("find ") }).to be < script.index { |c| c.include?("3.4/megamode.so") }
        expect(volumes(words).values.map(&:first)).not_to include("/megamode/cargo")
        expect(words.grep(/\ACARGO_/)).to eq([])
      end

      it "installs the packages MEGAMODE_CONTAINER_PACKAGES names with zip, and no Rust" do
        dockerfile = container.dockerfile("ruby3.3", packages: %w[libpq-devel], rust: false)
        expect(dockerfile).to include("RUN dnf install -y zip libpq-devel && dnf clean all\n")
        expect(dockerfile).not_to include("rustup")
        expect(container.image_tag(target("ruby3.3", "x86_64"), rust: false))
          .not_to eq(container.image_tag(target("ruby3.3", "x86_64")))
      end

      it "refuses a runtime or an architecture it has no library for, saying what it has and what to do" do
        other = arch == "x86_64" ? "arm64" : "x86_64"
        [["--runtime", "ruby4.0", "--arch", arch], ["--runtime", "ruby3.4", "--arch", other]].each do |args|
          out, err, status = copy_dry_run(copy, *args)

          expect(status.exitstatus).to eq(1), err
          expect(out).to eq("")
          expect(err).to include("is the precompiled gem, with its extension for Ruby 3.3 (#{arch}) and Ruby 3.4 " \
                                 "(#{arch}) only: not for Ruby #{args[1].delete_prefix("ruby")} (#{args[3]})")
          expect(err).to include("gem install megamode --platform ruby").and include("force_ruby_platform: true")
        end
        FileUtils.rm_rf(Dir.glob("#{copy}/lib/megamode/[0-9]*.[0-9]*"))
        _, err, status = copy_dry_run(copy, "--runtime", "ruby3.4", "--arch", arch)
        expect([status.exitstatus, err]).to match([1, /neither its extension precompiled .* nor its Rust source/])
      end
    end

    %w[docker podman finch].each do |engine|
      it "with #{engine} forced (MEGAMODE_CONTAINER_ENGINE), prints the commands and runs none of them" do
        fake_engine(engine)
        status, out, err = cli("build", "--app", app, "--container", "--dry-run", "--runtime", "ruby3.4",
                               "--arch", "arm64",
                               env: { "PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_ENGINE" => engine,
                                      "MEGAMODE_CONTAINER_CACHE" => cache })

        expect(status).to eq(0), err
        expect(File.exist?(ran)).to be(false), "the dry run ran #{File.exist?(ran) && File.read(ran)}"
        expect(Dir.exist?(cache)).to be(false), "the dry run made the cache"
        expect(Dir.exist?(File.join(app, "build"))).to be(false), "the dry run made the output's directory"
        expect(err).to include("in #{engine}, in public.ecr.aws/sam/build-ruby3.4 for ruby3.4 (arm64)")
        expect(err).to include("dry run")

        lines = out.lines.map(&:chomp)
        expect(lines.first).to start_with("mkdir -p ")
        expect(lines).to include(
          a_string_starting_with("#{engine} build --platform linux/arm64 -t megamode-build:ruby3.4-arm64-")
        )
        run = lines.find { |l| l.start_with?("#{engine} run ") }
        expect(run).not_to be_nil
        words = Shellwords.split(run)
        expect(words.each_cons(2)).to include(["--platform", "linux/arm64"])
        expect(inner_build(words)).to include("--runtime", "ruby3.4", "--arch", "arm64")
        expect(out).to include("FROM public.ecr.aws/sam/build-ruby3.4\n")
      end
    end

    it "finds the first engine on PATH (docker, then podman, then finch), without running it" do
      fake_engine("finch")
      fake_engine("podman")
      env = { "PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_ENGINE" => nil,
              "MEGAMODE_CONTAINER_CACHE" => cache }
      expect(container.detect_engine(env: env)).to eq("podman")

      status, out, err = cli("build", "--app", app, "--container", "--dry-run", "--runtime", "ruby3.3", env: env)
      expect(status).to eq(0), err
      expect(out).to include("podman run ")
      expect(File.exist?(ran)).to be(false)

      fake_engine("docker")
      expect(container.detect_engine(env: env)).to eq("docker")
    end

    it "passes --keep-secret on to the build inside, relative to the app, whose path differs there" do
      fake_engine("docker")
      env = { "PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_ENGINE" => nil, "MEGAMODE_CONTAINER_CACHE" => cache }
      status, out, err = cli("build", "--app", app, "--container", "--dry-run", "--keep-secret", "config/master.key",
                             "--keep-secret", File.join(app, ".env"), env: env)

      expect(status).to eq(0), err
      words = Shellwords.split(out.lines.find { |l| l.start_with?("docker run ") })
      expect(inner_build(words).each_cons(2).select { |flag, _| flag == "--keep-secret" })
        .to eq([["--keep-secret", "config/master.key"], ["--keep-secret", ".env"]])
    end

    it "passes --no-boot-check on to the build inside, and boots there otherwise" do
      fake_engine("docker")
      env = { "PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_ENGINE" => nil, "MEGAMODE_CONTAINER_CACHE" => cache }
      runs = [[], ["--no-boot-check"]].map do |extra|
        status, out, err = cli("build", "--app", app, "--container", "--dry-run", *extra, env: env)
        expect(status).to eq(0), err
        inner_build(Shellwords.split(out.lines.find { |l| l.start_with?("docker run ") }))
      end

      expect(runs.map { |words| words.include?("--no-boot-check") }).to eq([false, true])
    end

    it "runs through rake megamode:build CONTAINER=1 DRY_RUN=1" do
      fake_engine("docker")
      lib = File.join(SpecHelpers::ROOT, "lib")
      env = { "PATH" => "#{bin}:#{ENV["PATH"]}", "APP" => app, "CONTAINER" => "1", "DRY_RUN" => "1",
              "RUNTIME" => "ruby4.0", "ARCH" => "x86_64", "MEGAMODE_CONTAINER_CACHE" => cache,
              "MEGAMODE_CONTAINER_ENGINE" => nil }
      out, err, status = Open3.capture3(env, RbConfig.ruby, "-I", lib, "-e",
                                        'require "megamode/tasks"; Rake::Task["megamode:build"].invoke')

      expect(status).to be_success, err
      expect(out).to include("docker build --platform linux/amd64 -t megamode-build:ruby4.0-x86_64-")
      expect(out).to include("FROM public.ecr.aws/sam/build-ruby4.0\n")
      expect(File.exist?(ran)).to be(false)
    end
  end

  describe "the commands" do
    it "use the SAM build image of the runtime, for the architecture's platform" do
      { %w[ruby3.3 x86_64] => "linux/amd64", %w[ruby3.4 arm64] => "linux/arm64",
        %w[ruby4.0 arm64] => "linux/arm64" }.each do |(runtime, arch), platform|
        list = steps(runtime: runtime, arch: arch)
        dockerfile = list.find(&:path)
        expect(dockerfile.path).to eq(File.join(cache, "images", runtime, "Dockerfile"))
        expect(dockerfile.content).to include("FROM public.ecr.aws/sam/build-#{runtime}\n")
        expect(container.base_image(runtime)).to eq("public.ecr.aws/sam/build-#{runtime}")
        tag = container.image_tag(target(runtime, arch))
        expect(tag).to match(/\Amegamode-build:#{Regexp.escape(runtime)}-#{arch}-\h{12}\z/)
        expect(list[2].argv).to eq(["docker", "build", "--platform", platform, "-t", tag,
                                    File.join(cache, "images", runtime)])
        words = Shellwords.split(list.last.to_s)
        expect(words.first(5)).to eq(["docker", "run", "--rm", "--platform", platform])
        expect(words[words.index(tag) + 1, 2]).to eq(%w[bash -c])
      end
    end

    it "install what megamode's extension needs in the image: Rust newer than the crate's minimum, clang, zip" do
      dockerfile = container.dockerfile("ruby3.4")
      expect(dockerfile).to include("dnf install -y clang zip")
      expect(dockerfile).to include("sh.rustup.rs").and include("--default-toolchain stable")
      expect(container.image_tag(target("ruby3.4", "arm64"))).not_to eq(container.image_tag(target("ruby3.3", "arm64")))
    end

    it "add the packages MEGAMODE_CONTAINER_PACKAGES names to the image, which then has another name" do
      fake_engine("docker")
      env = { "PATH" => bin, "MEGAMODE_CONTAINER_ENGINE" => nil, "MEGAMODE_CONTAINER_CACHE" => cache,
              "MEGAMODE_CONTAINER_PACKAGES" => " libpq-devel  libyaml-devel " }
      status, out, err = cli("build", "--app", app, "--container", "--dry-run", "--runtime", "ruby3.4",
                             "--arch", "x86_64", env: env)
      expect(status).to eq(0), err
      expect(out).to include("RUN dnf install -y clang zip libpq-devel libyaml-devel && dnf clean all\n")
      plain = container.image_tag(target("ruby3.4", "x86_64"))
      tag = container.image_tag(target("ruby3.4", "x86_64"), packages: %w[libpq-devel libyaml-devel])
      expect(tag).not_to eq(plain)
      expect(out).to include("-t #{tag} ")
    end

    it "mount the app read-only, the output's directory, megamode's source read-only and the caches" do
      words = run_words(arch: "arm64")
      expect(volumes(words)).to eq(
        app => ["/megamode/app", "ro"],
        File.join(app, "build") => ["/megamode/app/build", nil],
        "/gems/megamode" => ["/megamode/gem", "ro"],
        File.join(cache, "ruby3.4-arm64") => ["/megamode/cache", nil],
        File.join(cache, "cargo") => ["/megamode/cargo", nil]
      )
      expect(inner_build(words)).to eq(
        %w[ruby /tmp/megamode-build/megamode/exe/megamode build --app /megamode/app --out /megamode/app/build/megamode
           --runtime ruby3.4 --arch arm64]
      )
      expect(steps.first.argv).to eq(["mkdir", "-p", File.join(app, "build"), File.join(cache, "images", "ruby3.4"),
                                      File.join(cache, "ruby3.4-x86_64"), File.join(cache, "cargo")])
    end

    it "mount an output outside the app on its own, and write the package there" do
      out = File.join(root, "packages", "shop")
      words = run_words(out: out)
      expect(volumes(words)[File.join(root, "packages")]).to eq(["/megamode/out", nil])
      expect(inner_build(words).each_cons(2)).to include(["--out", "/megamode/out/shop"])
    end

    it "keep the gems, Cargo's registry and its target directory in the caches, per runtime and architecture" do
      words = run_words
      env = words.each_cons(2).select { |flag, _| flag == "-e" }.to_h { |_, v| v.split("=", 2) }
      expect(env).to include("BUNDLE_PATH" => "/megamode/cache/bundle", "CARGO_HOME" => "/megamode/cargo",
                             "CARGO_TARGET_DIR" => "/megamode/cache/target", "BUNDLE_WITHOUT" => "development:test",
                             "GEM_HOME" => "/megamode/cache/gems")
      expect(env["HOME"]).to start_with("/tmp/")
      expect(env["BUNDLE_APP_CONFIG"]).to start_with("/tmp/"), "the app's own .bundle/config is not read"
      script = words.last.split(" && ")
      expect(script).to include("env BUNDLE_FROZEN=true bundle install")
      expect(script).to include(
        "cargo build --release --locked --package megamode --manifest-path /megamode/gem/Cargo.toml"
      )
      expect(script).to include("cp /megamode/cache/target/release/libmegamode.so " \
                                "/tmp/megamode-build/megamode/lib/megamode/megamode.so")
      cleared = script.index { |c| c.start_with?("find /tmp/megamode-build/megamode/lib/megamode ") }
      expect(cleared).to be_between(script.index { |c| c.start_with?("cp -R ") }, script.index { |c| c.include?("libmegamode.so") })
      expect(words[words.index("-w") + 1]).to eq("/megamode/app")
    end

    it "run as this user: --user, with Podman's keep-id user namespace when not root; as root, no flag" do
      expect(run_words(engine: "docker", uid: 1000, gid: 1001).each_cons(2)).to include(["--user", "1000:1001"])
      expect(run_words(engine: "finch", uid: 501, gid: 20).each_cons(2)).to include(["--user", "501:20"])
      podman = run_words(engine: "/usr/bin/podman", uid: 1000, gid: 1000)
      expect(podman.first).to eq("/usr/bin/podman")
      expect(podman).to include("--userns=keep-id")
      expect(podman.each_cons(2)).to include(["--user", "1000:1000"])
      expect(run_words(engine: "docker")).not_to include("--userns=keep-id")
      %w[docker podman].each do |engine|
        root_words = run_words(engine: engine, uid: 0, gid: 0)
        expect(root_words).not_to include("--user")
        expect(root_words).not_to include("--userns=keep-id")
      end
    end

    it "are printed so that a shell reads back the same words, paths with spaces and quotes included" do
      odd = File.join(root, "it's here")
      list = container.steps(engine: "docker", target: target("ruby3.4", "x86_64"), app: app,
                             out: File.join(odd, "out"), gem_root: "/gems/megamode", cache: cache, uid: 1, gid: 1)
      list.select(&:argv).each do |step|
        expect(Shellwords.split(step.to_s)).to eq(step.argv)
      end
      dockerfile = File.join(cache, "images", "ruby3.4", "Dockerfile")
      expect(list.find(&:path).to_s).to start_with("cat > #{dockerfile} <<'EOF'\n")
      expect(list.find(&:path).to_s).to end_with("\nEOF")
    end

    it "refuse a path a volume option cannot take" do
      expect { container.volume("/a:b", "/x") }.to raise_error(Megamode::BuildError, /`:` or `,`/)
    end
  end

  describe "errors" do
    it "with no engine on PATH, says which engines it looked for and what to do" do
      env = { "PATH" => "#{bin}:/nonexistent", "MEGAMODE_CONTAINER_ENGINE" => nil }
      status, out, err = cli("build", "--app", app, "--container", "--dry-run", env: env)

      expect(status).to eq(1)
      expect(out).to eq("")
      expect(err).to include("found none of docker, podman, finch on PATH")
      expect(err).to include("install Docker").and include("Podman").and include("Finch")
      expect(err).to include("without --container")
    end

    it "with MEGAMODE_CONTAINER_ENGINE naming nothing there, says so" do
      env = { "PATH" => bin, "MEGAMODE_CONTAINER_ENGINE" => "nerdctl" }
      expect { container.detect_engine(env: env) }
        .to raise_error(Megamode::BuildError, /MEGAMODE_CONTAINER_ENGINE=nerdctl names no executable/)
      fake_engine("nerdctl")
      expect(container.detect_engine(env: env)).to eq("nerdctl")
      expect(container.detect_engine(env: { "PATH" => "", "MEGAMODE_CONTAINER_ENGINE" => File.join(bin, "nerdctl") }))
        .to eq(File.join(bin, "nerdctl"))
    end

    it "refuses --local with --container, --dry-run alone, an unknown runtime and an app without its lock" do
      fake_engine("docker")
      env = { "PATH" => bin, "MEGAMODE_CONTAINER_ENGINE" => nil, "MEGAMODE_CONTAINER_CACHE" => cache }

      status, _, err = cli("build", "--app", app, "--container", "--local", "--dry-run", env: env)
      expect([status, err]).to match([1, /--local and --container do not go together/])

      status, _, err = cli("build", "--app", app, "--dry-run", env: env)
      expect([status, err]).to match([2, /--dry-run goes with --container/])

      status, _, err = cli("build", "--app", app, "--container", "--dry-run", "--runtime", "ruby3.2", env: env)
      expect([status, err]).to match([1, /"ruby3.2" is not a Lambda Ruby runtime/])

      File.delete(File.join(app, "Gemfile.lock"))
      status, _, err = cli("build", "--app", app, "--container", "--dry-run", env: env)
      expect([status, err]).to match([1, /has no Gemfile.lock/])
      expect(File.exist?(ran)).to be(false)
    end
  end

  describe "a real build" do
    it "runs in the SAM build image where an engine and the image are here" do
      engine = begin
        Megamode::Build::Engine.runnable
      rescue Megamode::BuildError => e
        skip "no container engine runs here: #{e.message}"
      end
      runtime = "ruby3.4"
      image = container.base_image(runtime)
      said, status = Open3.capture2e(engine, "image", "inspect", "--format", "{{json .Config.Labels}}", image)
      unless status.success?
        skip "#{engine} image inspect #{image} failed here (#{said.lines.grep(/\S/).last&.strip}): not the image " \
             "(#{engine} pull #{image}, or bin/lambda-image #{runtime} for the stand-in)"
      end
      # bin/lambda-image's stand-in is Debian, not Amazon Linux: the Dockerfile's dnf is not there, and
      # rustup needs the network. What needs neither, a build by the precompiled gem, runs there in
      # spec/end_to_end/container_build_spec.rb.
      if said.include?("megamode.stand-in")
        skip "#{image} is megamode's stand-in (bin/lambda-image), where the Dockerfile's dnf and rustup cannot run " \
             "(spec/end_to_end/container_build_spec.rb builds there with the precompiled gem)"
      end

      shop = File.join(root, "shop")
      FileUtils.cp_r(fixture_app("sinatra_build"), shop)
      said, status = Open3.capture2e({ "BUNDLE_GEMFILE" => File.join(shop, "Gemfile") }, "bundle", "lock", chdir: shop)
      skip "bundle lock could not lock the app's gems here: #{said.lines.last&.strip}" unless status.success?

      out = File.join(root, "out", "package")
      status, _, err = cli("build", "--app", shop, "--out", out, "--container",
                           "--runtime", runtime, env: { "MEGAMODE_CONTAINER_CACHE" => cache })
      expect(status).to eq(0), err
      target = JSON.parse(File.read(File.join(out, "megamode", "target.json")))
      expect(target).to include("runtime" => runtime, "local" => false)
      expect(File.stat(File.join(out, "handler.rb")).uid).to eq(Process.uid)
    end
  end
end
