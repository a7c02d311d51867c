# frozen_string_literal: true

# A corpus of malformed ELF files, generated from TinyElf's well-formed ones (each class and byte
# order): truncated at every boundary of their parts, each header field, program header field,
# dynamic entry and version record word set to values that overflow, point past the end or back
# into another table, every header byte flipped, a string table without a NUL, odd names, and
# tables repeated far beyond any real file. Names say what each file is, for a failure's message.
module MalformedElf
  module_function

  ODD_NAMES = ["", ".", "..", "../../etc/libx.so", "/usr/lib/libz.so.1", "sub/dir/lib.so", "\xFF\xFE\x80".b,
               "lib\nfoo.so", "l" * 5000, "$ORIGIN", ":::", "$ORIGIN/../../..:" * 40].freeze

  def corpus
    files = {}
    [[64, :little], [64, :big], [32, :little], [32, :big]].each do |bits, endian|
      name = "#{bits}-bit #{endian}-endian"
      bytes, layout = TinyElf.build_with_layout(bits: bits, endian: endian, needed: %w[libc.so.6 libm.so.6],
                                                soname: "libx.so.1", runpath: "$ORIGIN/../lib:/opt/lib",
                                                versions: { "libc.so.6" => %w[GLIBC_2.17 GLIBC_2.34],
                                                            "libm.so.6" => %w[GLIBC_2.29] })
      pack = Packer.new(bits, endian)
      boundaries(bytes, layout).each { |n| files["#{name}, cut to #{n} bytes"] = bytes.byteslice(0, n) }
      fields(bits, layout).each do |field, (at, size)|
        values(size, bytes, layout, field).each do |value|
          files["#{name}, #{field} at #{at} = #{value}"] = pack.patch(bytes, at, size, value)
        end
      end
      (0...(layout[:phoff] + 2 * layout[:phentsize])).each do |at|
        [0xFF, 0x80, 0x00].each { |b| files["#{name}, byte #{at} = #{b}"] = bytes.dup.tap { |c| c.setbyte(at, b) } }
      end
      strtab, size = layout[:strtab]
      files["#{name}, a string table without a NUL"] = bytes.dup.tap { |c| c[strtab, size] = "a" * size }
      ODD_NAMES.each_with_index do |odd, i|
        files["#{name}, odd name #{i}"] =
          TinyElf.build(bits: bits, endian: endian, needed: [odd, "libc.so.6"], soname: odd, runpath: odd,
                        versions: { odd => [odd, "GLIBC_2.17"] })
      end
    end
    files.merge(repeated)
  end

  # Files whose tables repeat entries far beyond any real file.
  def repeated
    colons = "$ORIGIN/x:" * 5_000
    {
      "100000 identical DT_NEEDED" => TinyElf.build(needed: ["libnowhere.so.1"] * 100_000),
      "10000 DT_RUNPATH of 5000 directories each" => TinyElf.build(needed: ["libnowhere.so.1"], runpath: [colons] * 10_000),
      "20000 distinct DT_RUNPATH" => TinyElf.build(runpath: (0...20_000).map { |i| "$ORIGIN/#{i}" }),
      "2000 version records on one library" =>
        TinyElf.build(needed: ["libc.so.6"], versions: { "libc.so.6" => (0...2000).map { |i| "GLIBC_2.#{i}" } })
    }
  end

  def boundaries(bytes, layout)
    cuts = [0, 1, 3, 4, 5, 6, 15, 16, 17, 51, 52, 63, 64]
    (0..2).each { |i| cuts.push(layout[:phoff] + i * layout[:phentsize] - 1, layout[:phoff] + i * layout[:phentsize]) }
    %i[strtab verneed dynamic].each do |part|
      offset, size = layout[part]
      step = part == :dynamic ? layout[:entsize] : (part == :verneed ? 8 : 1)
      (0..size).step(step) { |k| cuts.push(offset + k - 1, offset + k) }
    end
    cuts.push(bytes.bytesize - 1)
    cuts.select { |n| n.between?(0, bytes.bytesize - 1) }.uniq.sort
  end

  # { "name" => [offset, size] } of every field worth breaking.
  def fields(bits, layout)
    word = bits / 8
    list = { "e_phoff" => [bits == 64 ? 32 : 28, word], "e_phentsize" => [bits == 64 ? 54 : 42, 2],
             "e_phnum" => [bits == 64 ? 56 : 44, 2] }
    phdr = bits == 64 ? { "type" => [0, 4], "offset" => [8, 8], "vaddr" => [16, 8], "filesz" => [32, 8] }
                      : { "type" => [0, 4], "offset" => [4, 4], "vaddr" => [8, 4], "filesz" => [16, 4] }
    2.times do |i|
      phdr.each { |f, (at, size)| list["phdr #{i} p_#{f}"] = [layout[:phoff] + i * layout[:phentsize] + at, size] }
    end
    dyn, dyn_size = layout[:dynamic]
    (dyn_size / layout[:entsize]).times do |k|
      list["dynamic #{k} tag"] = [dyn + k * layout[:entsize], word]
      list["dynamic #{k} value"] = [dyn + k * layout[:entsize] + word, word]
    end
    verneed, verneed_size = layout[:verneed]
    (verneed_size / 4).times { |k| list["version word #{k}"] = [verneed + 4 * k, 4] }
    (verneed_size / 2).times { |k| list["version half #{k}"] = [verneed + 2 * k, 2] }
    list
  end

  # Values that overflow, point past the end, or point into another of the file's tables.
  def values(size, bytes, layout, field)
    max = (1 << (8 * size)) - 1
    list = [0, 1, 16, max, 1 << (8 * size - 1), bytes.bytesize - 1, bytes.bytesize, bytes.bytesize + 1,
            layout[:phoff], layout[:strtab][0], layout[:verneed][0], layout[:dynamic][0]]
    list.concat([5, 10, 14, 15, 29, 0x6ffffffe, 0x6fffffff]) if field.end_with?("tag")
    list.select { |v| v <= max }.uniq
  end

  # Writes integers in the file's class and byte order.
  class Packer
    def initialize(bits, endian)
      little = endian == :little
      @formats = { 1 => "C", 2 => little ? "v" : "n", 4 => little ? "V" : "N", 8 => little ? "Q<" : "Q>" }
      @bits = bits
    end

    def patch(bytes, at, size, value)
      bytes.dup.tap { |copy| copy[at, size] = [value].pack(@formats.fetch(size)) }
    end
  end
end
