# frozen_string_literal: true

require "spec_helper"
require "shellwords"
require "megamode/build"
require "megamode/cli"

# Which container engine runs, and whether it can: fake engines on PATH stand for a Docker client
# without its daemon (what this machine's /usr/local/bin/docker is) and for one that runs.
RSpec.describe Megamode::Build::Engine do
  let(:engine) { described_class }
  let(:root) { Dir.mktmpdir("megamode-engine-spec-") }
  let(:bin) { File.join(root, "bin").tap { |d| FileUtils.mkdir_p(d) } }
  let(:ran) { File.join(root, "ran") }
  # Only the fakes: a real engine elsewhere on PATH is not asked. (The fakes need only the shell.)
  let(:env) { { "PATH" => bin, "MEGAMODE_CONTAINER_ENGINE" => nil } }
  let(:daemonless) { "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" }

  after { FileUtils.rm_rf(root) }

  # An engine that records each run's arguments; `info` fails, saying `error` on stderr, when given.
  def fake_engine(name, error: nil)
    info = error ? %(echo "Client:"; echo #{error.shellescape} >&2; exit 1) : "exit 0"
    path = File.join(bin, name)
    File.write(path, <<~SH)
      #!/bin/sh
      echo "#{name} $*" >> #{ran.shellescape}
      [ "$1" = info ] && { #{info}; }
      exit 0
    SH
    File.chmod(0o755, path)
    path
  end

  def runs
    File.exist?(ran) ? File.readlines(ran, chomp: true) : []
  end

  it "skips an engine on PATH that cannot run for the next one that can, and asks each once" do
    fake_engine("docker", error: daemonless)
    fake_engine("podman")

    expect(engine.find(env: env)).to eq("docker")
    expect(runs).to eq([]), "finding an engine runs nothing"
    expect(engine.runnable(env: env)).to eq("podman")
    expect(engine.runnable(env: env)).to eq("podman")
    expect(runs).to eq(["docker info", "podman info"])
  end

  it "refuses when the only engine cannot run: its own error first, then which engine, then what to do" do
    fake_engine("docker", error: daemonless)

    expect { engine.runnable(env: env) }.to raise_error(Megamode::BuildError) { |error|
      expect(error.message).to start_with("#{daemonless}: docker, the only container engine on PATH, cannot run")
      expect(error.message).to include("start Docker's daemon")
        .and include("MEGAMODE_CONTAINER_ENGINE=podman").and include("install Podman")
    }
  end

  it "lists every engine that cannot run, leading with the first one's error" do
    fake_engine("docker", error: daemonless)
    fake_engine("podman", error: "Error: could not get runtime: crun: executable file not found")

    expect { engine.runnable(env: env) }.to raise_error(Megamode::BuildError) { |error|
      expect(error.message).to start_with(daemonless)
      expect(error.message).to include("none of the container engines on PATH (docker, podman)")
      expect(error.message).to include("podman: Error: could not get runtime")
      expect(error.message).to include("containers.conf").and include("MEGAMODE_CONTAINER_ENGINE=finch")
    }
  end

  it "takes MEGAMODE_CONTAINER_ENGINE's engine, and refuses it when it cannot run rather than take another" do
    fake_engine("docker")
    podman = fake_engine("podman", error: "Error: cannot set up namespace")

    expect(engine.runnable(env: env.merge("MEGAMODE_CONTAINER_ENGINE" => "docker"))).to eq("docker")
    expect { engine.runnable(env: env.merge("MEGAMODE_CONTAINER_ENGINE" => podman)) }
      .to raise_error(Megamode::BuildError, /\AError: cannot set up namespace: #{Regexp.escape(podman)} \(MEGAMODE_CONTAINER_ENGINE\) cannot run/)
  end

  it "says when an engine does not start at all" do
    path = File.join(bin, "docker")
    File.write(path, "#!/nonexistent/interpreter\n")
    File.chmod(0o755, path)

    expect { engine.runnable(env: env) }.to raise_error(Megamode::BuildError, /it does not start: .*docker, the only/)
  end

  describe "megamode build --container" do
    let(:app) do
      File.join(root, "app").tap do |dir|
        FileUtils.mkdir_p(dir)
        File.write(File.join(dir, "config.ru"), "run ->(_) { [200, {}, ['hi']] }\n")
        File.write(File.join(dir, "Gemfile"), %(source "https://rubygems.org"\ngem "rack"\n))
        File.write(File.join(dir, "Gemfile.lock"), "GEM\n  specs:\n\nDEPENDENCIES\n  rack\n")
      end
    end

    def build(env)
      out = StringIO.new
      err = StringIO.new
      saved = env.to_h { |k, _| [k, ENV[k]] }
      env.each { |k, v| ENV[k] = v }
      status = Megamode::CLI.new(["build", "--app", app, "--container", "--runtime", "ruby3.4", "--arch", "x86_64"],
                                 out: out, err: err).run
      [status, err.string]
    ensure
      saved&.each { |k, v| ENV[k] = v }
    end

    it "runs in the engine that can run, not the first on PATH" do
      fake_engine("docker", error: daemonless)
      fake_engine("podman")

      # mkdir, which the build runs first, from the system; the engines from the fakes.
      status, err = build(env.merge("PATH" => "#{bin}:/usr/bin:/bin", "MEGAMODE_CONTAINER_CACHE" => File.join(root, "cache")))
      expect(status).to eq(0), err
      expect(err).to include("in podman, in public.ecr.aws/sam/build-ruby3.4")
      expect(runs.map { |line| line.split.first(2) })
        .to eq([%w[docker info], %w[podman info], %w[podman build], %w[podman run]])
    end

    it "stops before running anything when no engine can run, saying why" do
      fake_engine("docker", error: daemonless)

      status, err = build(env.merge("MEGAMODE_CONTAINER_CACHE" => File.join(root, "cache")))
      expect(status).to eq(1)
      expect(err).to include(daemonless).and include("MEGAMODE_CONTAINER_ENGINE=podman")
      expect(runs).to eq(["docker info"])
      expect(Dir.exist?(File.join(root, "cache"))).to be(false)
    end
  end
end
