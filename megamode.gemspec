# frozen_string_literal: true

require_relative "lib/megamode/version"

Gem::Specification.new do |spec|
  spec.name = "megamode"
  spec.version = Megamode::VERSION
  spec.authors = ["The megamode developers"]
  spec.summary = "Run any Rack app (Rails first) on AWS Lambda, unchanged"
  spec.description = <<~TEXT
    megamode runs your Rack app as its own server process inside the Lambda environment and proxies
    every Lambda event (API Gateway REST and HTTP APIs, Function URLs, ALB) to it and back, through a
    Rust core.
  TEXT
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"
  # The first RubyGems whose Cargo builder builds an extension without the rb_sys gem.
  spec.required_rubygems_version = ">= 3.3.11"

  # Cargo refuses a manifest whose declared [[bench]] file is missing, so the benches ship too.
  spec.files = Dir[
    "lib/**/*.rb", "lib/megamode/local/events/*.json", "exe/*", "README.md", "Cargo.toml", "Cargo.lock",
    "ext/*/Cargo.toml", "ext/*/build.rs", "ext/*/src/**/*.rs", "ext/*/benches/*.rs", "ext/megamode/Rakefile"
  ]
  spec.bindir = "exe"
  spec.executables = ["megamode"]
  spec.require_paths = ["lib"]
  # RubyGems' Cargo builder compiles the extension; then ext/megamode/Rakefile removes the Cargo target
  # directory RubyGems 3.3's builder leaves in the extension directory (280 MB; it says why).
  spec.extensions = ["ext/megamode/Cargo.toml", "ext/megamode/Rakefile"]
  # RubyGems runs that Rakefile with the rake gem it finds: a dependency, so that Bundler installs it
  # first where its bundle has only the lock's gems (a path of its own, GEM_PATH empty).
  spec.add_dependency "rake", ">= 12"
end
