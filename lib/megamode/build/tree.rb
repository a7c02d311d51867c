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

      # Copies `from` into `to` (which must not exist): relative symlinks, empty directories and
      # executable bits survive, and each file gets its package mode (see package_mode), so the
      # build may rewrite a file the app has read-only; sockets, FIFOs and devices are skipped. `skip` holds paths relative to
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
            File.chmod(package_mode(stat), dst)
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

      # The mode an entry has in a package: readable by anyone, writable by its owner only. Lambda
      # runs the function as a user that owns nothing in the task root and needs read access to
      # every file (and search access to every directory), whatever their modes were in the app; a
      # file with an executable bit stays executable, by anyone. Set-id and sticky bits have no use there.
      def package_mode(stat)
        stat.directory? || (stat.mode & 0o111).nonzero? ? 0o755 : 0o644
      end

      # Gives `root` and every entry below it (but links, which have no mode of their own) its
      # package mode, so that what the build wrote under a restrictive umask is readable too.
      def fix_modes(root)
        File.chmod(0o755, root)
        walk(root) { |path, stat| File.chmod(package_mode(stat), path) unless stat.symlink? }
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
