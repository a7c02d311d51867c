# frozen_string_literal: true

require_relative "native_library"

library = Megamode::NativeLibrary.find
raise LoadError, Megamode::NativeLibrary.missing_message unless library

require library

module Megamode
  # Megamode::Native is the compiled extension's wiring (ext/megamode): internal, used only by
  # megamode's own Ruby (Megamode.handler, Megamode::Runtime.start, the packager), and free to
  # change between versions. Megamode.handler, boot and configure and Megamode::Runtime.start are
  # the API.
  #
  # @api private
  private_constant :Native
end
