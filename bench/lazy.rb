# frozen_string_literal: true

# Unpacking a 200 MB, 20,000-file gem bundle (text-like files, as gems are) with megamode, against
# `tar -I zstd -xf` of the same archive and `unzip` of the same files as a .zip, on the same
# filesystem, in the same run. Run with `rake bench` (after `rake compile`); needs zstd and unzip.
require_relative "support"
require "fileutils"

ROUNDS = Integer(ENV.fetch("ROUNDS", 5))
BASE = ENV.fetch("BENCH_DIR", File.directory?("/dev/shm") ? "/dev/shm" : Dir.tmpdir)
ROOT = File.join(BASE, "megamode-lazy-bench-#{Process.pid}")
SRC = File.join(ROOT, "vendor", "bundle")
# 20,000 files of about 10 KB in 400 gem-like directories, from a 5,000-word vocabulary, so they
# compress about as much as Ruby source does.
random = Random.new(42)
letters = ("a".."z").to_a + ("A".."Z").to_a + %w[_ . ( ) = :]
WORDS = Array.new(5000) { Array.new(3 + random.rand(10)) { letters[random.rand(letters.size)] }.join }
400.times do |g|
  dir = File.join(SRC, "ruby", "3.3.0", "gems", "gem#{g}-1.0", "lib")
  FileUtils.mkdir_p(dir)
  50.times do |f|
    text = Array.new(1700) { WORDS[random.rand(WORDS.size)] }.join(" ")
    File.write(File.join(dir, "file#{f}.rb"), text[0, 10_240])
  end
end

manifest = Bench::NATIVE.pack(SRC, File.join(ROOT, "package"))
archive = File.join(ROOT, "package", "bundle.tar.zst")
zip = File.join(ROOT, "bundle.zip")
system("zip", "-qr", zip, ".", chdir: SRC, exception: true)

def fresh(name)
  File.join(ROOT, name).tap { |d| FileUtils.rm_rf(d) }
end

archive_mb = File.size(archive) / 1e6
n = 0
ours = Bench.sample(ROUNDS) { Bench::NATIVE.unpack(File.join(ROOT, "package", "bundle.json"), fresh("ours#{n += 1}")) }
tar = Bench.sample(ROUNDS) do
  dest = fresh("tar#{n += 1}")
  FileUtils.mkdir_p(dest)
  system("tar", "-I", "zstd", "-xf", archive, "-C", dest, exception: true)
end
unzip = Bench.sample(ROUNDS) { system("unzip", "-qo", zip, "-d", fresh("zip#{n += 1}"), exception: true) }
FileUtils.rm_rf(ROOT)

ms = ->(ns) { ns / 1_000_000.0 }
puts "#{ROUNDS} rounds each; #{manifest["files"]} files, #{manifest["unpacked_bytes"] / 1_000_000} MB unpacked, " \
     "#{format("%.1f", archive_mb)} MB as tar.zst; on #{BASE}; ms"
puts "| unpack | median | min | max | ratio |"
puts "| --- | ---: | ---: | ---: | --- |"
[["tar -I zstd -xf", tar], ["Megamode::Native.unpack", ours], ["unzip (same files as .zip)", unzip]].each do |name, s|
  ratio = s.equal?(tar) ? "1.00x (reference)" : format("%.2fx", Bench.median(s).to_f / Bench.median(tar))
  puts format("| %-28s | %7.1f | %7.1f | %7.1f | %s |", name, ms[Bench.median(s)], ms[s.first], ms[s.last], ratio)
end
