# frozen_string_literal: true

require "spec_helper"

# What a package sees when `megamode invoke --package` and `megamode serve --package` run it: the
# environment Lambda gives (these specs run as root, so the task root is read-only and /tmp fresh).
RSpec.describe "the Lambda-like environment of a package" do
  before(:all) do
    @dir = PackageBuild.scratch("megamode-lambda-env-")
    @package = PackageBuild.built("rack_hello", @dir, package: "hello")
  end
  after(:all) { FileUtils.rm_rf(@dir) }

  it "sets Lambda's variables, a read-only task root and a trace id per invocation" do
    events = [PackageBuild.staged_event("/lambda"), PackageBuild.staged_event("/lambda")]
    results, = PackageBuild.invoke(@package, events, tmp: @dir)
    first, second = results.map { |r| JSON.parse(r.fetch("body")) }

    expect(first["env"]).to include("LAMBDA_TASK_ROOT" => @package, "_HANDLER" => "handler.handler",
                                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => "1024", "MEGAMODE" => "1")
    expect(first["env"]["AWS_EXECUTION_ENV"]).to match(/\AAWS_Lambda_ruby3\.\d\z/)
    expect(first["task_root_write"]).to eq("Errno::EROFS")
    expect(first["pwd"]).to start_with(File.join(@dir, "lambda-tmp", "app-"))
    expect(first["env"]["HOME"]).to start_with(File.join(@dir, "lambda-tmp")), "a writable HOME of megamode's"
    expect([first["trace"], second["trace"]]).to all(match(/\ARoot=1-\h{8}-\h{24};Parent=\h{16};Sampled=0\z/))
    expect(first["trace"]).not_to eq(second["trace"])
  end

  it "freezes the app's server between invocations and thaws it for the next" do
    gateway = LocalGateway.new("--package", @package)
    client = gateway.client
    pid = JSON.parse(client.get("/whoami").body).fetch("pid")
    state = lambda do
      File.read("/proc/#{pid}/stat")[/\) (\w)/, 1]
    end
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    sleep 0.01 until state.call == "T" || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    expect(state.call).to eq("T"), "stopped while no invocation runs"
    expect(JSON.parse(client.get("/whoami").body)["pid"]).to eq(pid), "the same server serves after the thaw"
  ensure
    client&.close
    gateway&.stop
  end

  it "runs the native loop the same way: a Lambda log per invocation, all of it frozen in between" do
    gateway = LocalGateway.new("--package", @package, "--mode", "native")
    client = gateway.client
    pid = JSON.parse(client.get("/whoami").body).fetch("pid")
    loop_pid = File.read("/proc/#{pid}/stat")[/\) \w (\d+)/, 1].to_i # the server's parent
    state = ->(process) { File.read("/proc/#{process}/stat")[/\) (\w)/, 1] }
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    sleep 0.01 until state.call(pid) == "T" || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    expect([state.call(pid), state.call(loop_pid)]).to eq(%w[T T]), "the server and the loop stopped between invocations"
    expect(JSON.parse(client.get("/whoami").body)["pid"]).to eq(pid), "the same server serves after the thaw"
    log = gateway.wait_for_log("REPORT RequestId:")
    expect(log).to include("START RequestId:", "Rack: handling GET /whoami", "END RequestId:")
    expect(log).to match(/^REPORT RequestId: \S+\tDuration: [\d.]+ ms\t.*\tInit Duration: [\d.]+ ms$/)
  ensure
    client&.close
    gateway&.stop
  end
end
