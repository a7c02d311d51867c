# frozen_string_literal: true

# `rake megamode:build [APP=dir] [OUT=dir] [RUNTIME=ruby3.3|ruby3.4|ruby4.0] [ARCH=x86_64|arm64] [LOCAL=1]
# [CONTAINER=1 [DRY_RUN=1]] [IMAGE=1 [TAG=name:tag] [SNAPSTART=1 [PRIME=/path,...]]] [STREAM=1] [KEEP_SECRETS=path,...] [NO_BOOT_CHECK=1]`, as `megamode build --app --out
# --runtime --arch --local --container --dry-run --image --tag --snapstart --prime --stream --keep-secret --no-boot-check`: add
# `require "megamode/tasks"` to the app's Rakefile.
require "rake"

namespace :megamode do
  desc "Build a Lambda package of the app (APP=dir, default: here; OUT=dir, default: APP/build/megamode; " \
       "RUNTIME=ruby3.3|ruby3.4|ruby4.0 and ARCH=x86_64|arm64, default: this Ruby and machine; " \
       "LOCAL=1: local runs only; CONTAINER=1: in Lambda's SAM build image, DRY_RUN=1: print its commands only; " \
       "IMAGE=1: a container image too (TAG=name:tag, default megamode-APP:latest; " \
       "SNAPSTART=1: with Lambda SnapStart, PRIME=/path,...: paths requested before the snapshot); " \
       "STREAM=1: a template whose responses stream; KEEP_SECRETS=path,...: secret files, such as " \
       "config/master.key, to package anyway; NO_BOOT_CHECK=1: package an app that does not boot in production, " \
       "or lacks its production database or precompiled assets, with a warning)"
  task :build do
    require_relative "build"
    app = ENV.fetch("APP", Dir.pwd)
    empty = ->(name) { ENV[name].nil? || ENV[name].empty? ? nil : ENV[name] }
    yes = ->(name) { %w[1 true yes].include?(ENV.fetch(name, "").downcase) }
    list = ->(name) { ENV.fetch(name, "").split(",").map(&:strip).reject(&:empty?) }
    begin
      Megamode::Build.new(app: app, out: empty.call("OUT"), runtime: empty.call("RUNTIME"), arch: empty.call("ARCH"),
                          local: yes.call("LOCAL"), container: yes.call("CONTAINER"), dry_run: yes.call("DRY_RUN"),
                          stream: yes.call("STREAM"), keep_secrets: list.call("KEEP_SECRETS"),
                          boot_check: !yes.call("NO_BOOT_CHECK"), image: yes.call("IMAGE"), tag: empty.call("TAG"),
                          snapstart: yes.call("SNAPSTART"), prime: list.call("PRIME")).run
    rescue Megamode::BuildError => e
      abort "megamode build: #{e.message}"
    end
  end
end
