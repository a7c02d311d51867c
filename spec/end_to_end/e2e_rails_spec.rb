# frozen_string_literal: true

require "spec_helper"
require "digest"

# The Rails scaffold app, built with `megamode build` and served from its package by `megamode serve
# --package` (a read-only task root and a fresh tmpfs, as these specs run as root), driven through
# every event source by a cookie-keeping HTTP client: the whole life of a record through its HTML
# forms (CSRF token, session cookie, redirects, flash), the JSON API, static files, an image, errors
# and an upload.
RSpec.describe "A Rails app end to end, from its package" do
  ENV_VARS = { "SECRET_KEY_BASE" => "e2e#{"0" * 64}", "FORCE_SSL" => "0" }.freeze

  # The form's own token (Rails may bind it to the form's action).
  def token(body)
    body[/name="authenticity_token" value="([^"]+)"/, 1] or raise "no authenticity token in:\n#{body}"
  end

  # The page's token for scripts (headers, and the links rails-ujs turns into forms).
  def meta_token(body)
    body[/name="csrf-token" content="([^"]+)"/, 1] or raise "no csrf-token meta tag in:\n#{body}"
  end

  LocalGateway::SOURCES.each do |format, stage|
    context "through #{format}#{" with stage #{stage}" if stage}" do
      before(:all) { @gateway = LocalGateway.serve_package(BuiltRails.package, format, stage, env: ENV_VARS) }
      after(:all) { @gateway.stop }

      let(:prefix) { stage ? "/#{stage}" : "" }
      let(:client) { @gateway.client }

      after { client.close }

      it "creates, shows, edits, updates and destroys a post through its HTML forms" do
        index = client.get("#{prefix}/posts")
        expect(index.code).to eq("200"), index.body[0, 500]
        expect(index.body).to include(%(href="#{prefix}/posts/new"))

        form = client.get("#{prefix}/posts/new")
        expect(form.body).to include(%(action="#{prefix}/posts"))
        created = client.post_form("#{prefix}/posts", "authenticity_token" => token(form.body),
                                                      "post[title]" => "Hello Lambda", "post[body]" => "From #{format}")
        expect(created.code).to eq("302"), created.body[0, 500]
        show_path = LocalGateway::Client.location_path(created)
        expect(show_path).to match(%r{\A#{prefix}/posts/\d+\z})

        shown = client.get(show_path)
        expect(shown.body).to include("Post was successfully created.", "Hello Lambda")

        edit = client.get("#{show_path}/edit")
        updated = client.post_form(show_path, "_method" => "patch", "authenticity_token" => token(edit.body),
                                              "post[title]" => "Hello again", "post[body]" => "Edited")
        expect(LocalGateway::Client.location_path(updated)).to eq(show_path)
        expect(client.get(show_path).body).to include("Post was successfully updated.", "Hello again")

        page = client.get(show_path).body
        destroyed = client.post_form(show_path, "_method" => "delete", "authenticity_token" => meta_token(page))
        expect(LocalGateway::Client.location_path(destroyed)).to eq("#{prefix}/posts")
        expect(client.get("#{prefix}/posts").body).not_to include("Hello again")
      end

      it "answers the JSON API, with the CSRF token in a header" do
        form = client.get("#{prefix}/posts/new")
        body = JSON.generate(post: { title: "JSON post", body: "via #{format}" })
        created = client.post("#{prefix}/api/posts", body, "Content-Type" => "application/json",
                                                            "Accept" => "application/json",
                                                            "X-CSRF-Token" => meta_token(form.body))
        expect(created.code).to eq("201"), created.body[0, 500]
        expect(JSON.parse(created.body)).to include("title" => "JSON post")

        list = JSON.parse(client.get("#{prefix}/api/posts").body)
        expect(list.map { |p| p["title"] }).to include("JSON post")
      end

      it "serves public/ files and images byte for byte, and the app's 404 and 500 pages" do
        robots = client.get("#{prefix}/robots.txt")
        expect(robots.code).to eq("200")
        expect(robots.body).to include("robotstxt.org")

        image = client.get("#{prefix}/pixel.png")
        expect(image["content-type"]).to eq("image/png")
        expect(image.body.b).to eq(BuiltRails::PNG)

        expect(client.get("#{prefix}/no-such-page").code).to eq("404")
        failed = client.get("#{prefix}/boom")
        expect(failed.code).to eq("500")
        expect(@gateway.wait_for_log("boom: an app error on purpose")).to include("boom: an app error on purpose")
      end

      it "takes a multipart file upload" do
        data = Random.new(7).bytes(50_000)
        boundary = "megamode-e2e"
        form = "--#{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n" \
               "Content-Type: image/jpeg\r\n\r\n".b + data + "\r\n--#{boundary}--\r\n".b
        uploaded = client.post("#{prefix}/uploads", form, "Content-Type" => "multipart/form-data; boundary=#{boundary}")

        expect(uploaded.code).to eq("200"), uploaded.body[0, 500]
        expect(JSON.parse(uploaded.body)).to eq("name" => "photo.jpg", "size" => 50_000,
                                                "sha256" => Digest::SHA256.hexdigest(data))
      end
    end
  end
end
