# frozen_string_literal: true

require "fileutils"
require "open3"

# The Rails scaffold app (RailsApp, made with --minimal, so without Active Storage) with Active
# Storage turned on as `rails new` without --minimal has it: the engine, the disk service, its
# tables, a post with an attached image, and a page that links to it through every kind of helper.
# Made once per test run in a directory of its own, for local runs of the app directory.
module StorageRails
  PNG = File.binread(File.expand_path("../fixtures/files/pixel.png", __dir__))
  # Production, as on Lambda and as megamode runs the app.
  ENV_VARS = { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "storage#{"0" * 64}", "FORCE_SSL" => "0" }.freeze

  # The page: each link in an element of its own id, so a test reads each one alone.
  LINKS_VIEW = <<~ERB
    <p id="blob-path"><%= image_tag rails_blob_path(@post.image) %></p>
    <p id="url-for"><%= image_tag url_for(@post.image) %></p>
    <p id="asset"><%= image_tag "pixel.png" %></p>
    <p id="blob-url"><%= link_to "download", rails_blob_url(@post.image) %></p>
    <p id="asset-path"><%= asset_path rails_blob_path(@post.image) %></p>
    <p id="asset-url"><%= asset_url rails_blob_path(@post.image) %></p>
    <p id="video"><%= video_tag rails_blob_path(@post.image) %></p>
  ERB

  class << self
    def path
      @path ||= generate
    end

    # The id of the post with the image.
    def post_id
      path
      @post_id
    end

    private

    def generate
      dir = Dir.mktmpdir("megamode-storage-rails-")
      # Open to other users, as the specs' scratch directories are.
      File.chmod(0o755, dir)
      at_exit { FileUtils.rm_rf(dir) }
      app = File.join(dir, RailsApp::NAME)
      FileUtils.cp_r(RailsApp.path, app)
      edit(File.join(app, "config", "application.rb")) do |text|
        text.sub(%r{^# (require "active_job/railtie")}, '\1').sub(%r{^# (require "active_storage/engine")}, '\1')
      end
      File.write(File.join(app, "config", "storage.yml"),
                 "local:\n  service: Disk\n  root: <%= Rails.root.join(\"storage\") %>\n")
      edit(File.join(app, "config", "environments", "production.rb")) do |text|
        # Rails 7.1+ forces HTTPS; the local gateway is plain HTTP (as megamode serve advises).
        text.sub(/^(\s*)config\.force_ssl = true/, '\1config.force_ssl = ENV["FORCE_SSL"] != "0"')
            .sub(/end\s*\z/, "  config.active_storage.service = :local\nend\n")
      end
      edit(File.join(app, "app", "models", "post.rb")) do |text|
        text.sub(/^class Post < ApplicationRecord\n/, "\\0  has_one_attached :image\n")
      end
      FileUtils.mkdir_p(File.join(app, "public", "images"))
      File.binwrite(File.join(app, "public", "images", "pixel.png"), PNG)
      File.write(File.join(app, "app", "controllers", "links_controller.rb"), <<~RUBY)
        class LinksController < ApplicationController
          def show
            @post = Post.find(params[:id])
            render layout: false
          end
        end
      RUBY
      FileUtils.mkdir_p(File.join(app, "app", "views", "links"))
      File.write(File.join(app, "app", "views", "links", "show.html.erb"), LINKS_VIEW)
      edit(File.join(app, "config", "routes.rb")) { |text| text.sub(/end\s*\z/, %(  get "/links/:id" => "links#show"\nend\n)) }
      run!("bin/rails", "active_storage:install", chdir: app)
      run!("bin/rails", "db:migrate", chdir: app)
      @post_id = Integer(run!("bin/rails", "runner", <<~RUBY, chdir: app)[/^post=(\d+)$/, 1])
        blob = ActiveStorage::Blob.create_and_upload!(io: File.open("public/images/pixel.png", "rb"),
                                                      filename: "pixel.png", content_type: "image/png",
                                                      metadata: { analyzed: true, identified: true })
        post = Post.create!(title: "With an image", body: "Active Storage")
        post.image.attach(blob)
        puts "post=\#{post.id}"
      RUBY
      app
    end

    def edit(path)
      File.write(path, yield(File.read(path)))
    end

    def run!(*command, chdir:)
      RailsApp.run!(*command, chdir: chdir, env: ENV_VARS)
    end
  end
end
