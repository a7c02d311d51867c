# frozen_string_literal: true

require "open3"
require "rbconfig"
require "json"

# A handler in a process of its own, fed events one by one, as Lambda's runtime does.
class HandlerProcess
  attr_reader :pid

  # The start of every handler script: megamode from this checkout, configured for `app`.
  def self.preamble(app)
    <<~RUBY
      $LOAD_PATH.unshift #{File.join(SpecHelpers::ROOT, "lib").inspect}
      require "megamode"
      require "megamode/local/identity"
      require "json"
      Megamode.configure { |c| c.app_root = #{app.inspect} }
    RUBY
  end

  # `settings`: more of Megamode.configure's settings (`command: "..."`).
  def initialize(app, **settings)
    configure = settings.map { |name, value| "Megamode.configure { |c| c.#{name} = #{value.inspect} }\n" }.join
    script = HandlerProcess.preamble(app) + configure + <<~RUBY
      while (line = STDIN.gets)
        result = Megamode.handler(event: JSON.parse(line), context: Megamode::Context.new(**Megamode::Local::Identity.context_fields(timeout: 30)))
        STDERR.puts JSON.generate("result" => result, "status" => Megamode.status)
      end
    RUBY
    @stdin, @stdout, @stderr, @thread = Open3.popen3(RbConfig.ruby, "-e", script)
    @pid = @thread.pid
    @drain = Thread.new { @stdout.read } # the log
  end

  def handle(event)
    @stdin.puts JSON.generate(event)
    JSON.parse(@stderr.gets)
  end

  # Waits for the process to end (after a signal, say).
  def wait
    @thread.join
    @drain.join
  end

  def stop
    @stdin.close
    wait
  end
end
