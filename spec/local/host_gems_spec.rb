# frozen_string_literal: true

require "spec_helper"
require "megamode/local/host_gems"

# Which of this machine's directories a package's run hides (Megamode::Local::HostGems), on a
# made-up machine laid out as Debian lays out its Ruby.
RSpec.describe Megamode::Local::HostGems do
  around do |example|
    Dir.mktmpdir("megamode-host-gems-") do |dir|
      @root = File.realpath(dir)
      example.run
    end
  end

  def dir(path)
    File.join(@root, path).tap { |d| FileUtils.mkdir_p(d) }
  end

  def host_gems(gem_dirs:, keep: [], protect: [])
    config = { "ruby_version" => "3.1.0", "vendordir" => dir("usr/lib/ruby/vendor_ruby"),
               "vendorlibdir" => dir("usr/lib/ruby/vendor_ruby/3.1.0"),
               "vendorarchdir" => dir("usr/lib/arch/ruby/vendor_ruby/3.1.0"),
               "sitedir" => File.join(@root, "usr/local/lib/site_ruby") } # not on this machine
    own = [dir("usr/lib/ruby/3.1.0"), dir("usr/lib/arch/ruby/3.1.0"), dir("usr/lib/ruby/gems/3.1.0"), dir("usr/bin")]
    described_class.new(keep: keep, protect: protect, config: config, gem_dirs: gem_dirs, own: own,
                        distribution_dirs: [File.join(@root, "usr/share/rubygems-integration")])
  end

  it "hides the vendor directories, every other gem directory and the distribution's, never Ruby's own" do
    dir("usr/share/rubygems-integration/all")
    gems = host_gems(gem_dirs: [dir("var/lib/gems/3.1.0"), File.join(@root, "usr/lib/ruby/gems/3.1.0"),
                                dir("root/.local/share/gem/ruby/3.1.0"), dir("opt/my-gems"),
                                File.join(@root, "nowhere/3.1.0"), File.join(@root, "usr")])

    expect(gems.hidden).to eq([
      "opt/my-gems", # a GEM_PATH directory of the user's
      "root/.local/share/gem/ruby", # the user's gem home, for every Ruby version
      "usr/lib/arch/ruby/vendor_ruby", # the vendor arch directory (Debian's sqlite3_native.so)
      "usr/lib/ruby/vendor_ruby",
      "usr/share/rubygems-integration",
      "var/lib/gems"
    ].map { |d| File.join(@root, d) })
    expect(gems.kept).to eq([])
  end

  it "keeps what the run needs below a hidden directory, and hides nothing above a protected one" do
    tools = dir("var/lib/gems/3.1.0/gems/megamode-0.1.0")
    gems = host_gems(gem_dirs: [dir("var/lib/gems/3.1.0"), dir("work")], keep: [tools], protect: [dir("work/tmp")])

    expect(gems.hidden).to include(File.join(@root, "var/lib/gems"))
    expect(gems.hidden).not_to include(File.join(@root, "work"))
    expect(gems.kept).to eq([tools])
  end
end
