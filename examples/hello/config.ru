# The demo app: plain Rack, as it would run anywhere. megamode runs it unchanged.
$stdout.sync = true

run(lambda do |env|
  request = Rack::Request.new(env)
  puts "#{request.request_method} #{request.fullpath} from #{request.ip}"
  case request.path_info
  when "/"
    [200, { "content-type" => "text/html; charset=utf-8" },
     ["<h1>Hello from Rack on Lambda</h1><p>Served by process #{Process.pid}.</p>"]]
  when "/greet"
    name = request.params.fetch("name", "world")
    [200, { "content-type" => "application/json" }, [%({"greeting":"Hello, #{name.gsub(/[^\w ]/, "")}!"})]]
  else
    [404, { "content-type" => "text/plain" }, ["Not found: #{request.path_info}\n"]]
  end
end)
