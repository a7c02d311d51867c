# frozen_string_literal: true

# Hand-built ELF files for the build's verification specs: the smallest file the dynamic loader's
# view of an ELF needs (a header, a loadable segment over the whole file, a dynamic segment, its
# string table and version needs), with the machine, libraries and versions a spec asks for.
module TinyElf
  module_function

  # `versions`: { "libc.so.6" => ["GLIBC_2.17", ...] }, as DT_VERNEED records; `runpath` and
  # `rpath`: a string, or an array of them for one entry each; `strsz`: a string table size to
  # declare instead of the real one (for malformed files).
  def build(**options)
    build_with_layout(**options).first
  end

  # The file's bytes, and where its parts are: { phoff:, phentsize:, strtab: [offset, size],
  # verneed: [offset, size], dynamic: [offset, size], entsize: }.
  def build_with_layout(machine: 62, needed: [], soname: nil, runpath: nil, rpath: nil, versions: {}, type: 3,
                        bits: 64, endian: :little, strsz: nil)
    u16, u32, u64 = endian == :little ? %w[v V Q<] : %w[n N Q>]
    word = bits == 64 ? u64 : u32
    strtab = +"\0".b
    # Each string once, as linkers write them.
    offsets = {}
    index = lambda do |s|
      offsets[s] ||= strtab.bytesize.tap { strtab << s.b << "\0" }
    end
    needed_at = needed.map(&index)
    soname_at = soname && index.call(soname)
    runpath_at = Array(runpath).map(&index)
    rpath_at = Array(rpath).map(&index)
    records = versions.map { |lib, names| [index.call(lib), names.map(&index)] }

    ehsize = bits == 64 ? 64 : 52
    phentsize = bits == 64 ? 56 : 32
    strtab_off = ehsize + 2 * phentsize
    verneed_off = align(strtab_off + strtab.bytesize)
    verneed = records.each_with_index.map do |(lib, names), i|
      last = i == records.size - 1
      head = [1, names.size].pack("#{u16}2") + [lib, 16, last ? 0 : 16 * (names.size + 1)].pack("#{u32}3")
      head + names.each_with_index.map do |name, j|
        [0].pack(u32) + [0, i + 2].pack("#{u16}2") + [name, j == names.size - 1 ? 0 : 16].pack("#{u32}2")
      end.join
    end.join
    dyn_off = align(verneed_off + verneed.bytesize)
    entries = needed_at.map { |n| [1, n] }
    entries << [14, soname_at] if soname_at
    entries += rpath_at.map { |r| [15, r] }
    entries += runpath_at.map { |r| [29, r] }
    entries += [[5, strtab_off], [10, strsz || strtab.bytesize]]
    entries += [[0x6ffffffe, verneed_off], [0x6fffffff, records.size]] unless records.empty?
    entries << [0, 0]
    dynamic = entries.map { |tag, value| [tag, value].pack("#{word}2") }.join
    total = dyn_off + dynamic.bytesize

    ident = "\x7FELF".b + [bits == 64 ? 2 : 1, endian == :little ? 1 : 2, 1, 0].pack("C4") + ("\0" * 8)
    header =
      if bits == 64
        ident + [type, machine].pack("#{u16}2") + [1].pack(u32) + [0, ehsize, 0].pack("#{u64}3") + [0].pack(u32) +
          [ehsize, phentsize, 2, 64, 0, 0].pack("#{u16}6")
      else
        ident + [type, machine].pack("#{u16}2") + [1, 0, ehsize, 0, 0].pack("#{u32}5") +
          [ehsize, phentsize, 2, 40, 0, 0].pack("#{u16}6")
      end
    phdrs = [program_header(1, 0, total, bits, u32, u64), program_header(2, dyn_off, dynamic.bytesize, bits, u32, u64)]
    body = header + phdrs.join
    body << strtab
    body << ("\0" * (verneed_off - body.bytesize)) << verneed
    body << ("\0" * (dyn_off - body.bytesize)) << dynamic
    [body, { phoff: ehsize, phentsize: phentsize, strtab: [strtab_off, strtab.bytesize],
             verneed: [verneed_off, verneed.bytesize], dynamic: [dyn_off, dynamic.bytesize], entsize: bits / 4 }]
  end

  def program_header(type, offset, size, bits, u32, u64)
    if bits == 64
      [type, 5].pack("#{u32}2") + [offset, offset, offset, size, size, 8].pack("#{u64}6")
    else
      [type, offset, offset, offset, size, size, 5, 4].pack("#{u32}8")
    end
  end

  def align(n)
    (n + 7) & ~7
  end

  def write(path, **options)
    FileUtils.mkdir_p(File.dirname(path))
    File.binwrite(path, build(**options))
    path
  end
end
