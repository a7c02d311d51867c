# frozen_string_literal: true

require "spec_helper"
require "open3"
require "securerandom"
require "megamode/build"
require "megamode/local/lambda_variables"
require "megamode/local/runtime_api_emulator"

# The stand-in for Lambda's Ruby base image (bin/lambda-image), run for real: a function built FROM
# public.ecr.aws/lambda/ruby:3.4 with the engine's own `build`, run as Lambda runs an image (a
# read-only root, a fresh /tmp, a user that owns nothing, Lambda's variables and no others, the
# Runtime API served from outside: megamode's emulator, on this machine's loopback). Skipped, saying
# why, where no container engine runs, without root (the stand-in's layers are root's) or without
# the stand-in's layers (bin/lambda-root makes them); bin/test runs it on the host, as root.
RSpec.describe "the Lambda stand-in's ruby3.4 image", :image do
  runtime = "ruby3.4"
  base = "public.ecr.aws/lambda/ruby:3.4"
  # Lambda's sandbox user (as bin/lambda-root's run flavour): it owns nothing in the image.
  let(:user) { "993:993" }

  # The function: what it got and what it finds, or an exception when the event asks for one.
  handler = <<~RUBY
    def handler(event:, context:)
      raise ArgumentError, "the event asked for an error" if event["fail"]

      writable = ->(dir) { File.write(File.join(dir, "probe"), "x") && true rescue false }
      { "event" => event, "request_id" => context.aws_request_id, "function_name" => context.function_name,
        "memory" => context.memory_limit_in_mb, "remaining" => context.get_remaining_time_in_millis,
        "uid" => Process.uid, "ruby" => RUBY_VERSION, "variables" => ENV.keys.sort, "handler" => ENV["_HANDLER"],
        "tmp_writable" => writable.call("/tmp"), "task_writable" => writable.call(ENV["LAMBDA_TASK_ROOT"]),
        "root_writable" => writable.call("/") }
    end
  RUBY

  before(:all) do
    @engine = stand_in_engine(runtime)

    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    said, status = Open3.capture2e({ "MEGAMODE_CONTAINER_ENGINE" => @engine },
                                   File.join(SpecHelpers::ROOT, "bin", "lambda-image"), runtime)
    raise "bin/lambda-image #{runtime} failed:\n#{said}" unless status.success?

    @dir = Dir.mktmpdir("megamode-image-spec-")
    File.write(File.join(@dir, "handler.rb"), handler)
    File.write(File.join(@dir, "Dockerfile"), <<~DOCKERFILE)
      FROM #{base}
      COPY handler.rb ${LAMBDA_TASK_ROOT}
      CMD ["handler.handler"]
    DOCKERFILE
    @image = "localhost/megamode-image-spec:#{SecureRandom.hex(6)}"
    said, status = Open3.capture2e(@engine, "build", "-q", "-t", @image, @dir)
    raise "#{@engine} build of the function FROM #{base} failed:\n#{said}" unless status.success?

    warn "lambda image spec: #{runtime}'s images and the function's in " \
         "#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(1)} s"
  end

  after(:all) do
    system(@engine, "rmi", "-f", @image, out: File::NULL, err: File::NULL) if @image
    FileUtils.rm_rf(@dir) if @dir
  end

  let(:emulator) { Megamode::Local::RuntimeApiEmulator.new }
  let(:name) { "megamode-image-spec-#{SecureRandom.hex(6)}" }
  let(:log) { File.join(@dir, "#{name}.log") }
  # The variables Lambda gives the function; the image's own configuration (PATH, LANG, ...) is there
  # as on Lambda, and the entry point sets _HANDLER from the image's CMD.
  let(:variables) do
    identity = Megamode::Local::Identity
    { "AWS_LAMBDA_RUNTIME_API" => emulator.address, "AWS_LAMBDA_FUNCTION_NAME" => identity::FUNCTION_NAME,
      "AWS_LAMBDA_FUNCTION_VERSION" => identity::FUNCTION_VERSION,
      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => identity::MEMORY_MB.to_s, "AWS_LAMBDA_LOG_GROUP_NAME" => identity.log_group,
      "AWS_LAMBDA_LOG_STREAM_NAME" => identity.log_stream, "AWS_REGION" => identity::REGION,
      "AWS_DEFAULT_REGION" => identity::REGION, "AWS_LAMBDA_INITIALIZATION_TYPE" => "on-demand" }
  end

  after do
    # Whatever happened, the container goes (`--rm` removes it when it stops by itself).
    system(@engine, "rm", "-f", "-t", "0", name, out: File::NULL, err: File::NULL) if @engine
    Process.wait(@pid) if @pid
    emulator.close
  end

  # Starts the function's container as Lambda runs an image; `variables`: its whole environment
  # beyond the image's, `command`: the CMD (the handler) instead of the image's.
  def start(variables, command: [])
    # Podman adds TERM and `container` of its own; HOME and HOSTNAME it always sets.
    unset = File.basename(@engine) == "podman" ? %w[--unsetenv TERM --unsetenv container] : []
    argv = [@engine, "run", "--rm", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "host",
            "--user", user, *unset, *variables.flat_map { |k, v| ["-e", "#{k}=#{v}"] }, @image, *command]
    @started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @pid = Process.spawn(*argv, out: log, err: %i[child out])
  end

  def said
    File.exist?(log) ? File.read(log) : ""
  end

  # Whether the engine still knows the container.
  def container_exists?
    system(@engine, "container", "exists", name, out: File::NULL, err: File::NULL)
  end

  it "answers an event through the Runtime API, read-only but for /tmp, as a user that owns nothing, with Lambda's variables" do
    start(variables)
    result = emulator.invoke({ "hello" => "image" }, wait: 60)
    first = Process.clock_gettime(Process::CLOCK_MONOTONIC) - @started
    expect(result).not_to be_nil, "no response within 60 s; the container said:\n#{said}"
    expect(result.kind).to eq(:response), "#{result.kind}: #{result.body}\n#{said}"
    warn "lambda image spec: first response #{(first * 1000).round} ms after `#{File.basename(@engine)} run`"

    answer = JSON.parse(result.body)
    expect(answer).to include("event" => { "hello" => "image" }, "function_name" => variables["AWS_LAMBDA_FUNCTION_NAME"],
                              "memory" => variables["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "uid" => 993,
                              "handler" => "handler.handler", "tmp_writable" => true, "task_writable" => false,
                              "root_writable" => false)
    expect(answer["ruby"]).to start_with("3.4.")
    expect(answer["remaining"]).to be_between(1, 30_000)
    # Beyond Lambda's: the engine's own HOME and HOSTNAME, and PWD, which the shell of the entry point
    # and the bootstrap (shell scripts, as AWS's are) exports.
    expect(answer["variables"] - Megamode::Local::LAMBDA_VARIABLES).to contain_exactly("HOME", "HOSTNAME", "PWD")
    expect(answer["variables"]).to include("GEM_PATH", "RUBYLIB", "LAMBDA_TASK_ROOT", "_X_AMZN_TRACE_ID")

    second = emulator.invoke({ "again" => true }, wait: 30)
    expect(JSON.parse(second.body)["event"]).to eq("again" => true)
  end

  it "returns an exception in Lambda's error shape, and goes on to the next event" do
    start(variables)
    result = emulator.invoke({ "fail" => true }, wait: 60)
    expect(result).not_to be_nil, "no answer within 60 s; the container said:\n#{said}"
    expect(result.kind).to eq(:error)
    expect(result.error_type).to eq("ArgumentError")
    error = JSON.parse(result.body)
    expect(error).to include("errorMessage" => "the event asked for an error", "errorType" => "ArgumentError")
    expect(error["stackTrace"].first).to start_with("/var/task/handler.rb:")

    expect(emulator.invoke({ "after" => 1 }, wait: 30).kind).to eq(:response)
  end

  it "reports a handler it cannot load as an init error, and stops" do
    start(variables, command: ["missing.handler"])
    expect(emulator.wait_for_next(1, 60)).to be(false)
    expect(emulator.init_errors.size).to eq(1), "no init error; the container said:\n#{said}"
    expect(JSON.parse(emulator.init_errors.first.body)).to include("errorType" => "LoadError")
    Process.wait(@pid)
    @pid = nil
    expect($?.exitstatus).not_to eq(0)
    expect(container_exists?).to be(false)
  end

  it "says, without AWS_LAMBDA_RUNTIME_API, that it has no Runtime Interface Emulator and exits non-zero" do
    start(variables.except("AWS_LAMBDA_RUNTIME_API"))
    Process.wait(@pid)
    @pid = nil
    expect($?.exitstatus).to eq(1)
    expect(said).to include("AWS_LAMBDA_RUNTIME_API is not set").and include("megamode invoke --image")
    expect(container_exists?).to be(false)
  end

  it "is removed once stopped" do
    start(variables)
    expect(emulator.wait_for_next(1, 60)).to be(true), "the runtime never asked for an event:\n#{said}"
    expect(container_exists?).to be(true)
    system(@engine, "rm", "-f", "-t", "0", name, out: File::NULL, err: File::NULL)
    Process.wait(@pid)
    @pid = nil
    expect(container_exists?).to be(false)
  end
end
