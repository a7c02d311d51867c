# frozen_string_literal: true

# Real apps on this environment's Ruby, Rack, puma, Sinatra and Rails (Debian 12: Rack 2.2, puma 5,
# Sinatra 3, Rails 6.1; Debian 13: Rack 3.1, puma 6, Sinatra 4, Rails 7.2), where those differ.
RSpec.describe "real apps on Rack #{Gem::Specification.find_by_name("rack").version}" do
  def handle(event)
    Megamode.handler(event: event, context: context)
  end

  # The "name=value" part of each cookie a 2.0 response sets.
  def cookie_pairs(result)
    result.fetch("cookies").map { |c| c.split(";").first }
  end

  def form_post(path, form, cookies: [])
    v2_event(path, method: "POST").tap do |e|
      e["body"] = URI.encode_www_form(form)
      e["headers"]["content-type"] = "application/x-www-form-urlencoded"
      e["cookies"] = cookies
    end
  end

  def get(path, cookies: [])
    v2_event(path).tap { |e| e["cookies"] = cookies }
  end

  describe "plain Rack" do
    before { Megamode.configure { |c| c.app_root = fixture_app("rack_hello") } }

    it "returns every cookie, whether the app sets them as Rack 3's Array or Rack 2's newline-joined String" do
      v2 = handle(v2_event("/cookies"))
      rest = handle(rest_event("/cookies"))

      expect(v2["cookies"]).to eq(["first=1; path=/", "second=2; path=/; HttpOnly"])
      expect(rest["multiValueHeaders"]["set-cookie"]).to eq(["first=1; path=/", "second=2; path=/; HttpOnly"])
    end

    it "answers with lower-case header names, whatever case the app used" do
      result = handle(v2_event("/mixed-case"))

      expect(result["headers"]).to include("x-mixed-case" => "yes", "content-type" => "text/plain")
      expect(result["headers"].keys).to all(match(/\A[^A-Z]+\z/))
    end

    it "serves through rackup, which Rack 3 moved to its own gem" do
      Megamode.configure do |c|
        c.app_root = fixture_app("rack_hello")
        c.command = "exec rackup --host 127.0.0.1 --port $PORT config.ru"
      end

      expect(handle(v2_event("/"))["body"]).to eq("Hello from Rack")
    end
  end

  describe "Sinatra" do
    before { Megamode.configure { |c| c.app_root = fixture_app("sinatra_app") } }

    it "keeps its session across a form post and a redirect" do
      expect(handle(get("/"))["body"]).to start_with("Hello from Sinatra")

      signed = handle(form_post("/sign", { "name" => "Ada Lovelace" }))
      expect(signed["statusCode"]).to eq(303).or eq(302)
      expect(signed["headers"]["location"]).to eq("https://r3pmxmplak.execute-api.us-east-2.amazonaws.com/hello")

      hello = handle(get("/hello", cookies: cookie_pairs(signed)))
      expect(hello["body"]).to eq("Hello, Ada Lovelace")
    end
  end

  describe "Rails" do
    before do
      ENV["SECRET_KEY_BASE"] ||= "megamode-test-#{"0" * 64}"
      Megamode.configure { |c| c.app_root = RailsApp.path }
    end

    it "creates a record through the scaffold's form, with the CSRF token and session cookie, logged with the Rails prefix" do
      log = capture_stdout_fd do
        form = handle(get("/posts/new"))
        expect(form["statusCode"]).to eq(200)
        token = form["body"][/name="authenticity_token" value="([^"]+)"/, 1]
        expect(token).not_to be_nil

        created = handle(form_post("/posts", { "authenticity_token" => token, "post[title]" => "Hello Lambda",
                                               "post[body]" => "Runs unchanged." }, cookies: cookie_pairs(form)))
        expect(created["statusCode"]).to eq(302)
        location = created["headers"]["location"]
        expect(location).to match(%r{\Ahttps://r3pmxmplak\.execute-api\.us-east-2\.amazonaws\.com/posts/\d+\z})

        shown = handle(get(URI(location).path, cookies: cookie_pairs(created)))
        expect(shown["statusCode"]).to eq(200)
        expect(shown["body"]).to include("Hello Lambda", "Post was successfully created.")
      end

      expect(log).to match(/^Rails: .*Started POST "\/posts"/)
      expect(log).to match(/^Rails: .*Completed 302 Found/)
    end
  end
end
