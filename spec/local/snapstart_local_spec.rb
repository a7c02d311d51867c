# frozen_string_literal: true

require "spec_helper"
require "net/http"
require "open3"

# `megamode invoke|serve --snapstart --restore-after SECONDS`, run as a user runs them: the init is
# SnapStart's, every process of the environment is stopped between the snapshot and the restore for
# longer than the app server keeps an idle connection (spec/fixtures/apps/snapstart: puma's
# persistent_timeout is 2 s), and the first event after the restore is answered. The app (through
# the native loop, whose lifecycle SnapStart is) records each lifecycle request it gets.
RSpec.describe "megamode invoke and serve --snapstart" do
  include SnapshotHarness

  let(:exe) { File.join(SpecHelpers::ROOT, "exe", "megamode") }
  # The app writes its record there; the app of a package may run as a user that owns nothing.
  let(:dir) { PackageBuild.scratch("megamode-snaplocal-").tap { |d| File.chmod(0o1777, d) } }
  let(:record) { File.join(dir, "record.jsonl") }
  let(:env) { { "SNAPSTART_RECORD" => record } }

  after { FileUtils.rm_rf(dir) }

  # A process's state letter from /proc (T: stopped), or nil once it is gone.
  def state(pid)
    File.read("/proc/#{pid}/stat").rpartition(")").last.split.first
  rescue SystemCallError
    nil
  end

  it "freezes the environment between the snapshot and the restore, then answers, the REPORT giving Restore Duration" do
    out = err = status = nil
    stopped = false
    Open3.popen3(env, RbConfig.ruby, exe, "invoke", "--app", fixture_app("snapstart"), "--snapstart",
                 "--restore-after", "3", "--get", "/", "--get", "/") do |stdin, stdout, stderr, wait|
      stdin.close
      results = Thread.new { stdout.read }
      err = +""
      # The app's server is stopped once the restore line is out: it is the one the snapshot holds.
      until err.include?("restoring it after a freeze")
        line = stderr.gets or break
        err << line
      end
      server = received.first&.fetch("pid")
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 2.5
      until stopped || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        stopped = state(server) == "T" if server
        sleep 0.02
      end
      err << stderr.read
      out = results.value
      status = wait.value
    end

    expect(status.exitstatus).to eq(0), err
    expect(stopped).to be(true), "the app's server was stopped (SIGSTOP) during the freeze:\n#{err}"
    answers = out.lines.map { |l| JSON.parse(l) }
    expect(answers.map { |a| a["statusCode"] }).to eq([200, 200]), err
    before, after = received
    expect([before["phase"], after["phase"]]).to eq(%w[before-snapshot after-restore])
    expect(answers.map { |a| JSON.parse(a["body"])["pid"] }.uniq).to eq([before["pid"]]),
                                                                     "the server from before the snapshot answers"

    lines = err.lines.map(&:chomp)
    restore = lines.index { |l| l.include?("SnapStart: the init is over and the snapshot taken") }
    expect(lines[restore]).to end_with("restoring it after a freeze of 3 s (every process of the environment " \
                                       "stopped, as in a snapshot restored that much later)")
    reports = lines.grep(/\AREPORT RequestId: /)
    expect(reports.size).to eq(2), err
    expect(reports[0]).to match(/\tMax Memory Used: \d+ MB\tRestore Duration: [\d.]+ ms\tBilled Restore Duration: \d+ ms\z/)
    expect(reports[0]).not_to include("Init Duration"), "a restored environment's REPORT has none, as on Lambda"
    expect(reports[1]).not_to include("Restore Duration", "Init Duration")
    expect(restore).to be < lines.index { |l| l.start_with?("START RequestId: ") }
  end

  it "answers every event with the init's error when a before-snapshot hook failed, at once" do
    out, err, status = Open3.capture3(env.merge("SNAPSTART_FAIL" => "before-snapshot"), RbConfig.ruby, exe, "invoke",
                                      "--app", fixture_app("snapstart"), "--snapstart", "--get", "/", "--get", "/")
    expect(status.exitstatus).to eq(1), err
    answers = out.lines.map { |l| JSON.parse(l) }
    expect(answers.size).to eq(2), err
    answers.each do |answer|
      expect(answer["errorMessage"]).to include("before-snapshot hook reconnect_database failed"), err
    end
    expect(err).not_to include("gave no answer")
  end

  it "serves the app through megamode serve after the freeze, and restores at once without --restore-after" do
    server = LocalGateway.new("--app", fixture_app("snapstart"), "--snapstart", "--restore-after", "3", env: env)
    begin
      response = Net::HTTP.start("127.0.0.1", server.port) { |http| http.get("/") }
      expect(response.code).to eq("200"), server.log
      served = server.wait_for_log("Restore Duration")
      expect(served).to include("megamode: SnapStart: the init is over and the snapshot taken; restoring it after a freeze of 3 s")
      expect(served).not_to include("megamode invoke:"), "said by megamode serve, not invoke"
      expect(received.map { |r| r["phase"] }).to eq(%w[before-snapshot after-restore])
    ensure
      server.stop
    end

    FileUtils.rm_f(record)
    out, err, status = Open3.capture3(env, RbConfig.ruby, exe, "invoke", "--app", fixture_app("snapstart"),
                                      "--snapstart", "--get", "/")
    expect(status.exitstatus).to eq(0), err
    expect(JSON.parse(out)["statusCode"]).to eq(200)
    expect(err).to include("the init is over and the snapshot taken; restoring it now")
    expect(err).to match(/\tRestore Duration: [\d.]+ ms/)
    expect(received.map { |r| r["phase"] }).to eq(%w[before-snapshot after-restore])
  end

  it "refuses --restore-after without --snapstart, or below zero, before starting anything" do
    app = fixture_app("snapstart")
    {
      ["--app", app, "--restore-after", "3"] => "--restore-after is the freeze between SnapStart's snapshot and its " \
                                                  "restore: it goes with --snapstart",
      ["--app", app, "--snapstart", "--restore-after", "-1"] => "--restore-after must be a finite number of seconds, " \
                                                                  "0 or more, got -1.0",
      # More than sleep can wait: the processes were stopped, the init failed, the event waited 60 s.
      ["--app", app, "--snapstart", "--restore-after", "1e19"] => "--restore-after must be at most 86400 seconds " \
                                                                    "(a day), got 1.0e+19"
    }.each do |args, message|
      %w[invoke serve].each do |command|
        extra = command == "invoke" ? ["--get", "/"] : ["--port", LocalGateway.free_port.to_s]
        _, err, status = Open3.capture3(env, RbConfig.ruby, exe, command, *args, *extra)
        expect(status.exitstatus).to eq(2), "#{command} #{args.join(" ")}: #{err}"
        expect(err).to include(message)
      end
    end
    expect(received).to eq([]), "nothing started"
  end
end
