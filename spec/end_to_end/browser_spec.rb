# frozen_string_literal: true

require "spec_helper"

# A real browser (headless Chromium) uses the Rails scaffold app through `megamode serve --package`
# with a `dev` stage, as a developer would try their app before deploying it.
RSpec.describe "the Rails app in a browser" do
  before(:all) do
    skip "no browser: #{WebDriver.unavailable}" if WebDriver.unavailable
    @gateway = LocalGateway.new("--package", BuiltRails.package, "--stage", "dev",
                                env: { "SECRET_KEY_BASE" => "browser#{"0" * 64}", "FORCE_SSL" => "0" })
    @browser = WebDriver.new
  end

  after(:all) do
    @browser&.quit
    @gateway&.stop
  end

  let(:base) { "http://127.0.0.1:#{@gateway.port}/dev" }

  it "creates a post through the form, follows the redirect, finds it in the list and deletes it" do
    @browser.visit("#{base}/posts/new")
    @browser.fill_in("#post_title", "Written in Chromium")
    @browser.fill_in("#post_body", "Through megamode serve")
    @browser.click("input[type=submit], button[type=submit]")

    shown = @browser.wait_to_leave("#{base}/posts/new")
    expect(shown).to match(%r{\A#{Regexp.escape(base)}/posts/\d+\z})
    expect(@browser.source).to include("Post was successfully created.", "Written in Chromium")

    @browser.visit("#{base}/posts")
    expect(@browser.source).to include("Written in Chromium")

    # Other specs may have left posts in the app's database: this one deletes its own.
    delete_post(URI(shown).path)
    expect(@browser.current_url).to eq("#{base}/posts")
    expect(@browser.source).not_to include("Written in Chromium")
  end

  # Rails 7 scaffolds delete with a form (button_to) on the post's page; Rails 6.1's index has a link
  # that rails-ujs turns into a form, and the minimal app has no JavaScript, so the test does what
  # rails-ujs would.
  def delete_post(path)
    if !@browser.source.include?('data-method="delete"')
      @browser.click("a[href='#{path}']")
      shown = @browser.wait_to_leave("#{base}/posts")
      @browser.click("form[method=post] button[type=submit]")
      @browser.wait_to_leave(shown)
    else
      @browser.execute(<<~JS, path)
        const link = document.querySelector(`a[data-method=delete][href="${arguments[0]}"]`);
        const form = document.createElement("form");
        form.method = "post";
        form.action = link.href;
        for (const [name, value] of [["_method", "delete"],
            ["authenticity_token", document.querySelector("meta[name=csrf-token]").content]]) {
          const input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
      JS
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
      sleep 0.05 while @browser.source.include?("Written in Chromium") &&
                       Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    end
  end
end
