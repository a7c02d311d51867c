class ApplicationController < ActionController::Base
  # The demo posts its form as a recorded Lambda event, without a page's CSRF token first: a request
  # without a valid token runs with an empty session instead of being refused. A real app keeps
  # Rails' default (:exception).
  protect_from_forgery with: :null_session
end
