# frozen_string_literal: true

require_relative "native_library"

library = Megamode::NativeLibrary.find
raise LoadError, Megamode::NativeLibrary.missing_message unless library

require library
