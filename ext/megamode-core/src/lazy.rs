//! Lazy loading: the app's bundled gems travel as one compressed archive and are unpacked into
//! `MEGAMODE_TMP` at boot, so they need not fit in the 250 MB package.
//!
//! The format, for both sides (the build packs, the boot unpacks), is defined here: a tar stream
//! compressed with zstd (`bundle.tar.zst`), and a manifest (`bundle.json`) with the format version,
//! the archive's SHA-256, the unpacked size and the file count. Unpacking refuses a hostile archive
//! (absolute paths, `..`, links leading out, devices, more bytes than declared) and a corrupted one
//! (the checksum, computed while the archive streams), and leaves nothing partial behind.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const FORMAT: u32 = 1;
pub const ARCHIVE_NAME: &str = "bundle.tar.zst";
pub const MANIFEST_NAME: &str = "bundle.json";
/// The level the build packs at: decompression speed hardly depends on it, size does.
const LEVEL: i32 = 10;
/// Per entry, on top of its bytes, for the space check.
const ENTRY_OVERHEAD: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub archive: String,
    pub sha256: String,
    pub unpacked_bytes: u64,
    pub files: u64,
}

#[derive(Debug)]
pub struct Unpacked {
    pub root: PathBuf,
    /// Whether this call unpacked it (false: an earlier one had).
    pub unpacked: bool,
    pub elapsed: Duration,
}

/// Packs the tree at `src` into `out_dir` (archive and manifest) and returns the manifest.
pub fn pack(src: &Path, out_dir: &Path) -> Result<Manifest> {
    fs::create_dir_all(out_dir).map_err(|e| io_error("create", out_dir, e))?;
    let archive_path = out_dir.join(ARCHIVE_NAME);
    let file = File::create(&archive_path).map_err(|e| io_error("create", &archive_path, e))?;
    let hashing = Hashing::new(io::BufWriter::new(file));
    let encoder =
        zstd::Encoder::new(hashing, LEVEL).map_err(|e| io_error("compress", &archive_path, e))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    // No times or owners: the same gems give the same archive, so a rebuild is byte-identical.
    builder.mode(tar::HeaderMode::Deterministic);
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut entries = Vec::new();
    collect(src, src, &mut entries)?;
    for relative in entries {
        let path = src.join(&relative);
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error("read", &path, e))?;
        if meta.is_file() {
            bytes += meta.len();
            files += 1;
        }
        builder
            .append_path_with_name(&path, &relative)
            .map_err(|e| io_error("pack", &path, e))?;
    }
    let encoder = builder
        .into_inner()
        .map_err(|e| io_error("pack", &archive_path, e))?;
    let mut hashing = encoder
        .finish()
        .map_err(|e| io_error("compress", &archive_path, e))?;
    hashing
        .flush()
        .map_err(|e| io_error("write", &archive_path, e))?;
    let manifest = Manifest {
        format: FORMAT,
        archive: ARCHIVE_NAME.to_string(),
        sha256: hex(&hashing.hasher.finalize()),
        unpacked_bytes: bytes,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let manifest_path = out_dir.join(MANIFEST_NAME);
    fs::write(&manifest_path, json).map_err(|e| io_error("write", &manifest_path, e))?;
    Ok(manifest)
}

/// Every entry below `dir`, relative to `root`, parents first, in a stable order.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_error("read", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in names {
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let is_dir = fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        out.push(relative);
        if is_dir {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read(path).map_err(|e| io_error("read", path, e))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        Error::boot(format!(
            "the gem bundle's manifest {} is not valid: {e}",
            path.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(Error::boot(format!(
            "the gem bundle {} has format {}, this megamode reads format {FORMAT}: rebuild the package \
             with this version of megamode",
            path.display(),
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Unpacks the archive the manifest at `manifest_path` describes into `tmp/bundle-<checksum>`, or
/// finds it unpacked already.
pub fn unpack(manifest_path: &Path, tmp: &Path) -> Result<Unpacked> {
    let started = Instant::now();
    let manifest = read_manifest(manifest_path)?;
    let archive = manifest_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&manifest.archive);
    let short = manifest.sha256.get(..16).unwrap_or(&manifest.sha256);
    let root = tmp.join(format!("bundle-{short}"));
    if root.is_dir() {
        return Ok(Unpacked {
            root,
            unpacked: false,
            elapsed: started.elapsed(),
        });
    }
    fs::create_dir_all(tmp).map_err(|e| io_error("create", tmp, e))?;
    crate::stage::remove_older_copies(tmp, "bundle-", &root);
    crate::stage::check_space(
        "unpacking the gem bundle",
        manifest.unpacked_bytes + manifest.files * ENTRY_OVERHEAD,
        crate::stage::free_space(tmp)?,
        tmp,
    )?;
    crate::stage::install(&root, |partial| extract(&archive, &manifest, partial))?;
    Ok(Unpacked {
        root,
        unpacked: true,
        elapsed: started.elapsed(),
    })
}

/// A file read out of the archive, waiting to be written by a writer thread.
struct Pending {
    target: PathBuf,
    mode: u32,
    data: Vec<u8>,
}

/// Decompressing and parsing the stream is one thread's work; creating files is the rest, so the
/// files go to writer threads, one per spare core (Lambda gives more cores with more memory).
fn writers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .clamp(1, 8)
}

fn extract(archive_path: &Path, manifest: &Manifest, dest: &Path) -> Result<()> {
    let file = File::open(archive_path).map_err(|e| io_error("open", archive_path, e))?;
    let mut hashing = Hashing::new(BufReader::with_capacity(256 * 1024, file));
    fs::create_dir(dest).map_err(|e| io_error("create", dest, e))?;
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let (sender, receiver) = mpsc::sync_channel::<Pending>(256);
    let receiver = Mutex::new(receiver);
    let read = std::thread::scope(|scope| {
        for _ in 0..writers() {
            scope.spawn(|| write_files(&receiver, &failed));
        }
        let read = read_entries(&mut hashing, archive_path, manifest, dest, &sender, &failed);
        drop(sender);
        read
    });
    read?;
    if let Some(error) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| corrupt(archive_path, e))?;
    let actual = hex(&hashing.hasher.finalize());
    if actual != manifest.sha256 {
        return Err(Error::boot(format!(
            "the gem bundle {} is corrupted: its SHA-256 is {actual}, the manifest says {}; rebuild \
             and redeploy the package",
            archive_path.display(),
            manifest.sha256
        )));
    }
    Ok(())
}

fn write_files(receiver: &Mutex<mpsc::Receiver<Pending>>, failed: &Mutex<Option<Error>>) {
    loop {
        let next = receiver.lock().map(|r| r.recv());
        let Ok(Ok(pending)) = next else { return };
        if let Err(error) = write_file(&pending) {
            let mut slot = failed.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(error);
            return;
        }
    }
}

fn write_file(pending: &Pending) -> Result<()> {
    let target = &pending.target;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let mut out = File::create(target).map_err(|e| io_error("create", target, e))?;
    out.write_all(&pending.data)
        .map_err(|e| io_error("write", target, e))?;
    fs::set_permissions(target, fs::Permissions::from_mode(pending.mode & 0o777))
        .map_err(|e| io_error("set the mode of", target, e))
}

/// Walks the archive, checking every entry, making directories and links itself and handing files
/// to the writers; stops at the first problem, its own or a writer's.
fn read_entries<R: Read>(
    source: R,
    archive_path: &Path,
    manifest: &Manifest,
    dest: &Path,
    files: &mpsc::SyncSender<Pending>,
    failed: &Mutex<Option<Error>>,
) -> Result<()> {
    let decoder = zstd::Decoder::new(source).map_err(|e| corrupt(archive_path, e))?;
    let mut archive = tar::Archive::new(decoder);
    let mut written = 0u64;
    let mut seen = HashSet::new();
    let mut links = HashSet::new();
    for entry in archive.entries().map_err(|e| corrupt(archive_path, e))? {
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            return Ok(());
        }
        let mut entry = entry.map_err(|e| corrupt(archive_path, e))?;
        let relative = safe_path(&entry.path_bytes())?;
        through_no_link(&relative, &links)?;
        if !seen.insert(relative.clone()) {
            return Err(hostile(format!(
                "{} appears twice in it",
                relative.display()
            )));
        }
        let target = dest.join(&relative);
        let mode = entry.header().mode().unwrap_or(0o644);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(|e| io_error("create", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                written += entry.size();
                if written > manifest.unpacked_bytes {
                    return Err(hostile(format!(
                        "it holds more than the {} bytes its manifest declares",
                        manifest.unpacked_bytes
                    )));
                }
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| corrupt(archive_path, e))?;
                let pending = Pending { target, mode, data };
                if files.send(pending).is_err() {
                    return Ok(());
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| corrupt(archive_path, e))?
                    .ok_or_else(|| {
                        hostile(format!("the link {} has no target", relative.display()))
                    })?;
                inside(&relative, &link)?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
                }
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| io_error("create", &target, e))?;
                links.insert(relative);
            }
            other => {
                return Err(hostile(format!(
                    "{} is a {other:?} entry, which a gem bundle has no use for (hard links, devices and FIFOs are refused)",
                    relative.display()
                )))
            }
        }
    }
    // The rest of the stream (tar's end blocks, zstd's frame end) still counts for the checksum.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(archive_path, e))?;
    Ok(())
}

/// Refuses an entry whose path goes through a link the archive made: each link stays inside on its
/// own, but a chain of them (`a -> .`, then `a/b -> ..`) can lead out, so nothing is written
/// through one.
fn through_no_link(relative: &Path, links: &HashSet<PathBuf>) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    for parent in relative.ancestors().skip(1) {
        if links.contains(parent) {
            return Err(hostile(format!(
                "{} would be written through the link {}",
                relative.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// A relative path with no `..`, no root and no prefix: one that stays inside the target.
fn safe_path(bytes: &[u8]) -> Result<PathBuf> {
    let path = Path::new(std::ffi::OsStr::from_bytes(bytes));
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => {
                return Err(hostile(format!(
                    "the entry {} would be written outside the bundle",
                    path.display()
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(hostile("an entry has an empty path".to_string()));
    }
    Ok(out)
}

/// Whether a symlink at `at` (relative to the bundle) pointing to `link` stays inside the bundle.
fn inside(at: &Path, link: &Path) -> Result<()> {
    let escape = || {
        hostile(format!(
            "the link {} points to {}, outside the bundle",
            at.display(),
            link.display()
        ))
    };
    if link.is_absolute() {
        return Err(escape());
    }
    let mut depth: i64 = at.components().count() as i64 - 1;
    for component in link.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return Err(escape()),
        }
        if depth < 0 {
            return Err(escape());
        }
    }
    Ok(())
}

fn hostile(why: String) -> Error {
    Error::boot(format!("the gem bundle was refused: {why}"))
}

fn corrupt(path: &Path, error: io::Error) -> Error {
    Error::boot(format!(
        "the gem bundle {} cannot be read ({error}): it is corrupted or not a megamode bundle; rebuild \
         and redeploy the package",
        path.display()
    ))
}

fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    Error::boot(format!(
        "the gem bundle: cannot {action} {}: {error}",
        path.display()
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes what passes through, either way.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("megamode-lazy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A small vendor/bundle-like tree.
    fn bundle(root: &Path) -> PathBuf {
        let src = root.join("vendor/bundle");
        let gem = src.join("ruby/3.3.0/gems/hello-1.0/lib");
        fs::create_dir_all(&gem).unwrap();
        fs::create_dir_all(src.join("ruby/3.3.0/bin")).unwrap();
        fs::create_dir_all(src.join("ruby/3.3.0/empty")).unwrap();
        fs::write(gem.join("hello.rb"), "module Hello; end\n").unwrap();
        fs::write(src.join("ruby/3.3.0/bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            src.join("ruby/3.3.0/bin/hello"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../gems/hello-1.0/lib/hello.rb",
            src.join("ruby/3.3.0/bin/hello.rb"),
        )
        .unwrap();
        src
    }

    fn pack_to(src: &Path, package: &Path) -> PathBuf {
        pack(src, package).unwrap();
        package.join(MANIFEST_NAME)
    }

    #[test]
    fn a_packed_bundle_unpacks_to_the_same_tree_once() {
        let root = scratch("roundtrip");
        let src = bundle(&root);
        let manifest = pack(&src, &root.join("package")).unwrap();
        assert_eq!(manifest.files, 2);
        assert_eq!(manifest.format, FORMAT);
        let tmp = root.join("tmp");
        let out = unpack(&root.join("package").join(MANIFEST_NAME), &tmp).unwrap();
        assert!(out.unpacked);
        let r = &out.root;
        assert_eq!(
            fs::read_to_string(r.join("ruby/3.3.0/gems/hello-1.0/lib/hello.rb")).unwrap(),
            "module Hello; end\n"
        );
        assert_eq!(
            fs::metadata(r.join("ruby/3.3.0/bin/hello"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_to_string(r.join("ruby/3.3.0/bin/hello.rb")).unwrap(),
            "module Hello; end\n"
        );
        assert!(r.join("ruby/3.3.0/empty").is_dir());
        let again = unpack(&root.join("package").join(MANIFEST_NAME), &tmp).unwrap();
        assert!(!again.unpacked);
        // A new package's bundle replaces the old one.
        fs::write(src.join("ruby/3.3.0/new.rb"), "new").unwrap();
        let newer = unpack(&pack_to(&src, &root.join("package2")), &tmp).unwrap();
        assert!(newer.unpacked && newer.root != out.root);
        assert!(!out.root.exists(), "the old package's bundle is removed");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_corrupted_archive_is_refused_and_leaves_nothing() {
        let root = scratch("corrupt");
        let src = bundle(&root);
        let package = root.join("package");
        pack(&src, &package).unwrap();
        let archive = package.join(ARCHIVE_NAME);
        let mut bytes = fs::read(&archive).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&archive, bytes).unwrap();
        let tmp = root.join("tmp");
        let err = unpack(&package.join(MANIFEST_NAME), &tmp).unwrap_err();
        assert!(err.message.contains("corrupted"), "{err}");
        assert_eq!(
            fs::read_dir(&tmp).unwrap().count(),
            0,
            "nothing partial is left"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// One raw tar entry: name, type, link target, data.
    type RawEntry<'a> = (&'a [u8], tar::EntryType, Option<&'a str>, &'a [u8]);

    /// An archive with the entries as given (unchecked, as an attacker would write them), and its
    /// manifest declaring `declared` bytes.
    fn hostile_archive(root: &Path, entries: &[RawEntry], declared: u64) -> PathBuf {
        let package = root.join("package");
        fs::create_dir_all(&package).unwrap();
        let mut tar_bytes = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut tar_bytes);
            for (name, kind, link, data) in entries {
                let mut header = tar::Header::new_gnu();
                header.as_old_mut().name[..name.len()].copy_from_slice(name);
                header.set_entry_type(*kind);
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                if let Some(link) = link {
                    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
                header.set_cksum();
                builder.append(&header, *data).unwrap();
            }
            builder.finish().unwrap();
        }
        let compressed = zstd::encode_all(&tar_bytes[..], 3).unwrap();
        fs::write(package.join(ARCHIVE_NAME), &compressed).unwrap();
        let manifest = Manifest {
            format: FORMAT,
            archive: ARCHIVE_NAME.into(),
            sha256: hex(&Sha256::digest(&compressed)),
            unpacked_bytes: declared,
            files: entries.len() as u64,
        };
        fs::write(
            package.join(MANIFEST_NAME),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        package.join(MANIFEST_NAME)
    }

    fn hostile_package(
        root: &Path,
        name: &[u8],
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
        declared: u64,
    ) -> PathBuf {
        hostile_archive(root, &[(name, kind, link, data)], declared)
    }

    #[test]
    fn a_chain_of_links_leading_out_and_a_repeated_entry_are_refused() {
        use tar::EntryType::*;
        let chain: [RawEntry; 3] = [
            (b"a", Symlink, Some("."), b""),
            (b"a/b", Symlink, Some(".."), b""),
            (b"a/b/evil", Regular, None, b"x"),
        ];
        let twice: [RawEntry; 2] = [(b"f", Regular, None, b"x"), (b"f", Regular, None, b"y")];
        for (entries, expected) in [
            (&chain[..], "through the link a"),
            (&twice[..], "appears twice"),
        ] {
            let root = scratch("chain");
            let manifest = hostile_archive(&root, entries, 10);
            let tmp = root.join("tmp");
            let err = unpack(&manifest, &tmp).unwrap_err();
            assert!(err.message.contains(expected), "{err}");
            assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
            assert!(!root.join("evil").exists() && !root.join("package/evil").exists());
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn hostile_archives_are_refused_and_leave_nothing() {
        use tar::EntryType::*;
        // name, type, link target, data, declared size, what the error must say
        type Case<'a> = (
            &'a [u8],
            tar::EntryType,
            Option<&'a str>,
            &'a [u8],
            u64,
            &'a str,
        );
        let cases: [Case; 7] = [
            (b"/etc/evil", Regular, None, b"x", 10, "outside the bundle"),
            (b"../evil", Regular, None, b"x", 10, "outside the bundle"),
            (
                b"a/../../evil",
                Regular,
                None,
                b"x",
                10,
                "outside the bundle",
            ),
            (
                b"link",
                Symlink,
                Some("/etc/passwd"),
                b"",
                10,
                "outside the bundle",
            ),
            (
                b"dir/link",
                Symlink,
                Some("../../etc"),
                b"",
                10,
                "outside the bundle",
            ),
            (b"hard", Link, Some("/etc/passwd"), b"", 10, "refused"),
            (
                b"big",
                Regular,
                None,
                &[7u8; 100],
                10,
                "more than the 10 bytes",
            ),
        ];
        for (name, kind, link, data, declared, expected) in cases {
            let root = scratch("hostile");
            let manifest = hostile_package(&root, name, kind, link, data, declared);
            let tmp = root.join("tmp");
            let err = unpack(&manifest, &tmp).unwrap_err();
            let shown = String::from_utf8_lossy(name);
            assert!(err.message.contains("refused"), "{shown}: {err}");
            assert!(err.message.contains(expected), "{shown}: {err}");
            assert_eq!(
                fs::read_dir(&tmp).unwrap().count(),
                0,
                "{shown}: nothing left"
            );
            assert!(!Path::new("/etc/evil").exists());
            fs::remove_dir_all(&root).unwrap();
        }
        let root = scratch("device");
        let manifest = hostile_package(&root, b"null", Char, None, b"", 10);
        let err = unpack(&manifest, &root.join("tmp")).unwrap_err();
        assert!(err.message.contains("Char"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_manifest_of_another_format_says_to_rebuild() {
        let root = scratch("format");
        let path = root.join(MANIFEST_NAME);
        fs::write(
            &path,
            r#"{"format": 9, "archive": "x", "sha256": "", "unpacked_bytes": 0, "files": 0}"#,
        )
        .unwrap();
        let err = read_manifest(&path).unwrap_err();
        assert!(
            err.message.contains("format 9") && err.message.contains("rebuild"),
            "{err}"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
