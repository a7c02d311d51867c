# frozen_string_literal: true

module Megamode
  VERSION = "0.1.0"
end
