# frozen_string_literal: true

module Megamode
  class Build
    # What the build needs to know of an ELF file (a shared library, an extension, an executable),
    # read in pure Ruby from its headers: its class and byte order, its machine, the libraries it
    # needs (DT_NEEDED), its own name (DT_SONAME), its search path (DT_RUNPATH, DT_RPATH) and the
    # symbol versions it needs from each library (DT_VERNEED). Everything is found through the
    # program headers, as the dynamic loader finds it, so stripped files read as well.
    #
    # Reads are bounded (a header, the dynamic segment, the string table, the version records, each
    # within its limit and within the file) and every offset and count is checked: a malformed or
    # truncated file raises Elf::Error saying why, never anything else. What is read is bounded too,
    # however the file repeats itself: each library once (the loader loads a name once), the one
    # run path the loader uses, each string read once, and no more names, directories or bytes of
    # names than any real file has.
    class Elf
      class Error < StandardError; end

      MAGIC = "\x7FELF".b
      # e_machine values, as the ELF specification and binutils name them.
      MACHINES = {
        2 => "SPARC", 3 => "x86 (32-bit)", 8 => "MIPS", 20 => "PowerPC", 21 => "PowerPC64", 22 => "s390",
        40 => "ARM (32-bit)", 43 => "SPARC64", 62 => "x86_64", 183 => "aarch64", 243 => "RISC-V", 258 => "LoongArch"
      }.freeze
      TYPES = { 1 => :relocatable, 2 => :executable, 3 => :shared, 4 => :core }.freeze

      PT_LOAD = 1
      PT_DYNAMIC = 2
      DT_NULL = 0
      DT_NEEDED = 1
      DT_STRTAB = 5
      DT_STRSZ = 10
      DT_SONAME = 14
      DT_RPATH = 15
      DT_RUNPATH = 29
      DT_VERNEED = 0x6ffffffe
      DT_VERNEEDNUM = 0x6fffffff

      # Limits on what one file may make the reader take in.
      MAX_PROGRAM_HEADERS = 4096
      MAX_TABLE = 16 * 1024 * 1024
      MAX_VERSION_RECORDS = 65_536
      MAX_NEEDED = 1024 # distinct libraries
      MAX_RUNPATH_DIRS = 256 # distinct directories in the run path
      MAX_NAME = 4096 # bytes in one name (PATH_MAX)
      MAX_NAMES_BYTES = 1024 * 1024 # bytes of all the names read from the string table

      attr_reader :path, :bits, :byte_order, :type, :machine, :needed, :soname, :runpath, :versions_needed

      # Whether the file at `path` starts like an ELF file (false for anything unreadable).
      def self.elf?(path)
        File.open(path, "rb") { |f| f.read(4) == MAGIC }
      rescue SystemCallError, IOError
        false
      end

      def self.read(path)
        new(path)
      end

      # The machine's name for an e_machine value.
      def self.machine_name(machine)
        MACHINES.fetch(machine) { "machine #{machine}" }
      end

      def initialize(path)
        @path = path
        @needed = []
        @runpath = []
        @versions_needed = {}
        @names = {}
        @names_budget = MAX_NAMES_BYTES
        File.open(path, "rb") do |file|
          @file = file
          @size = file.size
          parse
        end
      rescue SystemCallError, IOError => e
        raise Error, "cannot be read: #{e.message}"
      ensure
        @file = nil
      end

      def machine_name
        self.class.machine_name(@machine)
      end

      # The glibc versions the file needs (from any of glibc's libraries: libc, libm, libpthread, the
      # loader...), as [major, minor(, patch)] arrays, sorted. GLIBC_PRIVATE is glibc's own business.
      def glibc_versions
        names = @versions_needed.values.flatten.uniq
        names.filter_map { |n| n[/\AGLIBC_(\d+(?:\.\d+)+)\z/, 1]&.split(".")&.map(&:to_i) }.sort
      end

      # The newest glibc version the file needs, as "2.34", or nil.
      def glibc_required
        glibc_versions.last&.join(".")
      end

      # glibc's ABI markers (GLIBC_ABI_DT_RELR, from glibc 2.36, and later ones): versions that only a
      # glibc at least as new as the marker provides.
      def glibc_abi_markers
        @versions_needed.values.flatten.uniq.grep(/\AGLIBC_ABI_/).sort
      end

      private

      def parse
        ident = read_at(0, 16, "the ELF identification")
        raise Error, "is not an ELF file" unless ident.start_with?(MAGIC)

        @bits = { 1 => 32, 2 => 64 }[ident.getbyte(4)] or raise Error, "has an unknown ELF class (#{ident.getbyte(4)})"
        @byte_order = { 1 => :little, 2 => :big }[ident.getbyte(5)] or
          raise Error, "has an unknown ELF byte order (#{ident.getbyte(5)})"
        header = read_at(0, @bits == 64 ? 64 : 52, "the ELF header")
        @type = TYPES.fetch(u16(header, 16), :other)
        @machine = u16(header, 18)
        phoff, phentsize, phnum =
          if @bits == 64 then [u64(header, 32), u16(header, 54), u16(header, 56)]
          else [u32(header, 28), u16(header, 42), u16(header, 44)]
          end
        segments = program_headers(phoff, phentsize, phnum)
        dynamic = segments.find { |s| s[:type] == PT_DYNAMIC }
        parse_dynamic(dynamic, segments.select { |s| s[:type] == PT_LOAD }) if dynamic
      end

      def program_headers(offset, entsize, count)
        return [] if count.zero?
        raise Error, "has #{count} program headers, more than #{MAX_PROGRAM_HEADERS}" if count > MAX_PROGRAM_HEADERS

        min = @bits == 64 ? 56 : 32
        raise Error, "has program headers of #{entsize} bytes (at least #{min} expected)" if entsize < min

        table = read_at(offset, entsize * count, "the program headers")
        Array.new(count) do |i|
          base = i * entsize
          if @bits == 64
            { type: u32(table, base), offset: u64(table, base + 8), vaddr: u64(table, base + 16),
              filesz: u64(table, base + 32) }
          else
            { type: u32(table, base), offset: u32(table, base + 4), vaddr: u32(table, base + 8),
              filesz: u32(table, base + 16) }
          end
        end
      end

      # The dynamic section as the loader takes it: every DT_NEEDED (each name once), and of the
      # other tags the last entry, so DT_RUNPATH, else DT_RPATH, gives the one run path it uses.
      def parse_dynamic(segment, loads)
        needed = {}
        last = {}
        each_dynamic_entry(segment) do |tag, value|
          if tag == DT_NEEDED
            needed[value] = true
            raise Error, "needs more than #{MAX_NEEDED} libraries" if needed.size > MAX_NEEDED
          else
            last[tag] = value
          end
        end
        strtab = last[DT_STRTAB]
        strsz = last[DT_STRSZ]
        runpath = last[DT_RUNPATH] || last[DT_RPATH]
        verneed = last[DT_VERNEED]
        return if needed.empty? && !last.key?(DT_SONAME) && runpath.nil? && verneed.nil?
        raise Error, "has a dynamic section without its string table" unless strtab && strsz
        raise Error, "has a dynamic string table of #{strsz} bytes, more than #{MAX_TABLE}" if strsz > MAX_TABLE

        @strings = read_at(file_offset(strtab, loads, "the dynamic string table"), strsz, "the dynamic string table")
        @needed = needed.keys.map { |index| string(index) }.uniq
        @soname = string(last[DT_SONAME]) if last.key?(DT_SONAME)
        @runpath = run_path(string(runpath, limit: MAX_NAMES_BYTES)) if runpath
        count = last[DT_VERNEEDNUM].to_i
        parse_verneed(file_offset(verneed, loads, "the version needs"), count) if verneed && count.positive?
        @versions_needed.transform_values!(&:uniq)
      end

      # Each [tag, value] up to DT_NULL, or to the end of the segment (read up to MAX_TABLE).
      def each_dynamic_entry(segment)
        entsize = @bits == 64 ? 16 : 8
        size = [segment[:filesz], MAX_TABLE].min
        table = read_at(segment[:offset], size - (size % entsize), "the dynamic section")
        word = { [64, :little] => "Q<*", [64, :big] => "Q>*", [32, :little] => "V*", [32, :big] => "N*" }
        words = table.unpack(word.fetch([@bits, @byte_order]))
        (0...words.size).step(2) do |i|
          break if words[i] == DT_NULL

          yield words[i], words[i + 1]
        end
      end

      # The run path's directories, each once.
      def run_path(value)
        dirs = {}
        value.split(":") do |dir|
          next if dir.empty?

          dirs[dir] = true
          raise Error, "has a run path of more than #{MAX_RUNPATH_DIRS} directories" if dirs.size > MAX_RUNPATH_DIRS
        end
        dirs.keys
      end

      # Elf_Verneed records (one per library), each with a chain of Elf_Vernaux records (one per
      # version); both are 16 bytes in either class, and each chain link must move forward.
      def parse_verneed(offset, count)
        raise Error, "names #{count} libraries' versions, more than #{MAX_VERSION_RECORDS}" if count > MAX_VERSION_RECORDS

        seen = 0
        count.times do
          record = read_at(offset, 16, "a version need")
          revision = u16(record, 0)
          raise Error, "has a version need of revision #{revision} (1 expected)" unless revision == 1

          library = string(u32(record, 4))
          aux = offset + u32(record, 8)
          u16(record, 2).times do
            seen += 1
            raise Error, "has more than #{MAX_VERSION_RECORDS} version records" if seen > MAX_VERSION_RECORDS

            entry = read_at(aux, 16, "a needed version")
            (@versions_needed[library] ||= []) << string(u32(entry, 8))
            step = u32(entry, 12)
            break if step.zero?

            aux += step
          end
          step = u32(record, 12)
          break if step.zero?

          offset += step
        end
      end

      # The file offset of a virtual address, through the loadable segment that holds it.
      def file_offset(address, loads, what)
        segment = loads.find { |s| address >= s[:vaddr] && address < s[:vaddr] + s[:filesz] }
        raise Error, "has #{what} outside its loadable segments" unless segment

        segment[:offset] + (address - segment[:vaddr])
      end

      # The string at `index`, read once however many entries name it, and never more than
      # `limit` bytes, nor more than MAX_NAMES_BYTES for all of them: the search for its end looks
      # no further, so the work is bounded whatever the table holds.
      def string(index, limit: MAX_NAME)
        @names.fetch(index) do
          raise Error, "names a string past the end of its string table" if index >= @strings.bytesize

          window = [limit, @names_budget].min
          stop = @strings.byteslice(index, window + 1).index("\0")
          unless stop
            raise Error, "has an unterminated string in its string table" if index + window + 1 >= @strings.bytesize
            raise Error, "has a name of more than #{limit} bytes" if window == limit

            raise Error, "names more than #{MAX_NAMES_BYTES} bytes of strings"
          end
          @names_budget -= stop + 1
          @names[index] = @strings.byteslice(index, stop).force_encoding(Encoding::UTF_8).scrub
        end
      end

      def read_at(offset, length, what)
        if offset + length > @size
          raise Error, "is truncated: #{what} (#{length} bytes at #{offset}) lies past its end (#{@size} bytes)"
        end
        return "".b if length.zero?

        data = @file.pread(length, offset)
        raise Error, "is truncated: #{what} could not be read whole" unless data.bytesize == length

        data
      end

      def u16(data, at)
        data.unpack1(@byte_order == :little ? "v" : "n", offset: at)
      end

      def u32(data, at)
        data.unpack1(@byte_order == :little ? "V" : "N", offset: at)
      end

      def u64(data, at)
        data.unpack1(@byte_order == :little ? "Q<" : "Q>", offset: at)
      end
    end
  end
end
