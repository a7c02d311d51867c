# frozen_string_literal: true

module Megamode
  # The local tools: everything that imitates Lambda and the AWS services in front of it on a
  # developer's machine (`megamode invoke` and `megamode serve`, the Runtime API emulator the
  # tests and benchmarks use). They ship in the gem, never in a package, and nothing in the
  # runtime (lib/megamode.rb) or the adapter loads them.
  #
  # Loading a local tool loads no other part of megamode: `megamode invoke --package` runs a
  # package's handler.rb, which brings the megamode the package carries.
  module Local
  end
end
