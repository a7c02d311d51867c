# frozen_string_literal: true

require "spec_helper"
require "open3"
require "securerandom"
require "megamode/build"
require "megamode/local/lambda_variables"

# A package built with `megamode build --image` for the stand-in's ruby3.4, its image built FROM the
# stand-in's public.ecr.aws/lambda/ruby:3.4 (bin/lambda-image) and run by `megamode invoke --image`
# as Lambda runs an image: read-only but for /tmp, as a user that owns nothing, through Lambda's
# runtime client and through the native loop. The package comes from MEGAMODE_TEST_PACKAGES
# (hello-image: bin/test prebuilds it in the stand-in's build flavour, whose Ruby is the image's),
# as this machine's Ruby is not the image's; and the Rails app's (blog) and the Sinatra app's (shop)
# packages, prebuilt too, with the Dockerfile --image writes: AWS's sample events, and a browser's
# session through every event source (megamode serve --image), in both modes. Skipped, saying why, without root, without an engine that runs,
# without the stand-in's layers, or without the prebuilt packages.
RSpec.describe "a package's image (megamode build --image), run by megamode invoke --image", :image do
  runtime = "ruby3.4"
  package_name = "hello-image"

  before(:all) do
    @engine = stand_in_engine(runtime)
    prebuilt = PackageBuild.prebuilt_dir
    unless prebuilt && File.directory?(File.join(prebuilt, package_name))
      skip "no prebuilt #{package_name} package (#{runtime}'s Ruby builds it: MEGAMODE_TEST_PACKAGES=DIR after " \
           "bin/lambda-root #{runtime} build -- ruby spec/prebuild_packages.rb DIR #{package_name})"
    end

    said, status = Open3.capture2e({ "MEGAMODE_CONTAINER_ENGINE" => @engine },
                                   File.join(SpecHelpers::ROOT, "bin", "lambda-image"), runtime)
    raise "bin/lambda-image #{runtime} failed:\n#{said}" unless status.success?

    @dir = PackageBuild.scratch("megamode-image-package-spec-")
    @package = PackageBuild.built("rack_hello", @dir, package: package_name)
    @tag = "localhost/megamode-image-package-spec:#{SecureRandom.hex(6)}"
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    # What `megamode build --image` runs once the package is built.
    Megamode::Build::Image.new(dir: @package, tag: @tag, arch: "x86_64").build(@engine)
    warn "image package spec: the image built in #{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(1)} s"
  end

  after(:all) do
    system(@engine, "rmi", "-f", @tag, out: File::NULL, err: File::NULL) if @tag
    FileUtils.rm_rf(@dir) if @dir
  end

  # An API Gateway REST API's event (payload 1.0) for GET /lambda: the sample, on that path.
  let(:lambda_rest_event) do
    event = JSON.parse(File.read(Megamode::Local::Samples.path("rest")))
    event.merge("path" => "/lambda", "resource" => "/{proxy+}", "pathParameters" => { "proxy" => "lambda" },
                "requestContext" => event["requestContext"].merge("path" => "/dev/lambda"))
  end

  def containers(tag = @tag)
    Open3.capture2(@engine, "ps", "-a", "-q", "--filter", "ancestor=#{tag}").first.split
  end

  # The image of a prebuilt package (`name`'s, for the tag), with the Dockerfile --image writes: its tag.
  def image_of(package, name, runtime)
    Megamode::Build::Image.write(package, runtime: runtime, version: Megamode::VERSION)
    tag = "localhost/megamode-image-package-spec-#{name}:#{SecureRandom.hex(6)}"
    Megamode::Build::Image.new(dir: package, tag: tag, arch: "x86_64").build(@engine)
  end

  # `megamode invoke --image` with an HTTP API request and the REST event, and a variable of the
  # function's own: [results, log].
  def invoke(mode)
    require "megamode/local/samples"
    rest = File.join(@dir, "rest.json")
    File.write(rest, JSON.generate(lambda_rest_event))
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    out, log, status = Open3.capture3(RbConfig.ruby, PackageBuild::EXE, "invoke", "--image", @tag, "--mode", mode,
                                      "--env", "MEGAMODE_TEST_MARKER=image", "--get", "/lambda", "--event", rest)
    warn "image package spec: #{mode}: two events in #{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round(2)} s"
    raise "megamode invoke --image #{@tag} --mode #{mode} failed (#{status}):\n#{log}" unless status.success?

    [out.lines.map { |l| JSON.parse(l) }, log]
  end

  %w[handler native].each do |mode|
    it "answers an HTTP API and a REST event through #{mode == "handler" ? "Lambda's runtime client" : "the native loop"}, " \
       "read-only but for /tmp, as a user that owns nothing" do
      results, log = invoke(mode)
      expect(results.size).to eq(2), log
      results.each do |result|
        expect(result["statusCode"]).to eq(200), "#{result}\n#{log}"
        app = JSON.parse(result["body"])
        expect(app).to include("uid" => 993, "task_root_write" => "Errno::EROFS")
        expect(app["env"]).to include("LAMBDA_TASK_ROOT" => "/var/task", "MEGAMODE" => "1",
                                      "AWS_LAMBDA_FUNCTION_NAME" => "megamode-local")
        # Lambda's variables and the image's, not this machine's (nor Podman's TERM and container).
        expect(app["names"]).not_to include("TERM", "container", "USER", "SHELL", "MEGAMODE_TEST_PACKAGES")
        expect(app["names"]).to include("MEGAMODE_TEST_MARKER"), "the function's own variable (--env)"
      end
      expect(results.last["multiValueHeaders"] || results.last["headers"]).to be_a(Hash), "REST's shape"
      expect(log.scan(/^REPORT RequestId: /).size).to eq(2)
      expect(log).to include("Init Duration")
      expect(containers).to be_empty, "the container is removed at the end"
    end
  end

  it "is served by megamode serve --image, and its container removed on Ctrl-C" do
    require "net/http"
    require "socket"
    port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    log = File.join(@dir, "serve.log")
    pid = Process.spawn(RbConfig.ruby, PackageBuild::EXE, "serve", "--image", @tag, "--port", port.to_s,
                        out: log, err: log, pgroup: true)
    begin
      response = nil
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
      until response || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        response = begin
          Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/lambda"))
        rescue SystemCallError
          sleep 0.2
          nil
        end
      end
      expect(response&.code).to eq("200"), File.read(log)
      expect(JSON.parse(response.body)).to include("uid" => 993)
      expect(containers.size).to eq(1)
    ensure
      Process.kill("INT", -pid)
      Process.wait(pid)
    end
    expect(containers).to be_empty, File.read(log)
  end

  context "with the Sinatra app (the prebuilt shop package, its Dockerfile as --image writes it)" do
    before(:all) do
      unless File.directory?(File.join(PackageBuild.prebuilt_dir, "shop"))
        skip "no prebuilt shop package in #{PackageBuild.prebuilt_dir} (spec/prebuild_packages.rb DIR shop)"
      end
      @shop_dir = PackageBuild.scratch("megamode-image-package-spec-shop-")
      # As e2e_sinatra_spec builds it (its Gemfile's ruby line is commented out by the build).
      @shop_tag = image_of(PackageBuild.built("sinatra_build", @shop_dir, package: "shop", ruby_line: %(ruby "3.3.0")),
                           "shop", runtime)
    end

    after(:all) do
      system(@engine, "rmi", "-f", @shop_tag, out: File::NULL, err: File::NULL) if @shop_tag
      FileUtils.rm_rf(@shop_dir) if @shop_dir
    end

    %w[handler native].each do |mode|
      # AWS's samples (spec/fixtures/events), aimed at the shop: an HTTP API's form post, whose
      # redirect and session cookie come back in that API's shape; a REST API's page, whose links
      # carry its stage; an ALB's image from public/, in base64.
      it "answers the held-out events of an HTTP API, a REST API and an ALB (#{mode})" do
        post = v2_event("/items", method: "POST").tap do |e|
          e["headers"] = e["headers"].merge("content-type" => "application/x-www-form-urlencoded", "content-length" => "9")
          e["body"] = "name=lamp"
        end
        alb = fixture_event("alb").merge("path" => "/pixel.png", "queryStringParameters" => {})
        events = [post, rest_event("/"), alb].each_with_index.map do |event, i|
          File.join(@shop_dir, "held-out-#{mode}-#{i}.json").tap { |f| File.write(f, JSON.generate(event)) }
        end
        out, log, status = Open3.capture3(RbConfig.ruby, PackageBuild::EXE, "invoke", "--image", @shop_tag, "--mode", mode,
                                          *events.flat_map { |f| ["--event", f] })
        expect(status.exitstatus).to eq(0), log
        created, index, pixel = out.lines.map { |l| JSON.parse(l) }
        expect(created["statusCode"]).to eq(303), "#{created}\n#{log}"
        expect(URI(created["headers"]["location"]).path).to eq("/items/lamp")
        expect(created["cookies"]).to include(start_with("rack.session=")), "the session, in the HTTP API's cookies"
        expect(index["statusCode"]).to eq(200), "#{index}\n#{log}"
        expect(index["body"]).to include(%(href="/dev/items/new")), "the stage in links: Megamode::Rack::Prefix"
        expect(index["multiValueHeaders"]).to be_a(Hash), "REST's shape"
        expect(pixel).to include("statusCode" => 200, "isBase64Encoded" => true)
        expect(pixel["body"].unpack1("m")).to eq(BuiltRails::PNG)
        expect(containers(@shop_tag)).to be_empty
      end

      LocalGateway::SOURCES.each do |format, stage|
        context "served by megamode serve --image --mode #{mode} through #{format}#{" with stage #{stage}" if stage}" do
          before(:all) { @gateway = LocalGateway.serve_image(@shop_tag, format, stage, mode: mode) }
          after(:all) do
            @gateway&.stop
            expect(containers(@shop_tag)).to be_empty, "Ctrl-C removes the container"
          end

          let(:prefix) { stage ? "/#{stage}" : "" }
          let(:client) { @gateway.client }

          after { client.close }

          include_examples "the Sinatra shop behind a gateway"
        end
      end
    end
  end

  context "with the Rails app (the prebuilt blog package, its Dockerfile as --image writes it)" do
    before(:all) do
      prebuilt = PackageBuild.prebuilt_dir
      unless File.directory?(File.join(prebuilt, BuiltRails::NAME))
        skip "no prebuilt #{BuiltRails::NAME} package in #{prebuilt} (spec/prebuild_packages.rb DIR #{BuiltRails::NAME})"
      end
      @rails_tag = image_of(BuiltRails.package, "rails", runtime)
    end

    after(:all) do
      system(@engine, "rmi", "-f", @rails_tag, out: File::NULL, err: File::NULL) if @rails_tag
    end

    %w[handler native].each do |mode|
      it "serves its pages, public/ files and its 500 page from the read-only image (#{mode})" do
        env = { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "image#{"0" * 64}", "FORCE_SSL" => "0" }
        out, log, status = Open3.capture3(RbConfig.ruby, PackageBuild::EXE, "invoke", "--image", @rails_tag, "--mode", mode,
                                          *env.flat_map { |k, v| ["--env", "#{k}=#{v}"] }, "--stage", "dev",
                                          "--get", "/dev/posts", "--get", "/dev/pixel.png", "--get", "/dev/boom")
        results = out.lines.map { |l| JSON.parse(l) }
        expect(results.size).to eq(3), log
        index, pixel, boom = results
        expect(index["statusCode"]).to eq(200), "#{index}\n#{log}"
        expect(index["body"]).to include(%(href="/dev/posts/new")), "the stage in links: megamode's Rails adapter"
        expect(pixel).to include("statusCode" => 200, "isBase64Encoded" => true)
        expect(pixel["body"].unpack1("m")).to eq(BuiltRails::PNG)
        expect(boom["statusCode"]).to eq(500)
        expect(log).to include("boom: an app error on purpose")
        expect(status.exitstatus).to eq(0), log
        expect(containers(@rails_tag)).to be_empty
      end
    end
  end
end
