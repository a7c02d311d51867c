# frozen_string_literal: true

# The app's copy (MEGAMODE_COPY_APP): the server runs from a writable copy of the app under
# MEGAMODE_TMP.
RSpec.describe "copying the app" do
  def whoami
    JSON.parse(Megamode.handler(event: v2_event("/"), context: context)["body"])
  end

  it "runs an app that writes to tmp/ and log/ from its copy, and leaves the original alone" do
    app = fixture_app("writer")
    Megamode.configure do |c|
      c.app_root = app
      c.copy_app = "always"
    end
    log = nil
    first = nil
    log = capture_stdout_fd { first = whoami }
    second = whoami

    expect(first["pwd"]).to start_with(File.join(ENV.fetch("MEGAMODE_TMP"), "app-"))
    expect(first["dir"]).to eq(first["pwd"]), "__dir__ is the app's copy, not the package"
    expect(second["log_lines"]).to eq(2)
    expect(log).to match(/megamode: copied the app into .* in \d+ ms/)
    expect(log).to match(/megamode: cold start: copy \d+ ms, lazy-load \d+ ms, spawn to ready/)
    expect(Dir.exist?(File.join(app, "tmp"))).to be(false)
    expect(Dir.exist?(File.join(app, "log"))).to be(false)
  end

  it "copies once: a second boot in the same environment copies nothing" do
    Megamode.configure do |c|
      c.app_root = fixture_app("writer")
      c.copy_app = "always"
    end
    first = whoami["pwd"]
    Megamode.shutdown
    log = capture_stdout_fd { expect(whoami["pwd"]).to eq(first) }

    expect(log).not_to include("copied the app")
  end

  it "boots a Rails app from its copy" do
    ENV["SECRET_KEY_BASE"] ||= "megamode-test-#{"0" * 64}"
    Megamode.configure do |c|
      c.app_root = RailsApp.path
      c.copy_app = "always"
    end
    result = nil
    log = capture_stdout_fd { result = Megamode.handler(event: v2_event("/posts"), context: context) }

    expect(result["statusCode"]).to eq(200)
    expect(log).to include("copied the app into")
    expect(log).to match(/^Rails: .*Completed 200 OK/)
  end

  it "still takes the setting's old name, stage (MEGAMODE_STAGE), saying once at boot to use copy_app" do
    Megamode.configure do |c|
      c.app_root = fixture_app("writer")
      c.stage = "always"
    end
    pwd = nil
    log = capture_stdout_fd { pwd = whoami["pwd"] }

    expect(pwd).to start_with(File.join(ENV.fetch("MEGAMODE_TMP"), "app-"))
    expect(log.scan("megamode: MEGAMODE_STAGE is deprecated: use MEGAMODE_COPY_APP (in Megamode.configure, " \
                    "copy_app instead of stage)").size).to eq(1), log
  end

  it "takes the new name over the old one when both are set, and says nothing of the old one" do
    ENV["MEGAMODE_COPY_APP"] = "never"
    Megamode.configure do |c|
      c.app_root = fixture_app("rack_hello")
      c.stage = "always"
    end
    result = nil
    log = capture_stdout_fd { result = Megamode.handler(event: v2_event("/lambda"), context: context) }

    expect(JSON.parse(result.fetch("body"))["pwd"]).to eq(fixture_app("rack_hello")), "the app runs from itself"
    expect(log).not_to include("deprecated")
  ensure
    ENV.delete("MEGAMODE_COPY_APP")
  end

  context "on a shared machine, where another user may have been in MEGAMODE_TMP first" do
    around do |example|
      Dir.mktmpdir("megamode-shared-", ENV.fetch("MEGAMODE_TMP")) do |dir|
        @dir = dir
        @app = File.join(dir, "app")
        FileUtils.cp_r(fixture_app("writer"), @app)
        File.write(File.join(@app, ".megamode-build-id"), "b1\n")
        example.run
      end
    end

    # What another user would leave: an app of their own where the package's copy would be.
    def plant(dir)
      FileUtils.mkdir_p(File.join(dir, "app-b1"))
      File.write(File.join(dir, "app-b1", "config.ru"), %(run ->(_) { [200, {}, ["planted"]] }\n))
      File.join(dir, "app-b1")
    end

    # The app copied always, into `tmp`.
    def copy_into(tmp)
      Megamode.configure do |c|
        c.app_root = @app
        c.copy_app = "always"
        c.tmp = tmp
      end
    end

    it "refuses a MEGAMODE_TMP that is a link, naming it, and copies nothing through it" do
      planted = File.join(@dir, "elsewhere")
      plant(planted)
      link = File.join(@dir, "megamode")
      File.symlink(planted, link)
      copy_into(link)

      expect { Megamode.handler(event: v2_event("/"), context: context) }.to raise_error(Megamode::BootError) { |e|
        expect(e.message).to start_with("MEGAMODE_TMP #{link} is a symbolic link to #{planted}")
        expect(e.message).to include("set MEGAMODE_TMP to a directory of your own")
      }
      expect(Dir.children(planted)).to eq(["app-b1"])
    end

    it "does not run a copy of the app another user made, and says whose it is and what to do" do
      skip "planting another user's directory needs root" unless Process.euid.zero?

      tmp = File.join(@dir, "megamode")
      Dir.mkdir(tmp, 0o700)
      planted = plant(tmp)
      FileUtils.chown_R(65_534, 65_534, planted)
      copy_into(tmp)

      expect { Megamode.handler(event: v2_event("/"), context: context) }.to raise_error(Megamode::BootError) { |e|
        expect(e.message).to start_with("copying the app: #{planted} is a directory of another user's (owner uid 65534")
        expect(e.message).to include("remove it, or set MEGAMODE_TMP to a directory of your own")
      }
    end
  end
end

RSpec.describe "copying the app in a filesystem like Lambda's (read-only package, tmpfs /tmp)" do
  # Outside /tmp, which the Lambda-like filesystem replaces, as /var/task is.
  let(:package) { Dir.mktmpdir("megamode-package-", File.directory?("/dev/shm") ? "/dev/shm" : "/var/tmp") }

  before { FileUtils.cp_r(File.join(fixture_app("writer"), "."), package) }
  after { FileUtils.rm_rf(package) }

  it "copies a read-only package by itself and runs it from /tmp" do
    result, log = LambdaFs.invoke(package: package, event: v2_event("/"))
    body = JSON.parse(result.fetch("body"))

    expect(body["pwd"]).to start_with("/tmp/megamode/app-")
    expect(log).to include("megamode: copied the app into /tmp/megamode/app-")
    expect(Dir.children(package)).to eq(["config.ru"]), "the package is untouched"
  end

  # Records megamode build writes as small regular files, as a hostile or broken package may have
  # them: read through, a link to /dev/zero takes all memory and a FIFO blocks forever.
  it "boots a package whose build id and bootsnap record are FIFOs or links to /dev/zero, and says why it did not use them" do
    record = File.join(package, "tmp", "cache", "megamode-bootsnap.json")
    FileUtils.mkdir_p(File.dirname(record))
    id = File.join(package, ".megamode-build-id")
    [[:fifo, :zero], [:zero, :fifo]].each do |id_kind, record_kind|
      { id => id_kind, record => record_kind }.each do |path, kind|
        FileUtils.rm_f(path)
        kind == :fifo ? File.mkfifo(path) : File.symlink("/dev/zero", path)
      end
      result, log = LambdaFs.invoke(package: package, event: v2_event("/"))
      said = { fifo: "is a FIFO, not a regular file", zero: "is a symbolic link, not a regular file" }

      expect(result["statusCode"]).to eq(200), result.inspect
      expect(JSON.parse(result["body"])["pwd"]).to start_with("/tmp/megamode/app-")
      expect(log).to include("megamode: the package's build id #{id} #{said.fetch(id_kind)}: the copy is named by a fingerprint")
      expect(log).to include("the package's bootsnap cache does not fit here: its record " \
                             "tmp/cache/megamode-bootsnap.json #{said.fetch(record_kind)}")
    end
  end

  it "refuses, naming both sizes and the setting to raise, when /tmp is too small for the app" do
    File.binwrite(File.join(package, "big.bin"), Random.new(1).bytes(3 * 1024 * 1024))
    result, = LambdaFs.invoke(package: package, event: v2_event("/"), tmp_size: "2m")

    expect(result["errorType"]).to eq("Megamode::BootError")
    expect(result["errorMessage"]).to match(%r{copying the app needs 4 MB in /tmp/megamode but only [12] MB are free})
    expect(result["errorMessage"]).to include("EphemeralStorage")
  end
end
