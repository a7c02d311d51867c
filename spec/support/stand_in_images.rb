# frozen_string_literal: true

# What the specs that run the Lambda stand-in's images (tagged :image) need, checked in one place:
# root (the stand-in's layers in /dev/shm are root's), a container engine that runs, and the
# stand-in's layers for the runtime. `stand_in_engine` gives the engine, or skips the group,
# saying which is missing and what makes it.
module StandInImages
  ROOTS = ENV.fetch("MEGAMODE_LAMBDA_ROOTS", "/dev/shm/megamode-lambda")

  # `layers`: the stand-in's layers the spec reads (default: the runtime flavour and the Ruby);
  # `tool`: what needs root, for the reason given.
  def stand_in_engine(runtime, layers: ["runtime", runtime], tool: "bin/lambda-image")
    skip "#{tool} needs root (the stand-in's layers are root's)" unless Process.euid.zero?
    engine = begin
      Megamode::Build::Engine.runnable
    rescue Megamode::BuildError => e
      skip "no container engine runs here: #{e.message}"
    end
    missing = layers.reject { |layer| File.file?(File.join(ROOTS, "#{layer}.stamp")) }
    unless missing.empty?
      skip "the Lambda stand-in's #{missing.join(", ")} layers are not in #{ROOTS} " \
           "(bin/lambda-root #{runtime} build -- true makes them)"
    end
    engine
  end
end

RSpec.configure { |config| config.include StandInImages }
