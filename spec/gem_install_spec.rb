# frozen_string_literal: true

require "open3"
require "rbconfig"

# The gem as users get it: built from the gemspec, installed from the .gem file into an empty
# GEM_HOME (RubyGems' own Cargo builder compiles the extension; no rb_sys gem, no RubyGems.org).
RSpec.describe "the megamode gem" do
  it "builds, installs into an empty GEM_HOME, and loads" do
    Dir.mktmpdir("megamode-gem-") do |dir|
      gem_file = File.join(dir, "megamode.gem")
      home = File.join(dir, "home")
      out, status = Open3.capture2e("gem", "build", "megamode.gemspec", "--output", gem_file, chdir: SpecHelpers::ROOT)
      expect(status).to be_success, out

      env = { "GEM_HOME" => home, "GEM_PATH" => home }
      out, status = Open3.capture2e(env, "gem", "install", "--local", "--no-document", gem_file, chdir: dir)
      expect(status).to be_success, out

      # Outside the checkout, so only the installed gem can answer.
      out, status = Open3.capture2e(env, RbConfig.ruby, "-e",
                                    'require "megamode"; puts Megamode::VERSION; ' \
                                    'puts Megamode.const_get(:Native)::Engine.instance_method(:handle).owner',
                                    chdir: dir)
      expect(status).to be_success, out
      expect(out.lines.map(&:chomp)).to eq([Megamode::VERSION, "Megamode::Native::Engine"])
      expect(File.executable?(File.join(home, "bin", "megamode"))).to be(true)

      # The installed command runs the events in its handler process, which ships with it (the app's
      # server, puma, comes from this machine's gems).
      event = File.join(dir, "event.json").tap { |f| File.write(f, JSON.generate(v2_event("/"))) }
      with_system_gems = env.merge("GEM_PATH" => [home, *Gem.path].join(File::PATH_SEPARATOR))
      out, err, status = Open3.capture3(with_system_gems, File.join(home, "bin", "megamode"), "invoke",
                                        "--app", fixture_app("rack_hello"), "--event", event, chdir: dir)
      expect(status).to be_success, err
      expect(JSON.parse(out)).to include("statusCode" => 200, "body" => "Hello from Rack")
      expect(err).to include("START RequestId:", "REPORT RequestId:")
      expect(File.exist?(File.join(home, "bin", "megamode-handler-process"))).to be(false), "not a command"
    end
  end
end
