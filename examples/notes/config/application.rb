require_relative "boot"

require "rails"
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"

Bundler.require(*Rails.groups)

module Notes
  # The example app megamode's demo packages: a list of notes with an HTML form, a JSON view and an
  # image, on Rails 6.1 or later.
  class Application < Rails::Application
    config.load_defaults Rails::VERSION::STRING.to_f
    config.eager_load = Rails.env.production?
  end
end
