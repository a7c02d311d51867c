# frozen_string_literal: true

# `rake megamode:build [APP=dir] [OUT=dir]`: add `require "megamode/tasks"` to the app's Rakefile.
require "rake"

namespace :megamode do
  desc "Build a Lambda package of the app (APP=dir, default: here; OUT=dir, default: APP/build/megamode)"
  task :build do
    require_relative "build"
    app = ENV.fetch("APP", Dir.pwd)
    begin
      Megamode::Build.new(app: app, out: ENV.fetch("OUT", nil)).run
    rescue Megamode::BuildError => e
      abort "megamode build: #{e.message}"
    end
  end
end
