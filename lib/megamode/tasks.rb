# frozen_string_literal: true

# `rake megamode:build [APP=dir] [OUT=dir] [RUNTIME=ruby3.3|ruby3.4|ruby4.0] [ARCH=x86_64|arm64] [LOCAL=1]`,
# as `megamode build --app --out --runtime --arch --local`: add `require "megamode/tasks"` to the
# app's Rakefile.
require "rake"

namespace :megamode do
  desc "Build a Lambda package of the app (APP=dir, default: here; OUT=dir, default: APP/build/megamode; " \
       "RUNTIME=ruby3.3|ruby3.4|ruby4.0 and ARCH=x86_64|arm64, default: this Ruby and machine; LOCAL=1: local runs only)"
  task :build do
    require_relative "build"
    app = ENV.fetch("APP", Dir.pwd)
    empty = ->(name) { ENV[name].nil? || ENV[name].empty? ? nil : ENV[name] }
    begin
      Megamode::Build.new(app: app, out: empty.call("OUT"), runtime: empty.call("RUNTIME"), arch: empty.call("ARCH"),
                          local: %w[1 true yes].include?(ENV.fetch("LOCAL", "").downcase)).run
    rescue Megamode::BuildError => e
      abort "megamode build: #{e.message}"
    end
  end
end
