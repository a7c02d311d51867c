# frozen_string_literal: true

require "digest"
require "fileutils"

module Megamode
  class Build
    # File-tree operations the build needs, all deterministic: entries are visited in sorted order
    # and times are fixed, so building the same app twice gives the same bytes.
    module Tree
      # 1980-01-02: the earliest time a zip entry can hold in every time zone.
      FIXED_TIME = Time.utc(1980, 1, 2)

      module_function

      # Files kept in an emptied directory: the markers that keep it in version control.
      KEEP = %w[.keep .gitkeep].freeze

      # Copies `from` into `to` (which must not exist): modes, relative symlinks and empty
      # directories survive; sockets, FIFOs and devices are skipped. `skip` holds paths relative to
      # `from` that are left out; below an `emptied` path only directories and KEEP files are
      # copied (tmp/pids stays, yesterday's pid file and caches do not).
      def copy(from, to, skip: [], emptied: [], relative: nil, emptying: false)
        Dir.mkdir(to)
        each_child(from) do |name|
          src = File.join(from, name)
          dst = File.join(to, name)
          path = relative ? "#{relative}/#{name}" : name
          next if skip.include?(path)

          stat = File.lstat(src)
          if stat.directory?
            copy(src, dst, skip: skip, emptied: emptied, relative: path, emptying: emptying || emptied.include?(path))
          elsif emptying && !(stat.file? && KEEP.include?(name))
            next
          elsif stat.symlink? then File.symlink(File.readlink(src), dst)
          elsif stat.file?
            FileUtils.copy_file(src, dst)
            File.chmod(stat.mode & 0o7777, dst)
          end
        end
      end

      # The digest of a tree: names, kinds, executable bits, contents and link targets.
      def digest(root)
        sha = Digest::SHA256.new
        walk(root) do |path, stat|
          relative = path.delete_prefix("#{root}/")
          if stat.symlink? then sha << "l #{relative} #{File.readlink(path)}\0"
          elsif stat.directory? then sha << "d #{relative}\0"
          else
            sha << "f #{relative} #{stat.mode & 0o111} #{stat.size}\0"
            sha.file(path)
          end
        end
        sha.hexdigest
      end

      # Sets every entry's times to FIXED_TIME (links themselves, not what they point to).
      def fix_times(root)
        walk(root) { |path, _| File.lutime(FIXED_TIME, FIXED_TIME, path) }
        File.utime(FIXED_TIME, FIXED_TIME, root)
      end

      # Every entry below `root`, parents first, sorted.
      def walk(root, &block)
        each_child(root) do |name|
          path = File.join(root, name)
          stat = File.lstat(path)
          block.call(path, stat)
          walk(path, &block) if stat.directory?
        end
      end

      def each_child(dir, &block)
        Dir.children(dir).sort.each(&block)
      end
    end
  end
end
