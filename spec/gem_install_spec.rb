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
    end
  end
end
