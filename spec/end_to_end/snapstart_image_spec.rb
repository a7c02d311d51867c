# frozen_string_literal: true

require "spec_helper"
require "open3"
require "securerandom"
require "megamode/build"

# SnapStart, end to end: the Rails 7.2 app with its SQLite database (the prebuilt blog package,
# built by the stand-in's ruby3.4), as an image FROM the stand-in's public.ecr.aws/lambda/ruby:3.4,
# run by `megamode invoke --image --snapstart` in both modes: init (with the app primed), the
# before-snapshot hooks, the snapshot, a freeze longer than puma's keep-alive timeout, the restore,
# the after-restore hooks, then events. The app's probe (BuiltRails's /snapstart) reports what its
# own hooks saw in each server process. Runs where image_package_spec runs (bin/test's lambda
# section, as root with an engine); skipped, saying why, elsewhere.
RSpec.describe "SnapStart: the Rails app's image through init, snapshot and restore", :image do
  runtime = "ruby3.4"
  # The app's puma keep-alive timeout, and a freeze longer than it between the snapshot and the
  # restore: the connection megamode had before the snapshot would be dead after the restore.
  let(:keep_alive) { 2 }
  let(:freeze_seconds) { 3 }

  before(:all) do
    @engine = stand_in_engine(runtime)
    prebuilt = PackageBuild.prebuilt_dir
    unless prebuilt && File.directory?(File.join(prebuilt, BuiltRails::NAME))
      skip "no prebuilt #{BuiltRails::NAME} package (#{runtime}'s Ruby builds it: MEGAMODE_TEST_PACKAGES=DIR after " \
           "bin/lambda-root #{runtime} build -- ruby spec/prebuild_packages.rb DIR #{BuiltRails::NAME})"
    end
    said, status = Open3.capture2e({ "MEGAMODE_CONTAINER_ENGINE" => @engine },
                                   File.join(SpecHelpers::ROOT, "bin", "lambda-image"), runtime)
    raise "bin/lambda-image #{runtime} failed:\n#{said}" unless status.success?

    package = BuiltRails.package
    Megamode::Build::Image.write(package, runtime: runtime, version: Megamode::VERSION)
    @tag = "localhost/megamode-snapstart-spec:#{SecureRandom.hex(6)}"
    Megamode::Build::Image.new(dir: package, tag: @tag, arch: "x86_64").build(@engine)
  end

  after(:all) do
    system(@engine, "rmi", "-f", @tag, out: File::NULL, err: File::NULL) if @tag
  end

  # `megamode invoke --image --snapstart` of GET `paths`, the environment restored after a freeze:
  # [bodies (parsed; nil for a result that is not 200), results, log, status].
  def snapstart_invoke(mode, paths, env = {})
    env = { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "snap#{"0" * 64}", "FORCE_SSL" => "0",
            "PUMA_PERSISTENT_TIMEOUT" => keep_alive.to_s, "MEGAMODE_PRIME" => "/snapstart" }.merge(env)
    out, log, status = Open3.capture3(RbConfig.ruby, PackageBuild::EXE, "invoke", "--image", @tag, "--mode", mode,
                                      "--snapstart", "--restore-after", freeze_seconds.to_s,
                                      *env.flat_map { |k, v| ["--env", "#{k}=#{v}"] },
                                      *paths.flat_map { |path| ["--get", path] })
    results = out.lines.map { |line| JSON.parse(line) }
    bodies = results.map { |r| JSON.parse(r["body"]) if r["statusCode"] == 200 }
    [bodies, results, log, status]
  end

  def containers
    Open3.capture2(@engine, "ps", "-a", "-q", "--filter", "ancestor=#{@tag}").first.split
  end

  %w[handler native].each do |mode|
    context "through #{mode == "handler" ? "Lambda's runtime client and handler.rb" : "the native loop"} (#{mode})" do
      it "closes the database connection before the snapshot, opens a new one after, reseeds Random, and " \
         "answers the first event after a freeze past puma's keep-alive timeout" do
        bodies, results, log, status = snapstart_invoke(mode, ["/snapstart", "/snapstart"])
        expect(results.size).to eq(2), log
        expect(results.map { |r| r["statusCode"] }).to eq([200, 200]), "#{results}\n#{log}"
        first, second = bodies
        # Primed before the snapshot: the probe's query opened the connection its hook then saw.
        expect(first).to include("before" => 1, "after" => 1, "connected_before" => true), log
        # megamode's own before-snapshot hook disconnected the pool: nothing of it was open at the restore.
        expect(first["connected_at_restore"]).to eq(false), log
        expect(first["connection"]).not_to eq(first["connection_before"])
        expect(first["posts"]).to be_a(Integer)
        expect(first["seed"]).not_to eq(first["seed_before"])
        # The same server, its hooks run once.
        expect(second).to include("pid" => first["pid"], "before" => 1, "after" => 1, "seed" => first["seed"])
        expect(log).to include("SnapStart: restored").and include("Restore Duration")
        expect(log).to match(%r{primed GET /snapstart}i)
        expect(status.exitstatus).to eq(0), log
        expect(containers).to be_empty
      end

      it "reports a failing after-restore hook on the restore error call, naming it" do
        _bodies, results, log, status = snapstart_invoke(mode, ["/snapstart"], "SNAPSTART_PROBE_FAIL" => "after-restore")
        said = "#{results}\n#{log}"
        expect(said).to include("snapstart_probe").and include("fails on purpose")
        expect(log).to include("restore failed")
        expect(results.map { |r| r["statusCode"] }).not_to include(200)
        expect(status.exitstatus).not_to eq(0), log
        expect(containers).to be_empty
      end
    end
  end

  it "reseeds Random and runs the hooks in every worker of a puma cluster, preloaded (native)" do
    # ?close=1: each event on a new connection, which the workers race to accept.
    bodies, results, log, status = snapstart_invoke("native", Array.new(12, "/snapstart?close=1"), "WEB_CONCURRENCY" => "2")
    expect(results.map { |r| r["statusCode"] }.uniq).to eq([200]), "#{results}\n#{log}"
    by_pid = bodies.group_by { |body| body["pid"] }
    skip "the 12 events all reached one worker (#{by_pid.keys.join}): the accept race chose it every time" if by_pid.size < 2

    by_pid.each_value do |seen|
      worker = seen.last
      expect(worker).to include("before" => 1, "after" => 1), "worker #{worker["pid"]}: #{worker}\n#{log}"
      expect(worker["seed"]).not_to eq(worker["seed_before"]), "worker #{worker["pid"]}"
    end
    expect(by_pid.values.map { |seen| seen.last["seed"] }.uniq.size).to eq(by_pid.size)
    expect(status.exitstatus).to eq(0), log
  end
end
