# frozen_string_literal: true

require "fileutils"

# The Rails scaffold app (RailsApp), with what an end-to-end run needs on top of the scaffold (an
# image in public/, a file upload, an action that fails), built once per test run with the real
# `megamode build`.
module BuiltRails
  NAME = "blog"
  # What a prebuilt package of it records (PackageBuild.prebuilt).
  MADE_FROM = "the Rails scaffold app with BuiltRails's extras"
  PNG = File.binread(File.expand_path("../fixtures/files/pixel.png", __dir__))

  class << self
    def package
      @package ||= build
    end

    private

    def build
      dir = PackageBuild.scratch("megamode-built-rails-")
      at_exit { FileUtils.rm_rf(dir) }
      prebuilt = PackageBuild.prebuilt(NAME, dir, MADE_FROM)
      return prebuilt if prebuilt
      app = File.join(dir, NAME)
      FileUtils.cp_r(RailsApp.path, app)
      add_extras(app)
      status, log = PackageBuild.build(app, File.join(dir, "out", NAME))
      raise "megamode build failed:\n#{log}" unless status.success?

      File.join(dir, "out", NAME)
    end

    def add_extras(app)
      # Rails 7.1+ generates production with force_ssl: on Lambda every URL is HTTPS, but the local
      # gateway is plain HTTP, so (as `megamode serve` advises) the app lets an environment
      # variable turn it off.
      production = File.join(app, "config", "environments", "production.rb")
      File.write(production, File.read(production).sub(/^(\s*)config\.force_ssl = true/,
                                                      '\1config.force_ssl = ENV["FORCE_SSL"] != "0"'))
      File.binwrite(File.join(app, "public", "pixel.png"), PNG)
      File.write(File.join(app, "app", "controllers", "uploads_controller.rb"), <<~RUBY)
        require "digest"

        class UploadsController < ApplicationController
          skip_forgery_protection

          def create
            file = params.require(:file)
            render json: { name: file.original_filename, size: file.size,
                           sha256: Digest::SHA256.hexdigest(file.read) }
          end

          def boom
            raise "boom: an app error on purpose"
          end
        end
      RUBY
      # The scaffold `rails new --minimal` makes has no JSON views (that needs jbuilder): a JSON API
      # of the app's own stands in for them.
      File.write(File.join(app, "app", "controllers", "api_posts_controller.rb"), <<~RUBY)
        class ApiPostsController < ApplicationController
          def index
            render json: Post.order(:id).map { |p| { id: p.id, title: p.title, body: p.body } }
          end

          def create
            post = Post.create!(params.require(:post).permit(:title, :body))
            render json: { id: post.id, title: post.title, body: post.body }, status: :created
          end
        end
      RUBY
      # Streaming (spec/runtime/streaming_spec.rb): Server-Sent Events from ActionController::Live, each
      # written once the test has the one before (it writes GATE/got-N), and send_file of a file
      # larger than Lambda's 6 MB buffered limit.
      File.write(File.join(app, "app", "controllers", "streams_controller.rb"), <<~RUBY)
        require "digest"
        require "tmpdir"

        class StreamsController < ApplicationController
          include ActionController::Live

          def events
            response.headers["Content-Type"] = "text/event-stream"
            gate = params.require(:gate)
            sse = ActionController::Live::SSE.new(response.stream)
            n = Integer(params.fetch(:n, "3"))
            n.times do |i|
              sse.write({ n: i }, id: i)
              next if i == n - 1

              500.times { break if File.exist?(File.join(gate, "got-\#{i}")); sleep 0.02 }
            end
            File.write(File.join(gate, "done"), "")
          ensure
            sse&.close
          end

          def download
            mb = Integer(params.fetch(:mb, "20"))
            path = File.join(Dir.tmpdir, "download-\#{mb}.bin")
            unless File.exist?(path)
              block = Random.new(mb).bytes(1024 * 1024)
              File.open(path, "wb") { |f| mb.times { f.write(block) } }
            end
            response.headers["X-Body-Sha256"] = Digest::SHA256.file(path).hexdigest
            send_file path, type: "application/octet-stream", filename: "download.bin"
          end
        end
      RUBY
      add_snapstart_probe(app)
      routes = File.join(app, "config", "routes.rb")
      text = File.read(routes)
      extra = %(  post "/uploads" => "uploads#create"\n  get "/boom" => "uploads#boom"\n) +
              %(  get "/api/posts" => "api_posts#index"\n  post "/api/posts" => "api_posts#create"\n) +
              %(  get "/streams/events" => "streams#events"\n  get "/streams/download" => "streams#download"\n) +
              %(  get "/snapstart" => "snapstart#show"\n)
      File.write(routes, text.sub(/end\s*\z/, "#{extra}end\n"))
    end

    # SnapStart (spec/end_to_end/snapstart_image_spec.rb): the app's own hooks record, in this server
    # process, what they found (the seed and the database connection before the snapshot; whether
    # the connection was still open when the after-restore hooks ran, megamode's own having run
    # first), and GET /snapstart reports it with the seed and connection now, after a query (with
    # ?close=1, on a connection closed after it). SNAPSTART_PROBE_FAIL=after-restore makes its
    # after-restore hook raise. Puma's keep-alive timeout comes from PUMA_PERSISTENT_TIMEOUT, so a
    # freeze can outlast it quickly; WEB_CONCURRENCY=N runs N workers, preloaded, as Rails apps
    # in cluster mode commonly are.
    def add_snapstart_probe(app)
      File.write(File.join(app, "config", "initializers", "snapstart_probe.rb"), <<~RUBY)
        module SnapstartProbe
          STATE = { "before" => 0, "after" => 0 }

          def self.connection_id
            ActiveRecord::Base.connection_pool.with_connection { |c| c.raw_connection.object_id }
          end
        end

        # Only where megamode runs the app: its gem's line in the Gemfile loads Megamode.
        if defined?(Megamode) && Megamode.respond_to?(:before_snapshot)
          Megamode.before_snapshot(:snapstart_probe) do
            pool = ActiveRecord::Base.connection_pool
            SnapstartProbe::STATE.merge!("before" => SnapstartProbe::STATE["before"] + 1, "seed_before" => Random.seed.to_s,
                                         "connected_before" => pool.connected?,
                                         "connection_before" => (SnapstartProbe.connection_id if pool.connected?))
          end
          Megamode.after_restore(:snapstart_probe) do
            raise "the probe's after-restore hook fails on purpose" if ENV["SNAPSTART_PROBE_FAIL"] == "after-restore"

            SnapstartProbe::STATE.merge!("after" => SnapstartProbe::STATE["after"] + 1,
                                         "connected_at_restore" => ActiveRecord::Base.connection_pool.connected?)
          end
        end
      RUBY
      File.write(File.join(app, "app", "controllers", "snapstart_controller.rb"), <<~RUBY)
        class SnapstartController < ApplicationController
          def show
            posts = Post.count
            # A new connection for the next request, which puma's workers (WEB_CONCURRENCY) then race to accept.
            response.headers["Connection"] = "close" if params[:close]
            render json: SnapstartProbe::STATE.merge("pid" => Process.pid, "seed" => Random.seed.to_s, "posts" => posts,
                                                     "connection" => SnapstartProbe.connection_id)
          end
        end
      RUBY
      puma = File.join(app, "config", "puma.rb")
      File.write(puma, "#{File.read(puma)}\npersistent_timeout Integer(ENV.fetch(\"PUMA_PERSISTENT_TIMEOUT\", \"20\"))\n" \
                       "if ENV[\"WEB_CONCURRENCY\"]\n  workers Integer(ENV[\"WEB_CONCURRENCY\"])\n  preload_app!\nend\n")
    end
  end
end
