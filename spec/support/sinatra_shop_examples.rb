# frozen_string_literal: true

require "digest"

# The Sinatra app (spec/fixtures/apps/sinatra_build, packaged as `shop`) as a browser uses it through a
# local gateway (`megamode serve`), whatever runs it: its package (spec/end_to_end/e2e_sinatra_spec.rb)
# or its image (spec/end_to_end/image_package_spec.rb). The group that includes these gives `prefix`
# (the stage's path, "" without one) and `client` (a LocalGateway::Client), and has the gateway in
# @gateway.
RSpec.shared_examples "the Sinatra shop behind a gateway" do
  it "follows links and a form post with its redirect, keeping the session" do
    index = client.get("#{prefix}/")
    expect(index.body).to include(%(href="#{prefix}/items/new"))
    form = client.get("#{prefix}/items/new")
    expect(form.body).to include(%(action="#{prefix}/items"))

    created = client.post_form("#{prefix}/items", "name" => "lamp")
    expect(created.code).to eq("303")
    expect(LocalGateway::Client.location_path(created)).to eq("#{prefix}/items/lamp")
    client.post_form("#{prefix}/items", "name" => "chair")

    expect(client.get("#{prefix}/items/lamp").body).to eq("Item lamp (2 in your basket)")
    expect(JSON.parse(client.get("#{prefix}/items.json").body)).to eq("items" => %w[lamp chair])
  end

  it "serves public/ images, takes an upload, and answers 404 and 500" do
    image = client.get("#{prefix}/pixel.png")
    expect(image["content-type"]).to eq("image/png")
    expect(image.body.b).to eq(BuiltRails::PNG)

    data = Random.new(3).bytes(20_000)
    form = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n" \
           "Content-Type: application/octet-stream\r\n\r\n".b + data + "\r\n--b--\r\n".b
    uploaded = client.post("#{prefix}/uploads", form, "Content-Type" => "multipart/form-data; boundary=b")
    expect(JSON.parse(uploaded.body)).to eq("name" => "a.bin", "size" => 20_000, "sha256" => Digest::SHA256.hexdigest(data))

    expect(client.get("#{prefix}/nothing-here").code).to eq("404")
    expect(client.get("#{prefix}/boom").code).to eq("500")
    expect(@gateway.wait_for_log("boom: a Sinatra error on purpose")).to include("boom: a Sinatra error on purpose")
  end
end
