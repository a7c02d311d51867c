# frozen_string_literal: true

require "spec_helper"
require "megamode/build"

RSpec.describe Megamode::Build::Gemfile do
  fixtures = File.expand_path("fixtures/gemfiles", __dir__)
  commented = {
    "string" => [2], "pessimistic" => [4], "file" => [2], "engine" => [2],
    "multiline" => [2, 3, 4, 5, 6, 8, 9], "conditional" => [4, 6], "odd" => [], "none" => []
  }

  commented.each do |name, lines|
    it "comments out every ruby declaration in the #{name} Gemfile, and nothing else" do
      gemfile = described_class.new(File.read(File.join(fixtures, name, "Gemfile")))

      expect(gemfile.comment_ruby_declarations!).to eq(lines)
      expect(gemfile.text).to eq(File.read(File.join(fixtures, name, "Gemfile.expected")))
      expect(Ripper.sexp(gemfile.text)).not_to be_nil, "the result is still Ruby"
    end
  end

  it "adds the adapter once: for Rails with its require, for other apps with none" do
    rails = described_class.new(File.read(File.join(fixtures, "string", "Gemfile")))
    expect(rails.add_adapter!("1.2.3", rails: true)).to be(true)
    expect(rails.text).to end_with(%(gem "megamode", "1.2.3", require: "megamode/rails"\n))
    expect(rails.add_adapter!("1.2.3", rails: true)).to be(false)

    rack = described_class.new(File.read(File.join(fixtures, "file", "Gemfile")))
    rack.add_adapter!("1.2.3", rails: false)
    expect(rack.text).to end_with(%(gem "megamode", "1.2.3", require: false\n))

    own = described_class.new(File.read(File.join(fixtures, "none", "Gemfile")))
    expect(own.add_adapter!("1.2.3", rails: true)).to be(false), "the app's own megamode line stays"
  end

  it "refuses a Gemfile Ruby cannot parse, naming the line" do
    text = %(source "https://rubygems.org"\ngem "rack"\ngem "puma", require: \n  end\n)

    expect { described_class.new(text, path: "/app/Gemfile") }
      .to raise_error(Megamode::BuildError, %r{/app/Gemfile cannot be understood \(line \d.*nothing was changed}m)
  end

  it "refuses a ruby declaration that shares its line with other code, naming the line" do
    gemfile = described_class.new(%(source "https://rubygems.org"\nruby "3.3.0"; gem "rack"\n), path: "Gemfile")

    expect { gemfile.comment_ruby_declarations! }
      .to raise_error(Megamode::BuildError, /Gemfile line 2: .*on a line of its own/)
  end
end

RSpec.describe Megamode::Build::Lockfile do
  lock = <<~LOCK
    GEM
      remote: https://rubygems.org/
      specs:
        nio4r (2.5.8)
        puma (5.6.5)
          nio4r (~> 2.0)
        rack (2.2.22)

    PLATFORMS
      x86_64-linux

    DEPENDENCIES
      puma
      rack

    RUBY VERSION
       ruby 3.3.0p0

    BUNDLED WITH
       2.3.15
  LOCK

  it "drops the Ruby version and adds a gem in sorted place in the specs and the dependencies" do
    lockfile = described_class.new(lock)
    lockfile.drop_ruby_version!
    lockfile.add_gem!("megamode", "0.1.0")

    expect(lockfile.text).not_to include("RUBY VERSION")
    expect(lockfile.text).to include("  specs:\n    megamode (0.1.0)\n    nio4r (2.5.8)\n")
    expect(lockfile.text).to include("DEPENDENCIES\n  megamode (= 0.1.0)\n  puma\n  rack\n")
    expect(lockfile.text).to end_with("BUNDLED WITH\n   2.3.15\n")
  end

  it "adds a gem that sorts last at the end of its sections" do
    lockfile = described_class.new(lock)
    lockfile.add_gem!("zeitwerk-extra", "1.0")

    expect(lockfile.text).to include("    rack (2.2.22)\n    zeitwerk-extra (1.0)\n\nPLATFORMS")
    expect(lockfile.text).to include("  rack\n  zeitwerk-extra (= 1.0)\n\nRUBY VERSION")
  end

  it "says what to do when the lock has no sections to add to" do
    expect { described_class.new("BUNDLED WITH\n   2.3.15\n").add_gem!("megamode", "0.1.0") }
      .to raise_error(Megamode::BuildError, /run `bundle lock`/)
  end
end

RSpec.describe Megamode::Build::AppKind do
  def app_with(files)
    dir = Dir.mktmpdir("megamode-kind-")
    files.each do |path, text|
      FileUtils.mkdir_p(File.dirname(File.join(dir, path)))
      File.write(File.join(dir, path), text)
    end
    dir
  end

  after { FileUtils.rm_rf(@dir) if @dir }

  let(:lock) { "GEM\n  specs:\n    railties (7.2.2)\n    sinatra (4.1.1)\n" }

  it "tells a full Rails app, an API-only one and Rack apps apart, from the app itself" do
    application = "module Blog\n  class Application < Rails::Application\n    config.load_defaults 7.2\n%s  end\nend\n"
    full = described_class.detect(@dir = app_with("config/application.rb" => format(application, ""),
                                                  "Gemfile.lock" => lock))
    expect([full.rails?, full.api_only?, full.to_s]).to eq([true, false, "a Rails app (Rails 7.2.2)"])
    FileUtils.rm_rf(@dir)

    api = described_class.detect(@dir = app_with("config/application.rb" => format(application, "    config.api_only = true\n"),
                                                 "Gemfile.lock" => lock))
    expect([api.rails?, api.api_only?, api.to_s]).to eq([true, true, "an API-only Rails app (Rails 7.2.2)"])
    FileUtils.rm_rf(@dir)

    sinatra = described_class.detect(@dir = app_with("config.ru" => "run Shop", "Gemfile.lock" => lock.sub(/^.*railties.*\n/, "")))
    expect([sinatra.rails?, sinatra.to_s]).to eq([false, "a Rack app (Sinatra 4.1.1)"])
    FileUtils.rm_rf(@dir)

    plain = described_class.detect(@dir = app_with("config.ru" => "run ->(_) { [200, {}, []] }"))
    expect(plain.to_s).to eq("a plain Rack app")
  end
end
