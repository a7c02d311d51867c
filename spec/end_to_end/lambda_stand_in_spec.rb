# frozen_string_literal: true

require "spec_helper"
require "open3"
require "megamode/build/target"
require "megamode/build/elf"
require "megamode/local/lambda_environment"
require "megamode/local/lambda_variables"

# The Lambda stand-in's run flavour (bin/lambda-root RUNTIME run) must be no kinder than Lambda: a
# package that works there because of a variable, a user or a library Lambda would not give has
# failed on Lambda before (issue 26: NIO4R_PURE from the stand-in, a 0600 master key read by root,
# libxml2 assumed in the base image). These examples check the stand-in itself, on the packages
# bin/test built for it (MEGAMODE_TEST_PACKAGES).
RSpec.describe "the Lambda stand-in's run flavour" do
  run_flavour = RbConfig::CONFIG["prefix"] == "/var/lang" &&
                ENV.fetch("PATH", "").split(":").none? { |d| File.executable?(File.join(d, "cc")) } &&
                PackageBuild.prebuilt_dir
  # What the test harness itself needs beside Lambda's: rspec's gems (GEM_HOME), the packages built
  # for the run, and the temporary directory spec_helper gives megamode. megamode's local runs clear
  # GEM_HOME for a package.
  harness = %w[GEM_HOME MEGAMODE_TEST_PACKAGES]
  # What megamode sets for the app's server (supervisor/launch.rs, listen.rs) and what Bundler, which
  # starts it, sets for itself.
  megamode_own = %w[HOME TMPDIR PORT RACK_ENV RAILS_ENV RAILS_LOG_TO_STDOUT RUBYOPT RUBYLIB GEM_HOME GEM_PATH]
  megamode_prefixes = /\A(MEGAMODE|BUNDLE_|BUNDLER_)/
  # What a shell sets as it starts a command (bin/lambda-root's, and Lambda's bootstrap, a script).
  shell = %w[PWD OLDPWD SHLVL _]

  before do
    skip "checks the Lambda stand-in's run flavour itself (bin/lambda-root RUNTIME run, with the packages bin/test " \
         "builds for it): elsewhere there is no stand-in to check" unless run_flavour
  end

  let(:lambda_variables) { Megamode::Local::LAMBDA_VARIABLES }

  it "starts the harness with Lambda's variables and only the harness's own besides" do
    # The environment this process was started with (what bin/lambda-root gave), not what specs set since.
    started = File.binread("/proc/self/environ").split("\0").map { |pair| pair[/\A[^=]*/] }

    expect(started - lambda_variables - harness - shell).to eq([])
    expect(started).to include("LANG", "TZ", "PATH", "LD_LIBRARY_PATH", "LAMBDA_TASK_ROOT")
    expect(started).not_to include("HOME", "NIO4R_PURE")
  end

  it "runs as a user that owns nothing of the packages, which are read-only" do
    packages = PackageBuild.prebuilt_dir
    owned = Dir.glob("**/*", File::FNM_DOTMATCH, base: packages).select do |f|
      File.lstat(File.join(packages, f)).uid == Process.uid
    end

    expect([Process.uid, Process.euid, Process.gid]).to all(be_positive)
    expect(owned).to eq([])
    expect { File.write(File.join(packages, "scribble"), "x") }.to raise_error(Errno::EROFS)
  end

  # The packages as bin/test built them, in place: read-only, and none of the function user's.
  it "gives a package's app Lambda's variables, megamode's own and what the package records, nothing else" do
    dir = PackageBuild.scratch("megamode-stand-in-")
    package = File.join(PackageBuild.prebuilt_dir, "hello", "hello")
    recorded = JSON.parse(File.read(File.join(package, "megamode", "target.json"))).fetch("environment").keys
    (result,), log = PackageBuild.invoke(package, [PackageBuild.staged_event("/lambda")], tmp: dir)
    seen = JSON.parse(result.fetch("body"))

    extra = (seen.fetch("names") - lambda_variables - harness - shell - megamode_own - recorded).grep_v(megamode_prefixes)
    expect(extra).to eq([]), "the app sees #{extra.join(", ")}, which Lambda does not give\n#{log}"
    expect(seen.fetch("names")).to include("LAMBDA_TASK_ROOT", "AWS_REGION", "_HANDLER", "PATH", "LANG")
    expect(seen.fetch("uid")).to eq(Process.uid)
  ensure
    FileUtils.rm_rf(dir) if dir
  end

  # Every library the Rails package's native files load (its app, its gems as megamode unpacks them,
  # megamode's extension) comes from the package, from Lambda's Ruby, or is one of the libraries the
  # build counts as the base image's: nothing the stand-in has and Lambda may not.
  it "resolves a package's native files to the package, Lambda's Ruby and the base image's libraries only" do
    dir = PackageBuild.scratch("megamode-stand-in-libs-")
    package = File.join(PackageBuild.prebuilt_dir, BuiltRails::NAME, BuiltRails::NAME)
    tmp = File.join(dir, "lambda-tmp")
    PackageBuild.invoke(package, [PackageBuild.staged_event("/")], tmp: dir,
                                                                   env: { "SECRET_KEY_BASE" => "s" * 64, "FORCE_SSL" => "0" })
    files = [package, tmp].flat_map { |root| Dir.glob("#{root}/**/*.so*").select { |f| File.file?(f) && !File.symlink?(f) } }
    target = Megamode::Build::Target.new(runtime: "ruby#{RUBY_VERSION[/\A\d+\.\d+/]}", arch: "x86_64")
    # Lambda's order, as megamode's local runs give it: the system's libraries, then the package's.
    library_path = Megamode::Local::LambdaEnvironment.new(package).env.fetch("LD_LIBRARY_PATH")
    shipped = Dir.children(File.join(package, "lib"))
    own = [package, tmp, RbConfig::CONFIG["prefix"]].map { |d| File.join(File.realpath(d), "") }

    # What each file needs itself (what Lambda's Ruby needs in turn is Lambda's), where the loader
    # finds it here (ldd, with Lambda's library path).
    offences = files.flat_map do |file|
      out, = Open3.capture2e({ "LD_LIBRARY_PATH" => library_path }, "ldd", file)
      # "soname => path (address)", or for the loader itself "path (address)".
      found = out.lines.to_h do |line|
        line.include?(" => ") ? line.strip.split(" => ", 2) : [File.basename(line.strip.sub(/ \(.*/, "")), line.strip]
      end
      Megamode::Build::Elf.read(file).needed.filter_map do |soname|
        path = found[soname].to_s.sub(/ \(0x\h+\)\z/, "")
        next if path.start_with?("/") && own.any? { |d| File.realpath(path).start_with?(d) }
        next if path.start_with?("/") && target.provides?(soname)
        # The system's copy of a library the package ships too: on Lambda the image's copy, if it has
        # one, loads before the package's, as here; if it has none, the package's.
        next if path.start_with?("/") && shipped.include?(soname)

        "#{file.delete_prefix("#{dir}/")}: #{soname} => #{path.empty? ? "?" : path}"
      end
    end

    expect(files.map { |f| File.basename(f) }).to include("nokogiri.so", "sqlite3_native.so"), "the gems a Rails app links"
    expect(offences).to eq([])
  ensure
    FileUtils.rm_rf(dir) if dir
  end
end
