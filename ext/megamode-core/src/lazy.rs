//! Lazy loading: the app's bundled gems travel as one compressed archive and are unpacked into
//! `MEGAMODE_TMP` at boot, so they need not fit in the 250 MB package.
//!
//! The format, for both sides (the build packs, the boot unpacks), is defined here: a tar stream
//! compressed with zstd (`bundle.tar.zst`), and a manifest (`bundle.json`) with the format version,
//! the archive's SHA-256, the unpacked size and the file count. Unpacking refuses a hostile archive
//! (absolute paths, `..`, links leading out, devices, more bytes than declared) and a corrupted one
//! (the checksum, computed while the archive streams), and leaves nothing partial behind.
//!
//! Every size in the manifest and in the tar headers is the archive's word, not a fact: sums of
//! them are checked, and no buffer is sized by one beyond a small bound, so a manifest or a header
//! claiming 2^64 bytes is an error that names it, never an overflow or an allocation that aborts.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::regular_file::{self, Links};

pub const FORMAT: u32 = 1;
pub const ARCHIVE_NAME: &str = "bundle.tar.zst";
pub const MANIFEST_NAME: &str = "bundle.json";
/// The level the build packs at: decompression speed hardly depends on it, size does.
const LEVEL: i32 = 10;
/// Per entry, on top of its bytes, for the space check.
const ENTRY_OVERHEAD: u64 = 4096;
/// More than any gem bundle, or any disk it could go to (1 PiB): a manifest claiming more is
/// refused as it is read, which keeps every sum of its sizes far from overflowing.
const PLAUSIBLE_BYTES: u64 = 1 << 50;
/// A file up to this size is read into memory and handed to a writer thread; a larger one is
/// streamed to disk by the reading thread, so what is held in memory stays bounded (at most this
/// times the writers' queue) whatever the headers claim.
const BUFFERED_MAX: u64 = 64 * 1024;
/// How many read files may wait for a writer.
const QUEUE: usize = 256;
/// The longest path a GNU long-name or long-link entry may carry (Linux's PATH_MAX).
const LONG_NAME_MAX: u64 = 4096;
/// What may follow tar's end marker in the stream (other tars pad to a 10 KB record).
const TRAILER_MAX: u64 = 1024 * 1024;
/// The most bytes read from a manifest: the build writes a few hundred.
const MANIFEST_MAX: u64 = 64 * 1024;
/// What errors about the bundle's directory in `MEGAMODE_TMP` begin with.
const UNPACKING: &str = "unpacking the gem bundle";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub archive: String,
    pub sha256: String,
    pub unpacked_bytes: u64,
    pub files: u64,
}

impl Manifest {
    /// The space unpacking takes: the bytes, plus a block per file.
    pub fn space_needed(&self) -> u64 {
        self.unpacked_bytes
            .saturating_add(self.files.saturating_mul(ENTRY_OVERHEAD))
    }
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
            bytes = bytes.checked_add(meta.len()).ok_or_else(|| {
                Error::boot(format!(
                    "the gem bundle: {} makes the tree larger than 2^64 bytes",
                    path.display()
                ))
            })?;
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
    // Followed when a link: MEGAMODE_BUNDLE may name one. What is read is a regular file.
    let text = regular_file::read(path, Links::Follow, MANIFEST_MAX).map_err(|why| {
        Error::boot(format!(
            "the gem bundle's manifest {} {why}; rebuild and redeploy the package, or set \
             MEGAMODE_BUNDLE to the bundle.json megamode build wrote",
            path.display()
        ))
    })?;
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
    check_manifest(&manifest).map_err(|why| {
        Error::boot(format!(
            "the gem bundle's manifest {} was refused: {why}; rebuild and redeploy the package",
            path.display()
        ))
    })?;
    Ok(manifest)
}

/// What is wrong with a manifest's fields, each named: the archive must be a file beside the
/// manifest, the checksum a SHA-256 (it also names the directory the bundle goes to), and the
/// sizes within reach of a disk.
fn check_manifest(manifest: &Manifest) -> std::result::Result<(), String> {
    let archive = Path::new(&manifest.archive);
    let mut parts = archive.components();
    if !matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    ) {
        return Err(format!(
            "archive is {:?}, not the name of a file beside the manifest",
            manifest.archive
        ));
    }
    let sha = &manifest.sha256;
    if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "sha256 is {sha:?}, not a SHA-256 (64 lowercase hex digits)"
        ));
    }
    if manifest.unpacked_bytes > PLAUSIBLE_BYTES {
        return Err(format!(
            "unpacked_bytes is {}, more than any disk holds (megamode unpacks at most {PLAUSIBLE_BYTES})",
            manifest.unpacked_bytes
        ));
    }
    let overhead = manifest.files.checked_mul(ENTRY_OVERHEAD);
    if overhead.is_none_or(|o| o > PLAUSIBLE_BYTES) {
        return Err(format!(
            "files is {}, more than any disk holds ({ENTRY_OVERHEAD} bytes each, at most {PLAUSIBLE_BYTES} in all)",
            manifest.files
        ));
    }
    Ok(())
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
    let root = root_of(&manifest, tmp);
    crate::tmp_dir::prepare(tmp)?;
    if crate::tmp_dir::own_dir(&root, UNPACKING)? {
        return Ok(Unpacked {
            root,
            unpacked: false,
            elapsed: started.elapsed(),
        });
    }
    crate::app_copy::remove_older_copies(tmp, "bundle-", &root);
    crate::app_copy::check_space(
        "unpacking the gem bundle",
        manifest.space_needed(),
        crate::app_copy::free_space(tmp)?,
        tmp,
    )?;
    crate::app_copy::install(&root, UNPACKING, |partial| {
        extract(&archive, &manifest, partial)
    })?;
    Ok(Unpacked {
        root,
        unpacked: true,
        elapsed: started.elapsed(),
    })
}

/// Where the bundle the manifest at `manifest_path` describes is (or will be) unpacked under `tmp`.
pub fn root(manifest_path: &Path, tmp: &Path) -> Result<PathBuf> {
    Ok(root_of(&read_manifest(manifest_path)?, tmp))
}

fn root_of(manifest: &Manifest, tmp: &Path) -> PathBuf {
    let short = manifest.sha256.get(..16).unwrap_or(&manifest.sha256);
    tmp.join(format!("bundle-{short}"))
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
    // A FIFO or a device in its place is refused at once, not read from forever; its size is
    // bounded by what the manifest declares, checked as it streams.
    let file = regular_file::open(archive_path, Links::Follow).map_err(|why| {
        Error::boot(format!(
            "the gem bundle {} {why}; rebuild and redeploy the package",
            archive_path.display()
        ))
    })?;
    let mut hashing = Hashing::new(BufReader::with_capacity(256 * 1024, file));
    fs::create_dir(dest).map_err(|e| io_error("create", dest, e))?;
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let (sender, receiver) = mpsc::sync_channel::<Pending>(QUEUE);
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

/// The staged time (`app_copy::STAGED_TIME`), which bootsnap's cache keys for the gems' files depend
/// on; directories keep theirs: bootsnap takes a gem directory's listing as stable.
fn set_staged_time(out: &File, target: &Path) -> Result<()> {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(crate::app_copy::STAGED_TIME as u64);
    out.set_modified(time)
        .map_err(|e| io_error("set the time of", target, e))
}

fn write_file(pending: &Pending) -> Result<()> {
    let target = &pending.target;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let mut out = File::create(target).map_err(|e| io_error("create", target, e))?;
    out.write_all(&pending.data)
        .map_err(|e| io_error("write", target, e))?;
    set_staged_time(&out, target)?;
    crate::app_copy::set_staged_mode(target, pending.mode)
}

/// Walks the archive, checking every entry, making directories and links itself and handing files
/// to the writers; stops at the first problem, its own or a writer's.
///
/// The entries come raw: GNU long-name and long-link entries are read here, up to a path's length,
/// where tar's own handling would read whatever size they claim into memory.
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
    let (mut written, mut file_count) = (0u64, 0u64);
    let mut seen = HashSet::new();
    let mut links = HashSet::new();
    let (mut long_name, mut long_link): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let entries = archive
        .entries()
        .map_err(|e| corrupt(archive_path, e))?
        .raw(true);
    for entry in entries {
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            return Ok(());
        }
        let mut entry = entry.map_err(|e| corrupt(archive_path, e))?;
        let kind = entry.header().entry_type();
        let size = entry.size();
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let (slot, what) = if kind.is_gnu_longname() {
                (&mut long_name, "long name")
            } else {
                (&mut long_link, "long link")
            };
            if size > LONG_NAME_MAX {
                return Err(hostile(format!(
                    "a GNU {what} entry claims {size} bytes, more than the {LONG_NAME_MAX} of a path"
                )));
            }
            if slot.is_some() {
                return Err(hostile(format!("two GNU {what} entries for one entry")));
            }
            let mut bytes = read_exactly(&mut entry, size, archive_path, what)?;
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            *slot = Some(bytes);
            continue;
        }
        let path_bytes = match long_name.take() {
            Some(name) => name,
            None => entry.path_bytes().into_owned(),
        };
        let link_bytes = match long_link.take() {
            Some(link) => Some(link),
            None => entry.link_name_bytes().map(|l| l.into_owned()),
        };
        let relative = safe_path(&path_bytes)?;
        through_no_link(&relative, &links)?;
        if !seen.insert(relative.clone()) {
            return Err(hostile(format!(
                "{} appears twice in it",
                relative.display()
            )));
        }
        let target = dest.join(&relative);
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            tar::EntryType::Directory | tar::EntryType::Symlink if size != 0 => {
                return Err(hostile(format!(
                    "{} is a {kind:?} entry that claims {size} bytes of data",
                    relative.display()
                )));
            }
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(|e| io_error("create", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                written = written
                    .checked_add(size)
                    .filter(|&total| total <= manifest.unpacked_bytes)
                    .ok_or_else(|| {
                        hostile(format!(
                            "{} claims {size} bytes: it holds more than the {} bytes its manifest \
                             declares (unpacked_bytes)",
                            relative.display(),
                            manifest.unpacked_bytes
                        ))
                    })?;
                file_count += 1;
                if file_count > manifest.files {
                    return Err(hostile(format!(
                        "{} is one more file than the {} its manifest declares (files)",
                        relative.display(),
                        manifest.files
                    )));
                }
                if size > BUFFERED_MAX {
                    let shown = relative.display().to_string();
                    stream_file(&mut entry, size, &target, mode, archive_path, &shown)?;
                    continue;
                }
                let shown = relative.display().to_string();
                let data = read_exactly(&mut entry, size, archive_path, &shown)?;
                let pending = Pending { target, mode, data };
                if files.send(pending).is_err() {
                    return Ok(());
                }
            }
            tar::EntryType::Symlink => {
                let link = link_bytes.ok_or_else(|| {
                    hostile(format!("the link {} has no target", relative.display()))
                })?;
                let link = Path::new(std::ffi::OsStr::from_bytes(&link));
                inside(&relative, link)?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
                }
                std::os::unix::fs::symlink(link, &target)
                    .map_err(|e| io_error("create", &target, e))?;
                links.insert(relative);
            }
            other => {
                return Err(hostile(format!(
                    "{} is a {} entry, which a gem bundle has no use for (hard links, devices, FIFOs and PAX headers are refused)",
                    relative.display(),
                    kind_name(other)
                )))
            }
        }
    }
    if long_name.is_some() || long_link.is_some() {
        return Err(hostile(
            "it ends with a GNU long name or link that names no entry".to_string(),
        ));
    }
    // The rest of the stream (tar's end blocks, zstd's frame end) still counts for the checksum;
    // it is padding, so more than a little of it is an archive that is not what it says.
    let rest = archive.into_inner();
    let trailing = io::copy(&mut rest.take(TRAILER_MAX + 1), &mut io::sink())
        .map_err(|e| corrupt(archive_path, e))?;
    if trailing > TRAILER_MAX {
        return Err(hostile(format!(
            "more than {TRAILER_MAX} bytes follow the end of its tar stream"
        )));
    }
    Ok(())
}

/// An entry's `size` bytes (at most `BUFFERED_MAX`, so the buffer's size is bounded whatever the
/// header says); an entry that ends sooner is a cut-short archive.
fn read_exactly(
    entry: &mut impl Read,
    size: u64,
    archive_path: &Path,
    what: &str,
) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size.min(BUFFERED_MAX) as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(archive_path, e))?;
    if data.len() as u64 != size {
        return Err(cut_short(archive_path, what, size, data.len() as u64));
    }
    Ok(data)
}

/// Writes a large file straight from the archive, through a fixed buffer.
fn stream_file(
    entry: &mut impl Read,
    size: u64,
    target: &Path,
    mode: u32,
    archive_path: &Path,
    what: &str,
) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let mut out = File::create(target).map_err(|e| io_error("create", target, e))?;
    let mut source = entry.take(size);
    let mut buffer = vec![0u8; BUFFERED_MAX as usize];
    let mut copied = 0u64;
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(archive_path, e)),
        };
        out.write_all(&buffer[..n])
            .map_err(|e| io_error("write", target, e))?;
        copied += n as u64;
    }
    if copied != size {
        return Err(cut_short(archive_path, what, size, copied));
    }
    set_staged_time(&out, target)?;
    crate::app_copy::set_staged_mode(target, mode)
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
///
/// Its `..` must all come first: they climb from the link's own directory, a real one (nothing is
/// written through a link), so counting them is enough. A `..` after a name could climb back out
/// of a link that name is (made before or after this one), which text alone cannot tell: `s/..`
/// with `s -> ../..` is two levels above `s`'s directory.
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
    let mut named = false;
    for component in link.components() {
        match component {
            Component::ParentDir if named => {
                return Err(hostile(format!(
                    "the link {} points to {}, which climbs back up after a name (that may be a \
                     link leading elsewhere): a link's `..` must come first",
                    at.display(),
                    link.display()
                )))
            }
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            _ => return Err(escape()),
        }
        if depth < 0 {
            return Err(escape());
        }
    }
    Ok(())
}

/// `Char`, `Link`, ...; a type tar has no name for by its letter.
fn kind_name(kind: tar::EntryType) -> String {
    let name = format!("{kind:?}");
    if name.starts_with("__") {
        format!("type {:?}", kind.as_byte() as char)
    } else {
        name
    }
}

fn hostile(why: String) -> Error {
    Error::boot(format!("the gem bundle was refused: {why}"))
}

fn cut_short(path: &Path, what: &str, claimed: u64, got: u64) -> Error {
    Error::boot(format!(
        "the gem bundle {} is cut short: {what} claims {claimed} bytes and has {got}; rebuild and \
         redeploy the package",
        path.display()
    ))
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
    use std::os::unix::fs::PermissionsExt;

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
        // Past tar's 100-byte name field: GNU long-name and long-link entries.
        let deep = src.join(format!("ruby/3.3.0/{}/{}", "d".repeat(90), "n".repeat(60)));
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("long.rb"), "long").unwrap();
        let target = format!("{}/{}/long.rb", "d".repeat(90), "n".repeat(60));
        std::os::unix::fs::symlink(&target, src.join("ruby/3.3.0/long_link.rb")).unwrap();
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
        assert_eq!(manifest.files, 3);
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
        assert_eq!(
            fs::read_to_string(r.join("ruby/3.3.0/long_link.rb")).unwrap(),
            "long"
        );
        // bootsnap's keys for the gems' files: the same time in every environment.
        let mtime = fs::metadata(r.join("ruby/3.3.0/gems/hello-1.0/lib/hello.rb"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime,
            std::time::UNIX_EPOCH + Duration::from_secs(crate::app_copy::STAGED_TIME as u64)
        );
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
    fn a_link_whose_target_climbs_out_through_another_link_is_refused() {
        use tar::EntryType::*;
        // Each target stays inside when read as text, but a/b/s leads to the bundle's root, so
        // `s/../..` from a/b leads two levels above it; in either order of the two links.
        let s: RawEntry = (b"a/b/s", Symlink, Some("../.."), b"");
        let p: RawEntry = (b"a/b/p", Symlink, Some("s/../../x"), b"");
        for entries in [[s, p], [p, s]] {
            let root = scratch("link-through-link");
            let manifest = hostile_archive(&root, &entries, 10);
            let tmp = root.join("tmp");
            let err = unpack(&manifest, &tmp).unwrap_err();
            assert!(
                err.message.contains("the link a/b/p points to s/../../x"),
                "{err}"
            );
            assert_eq!(left_in(&tmp), Vec::<PathBuf>::new());
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
        let manifest = hostile_package(&root, b"odd", tar::EntryType::new(b'Q'), None, b"", 10);
        let err = unpack(&manifest, &root.join("tmp")).unwrap_err();
        assert!(err.message.contains("odd is a type 'Q' entry"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    /// A tar stream written byte by byte, as a hostile packer would: one entry of type `kind`
    /// whose header claims `claimed` bytes (in GNU's base-256 form when octal cannot hold it),
    /// followed by `data` (which may be shorter than claimed) and tar's end.
    fn raw_tar(name: &[u8], kind: u8, claimed: u64, data: &[u8]) -> Vec<u8> {
        let mut out = raw_entry(name, kind, claimed, data);
        out.resize(out.len() + 1024, 0);
        out
    }

    /// One entry of such a stream: its header and its data, padded to a block.
    fn raw_entry(name: &[u8], kind: u8, claimed: u64, data: &[u8]) -> Vec<u8> {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name);
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        if claimed < 0o77777777777 {
            header[124..135].copy_from_slice(format!("{claimed:011o}").as_bytes());
        } else {
            header[124] = 0x80;
            header[128..136].copy_from_slice(&claimed.to_be_bytes());
        }
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = kind;
        header[257..265].copy_from_slice(b"ustar  \0");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = header.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    /// A package whose archive is `tar` (compressed) and whose manifest declares these sizes.
    fn raw_package(root: &Path, tar: &[u8], unpacked_bytes: u64, files: u64) -> PathBuf {
        let package = root.join("package");
        fs::create_dir_all(&package).unwrap();
        let compressed = zstd::encode_all(tar, 3).unwrap();
        fs::write(package.join(ARCHIVE_NAME), &compressed).unwrap();
        let manifest = Manifest {
            format: FORMAT,
            archive: ARCHIVE_NAME.into(),
            sha256: hex(&Sha256::digest(&compressed)),
            unpacked_bytes,
            files,
        };
        let path = package.join(MANIFEST_NAME);
        fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        path
    }

    /// What is left in `tmp` (which may never have been made).
    fn left_in(tmp: &Path) -> Vec<PathBuf> {
        fs::read_dir(tmp)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_manifest_declaring_sizes_no_disk_holds_is_refused_by_name() {
        let tar = raw_tar(b"f", b'0', 1, b"x");
        // Each of these wrapped the space check around to a few KB, which then passed.
        for (unpacked_bytes, files, named) in [
            (u64::MAX - 100, 1, "unpacked_bytes"),
            (u64::MAX, 0, "unpacked_bytes"),
            (1, u64::MAX / 4096 + 1, "files"),
        ] {
            let root = scratch("huge-manifest");
            let manifest = raw_package(&root, &tar, unpacked_bytes, files);
            let tmp = root.join("tmp");
            let err = unpack(&manifest, &tmp).unwrap_err();
            assert!(err.message.contains(named), "{err}");
            assert!(err.message.contains("manifest"), "{err}");
            assert_eq!(left_in(&tmp), Vec::<PathBuf>::new(), "nothing is left");
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn a_tar_entry_claiming_2_pow_62_bytes_is_refused_without_allocating_it() {
        let huge = 1u64 << 62;
        let tar = raw_tar(b"big", b'0', huge, b"only a few bytes");
        let root = scratch("huge-entry");
        let manifest = raw_package(&root, &tar, 1000, 1);
        let tmp = root.join("tmp");
        // Past a space check that let it through, as the wrapped one did: no allocation of
        // 2^62 bytes (which aborted the process), an error naming the entry, nothing partial.
        let package = manifest.parent().unwrap();
        let mut declared = read_manifest(&manifest).unwrap();
        declared.unpacked_bytes = u64::MAX;
        let out = tmp.join("bundle-x");
        fs::create_dir_all(&tmp).unwrap();
        let err = crate::app_copy::install(&out, UNPACKING, |partial| {
            extract(&package.join(ARCHIVE_NAME), &declared, partial)
        })
        .unwrap_err();
        assert!(err.message.contains("big"), "{err}");
        assert_eq!(left_in(&tmp), Vec::<PathBuf>::new(), "nothing is left");
        // As unpack() runs it, with the manifest declaring a plausible size: refused before
        // reading the entry.
        let err = unpack(&manifest, &tmp).unwrap_err();
        assert!(err.message.contains("refused"), "{err}");
        assert!(
            err.message.contains(&format!("big claims {huge} bytes")),
            "{err}"
        );
        assert_eq!(left_in(&tmp), Vec::<PathBuf>::new(), "nothing is left");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn claims_past_what_the_manifest_or_a_path_allows_are_refused_and_leave_nothing() {
        let mut two_files = raw_entry(b"a", b'0', 1, b"x");
        two_files.extend(raw_tar(b"b", b'0', 1, b"y"));
        let mut trailing = raw_tar(b"a", b'0', 1, b"x");
        trailing.resize(trailing.len() + 2 * 1024 * 1024, 0);
        let mut dangling = raw_entry(b"././@LongLink", b'L', 4, b"abc\0");
        dangling.resize(dangling.len() + 1024, 0);
        let cases: [(&str, Vec<u8>, &str); 6] = [
            (
                "a GNU long name of 2^62 bytes (tar would read it all into memory)",
                raw_tar(b"././@LongLink", b'L', 1 << 62, b"name"),
                "long name entry claims 4611686018427387904 bytes",
            ),
            (
                "a long link of 5000 bytes",
                raw_tar(b"././@LongLink", b'K', 5000, &[b'a'; 5000]),
                "long link entry claims 5000 bytes",
            ),
            (
                "a directory with data",
                raw_tar(b"d", b'5', 1 << 40, b""),
                "d is a Directory entry that claims 1099511627776 bytes",
            ),
            (
                "more files than declared",
                two_files,
                "one more file than the 1 its manifest declares",
            ),
            (
                "megabytes after the tar end",
                trailing,
                "bytes follow the end of its tar stream",
            ),
            ("a long name for nothing", dangling, "names no entry"),
        ];
        for (what, tar, expected) in cases {
            let root = scratch("claims");
            let manifest = raw_package(&root, &tar, 10, 1);
            let tmp = root.join("tmp");
            let err = unpack(&manifest, &tmp).unwrap_err();
            assert!(err.message.contains(expected), "{what}: {err}");
            assert_eq!(left_in(&tmp), Vec::<PathBuf>::new(), "{what}: nothing left");
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn a_file_cut_short_is_refused_and_a_large_one_streams_through() {
        let root = scratch("short");
        let tar = raw_tar(b"f", b'0', 100, b"only ten b");
        // The stream ends 5 bytes into the data.
        let manifest = raw_package(&root, &tar[..512 + 5], 100, 1);
        let err = unpack(&manifest, &root.join("tmp")).unwrap_err();
        assert!(err.message.contains("cut short"), "{err}");
        assert_eq!(left_in(&root.join("tmp")), Vec::<PathBuf>::new());
        // Larger than what is read into memory: written straight from the stream, whole.
        let big: Vec<u8> = (0..BUFFERED_MAX * 3 + 7).map(|i| (i % 251) as u8).collect();
        let tar = raw_tar(b"big", b'0', big.len() as u64, &big);
        let manifest = raw_package(&root, &tar, big.len() as u64, 1);
        let out = unpack(&manifest, &root.join("tmp")).unwrap();
        assert_eq!(fs::read(out.root.join("big")).unwrap(), big);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_manifest_naming_an_archive_elsewhere_or_a_checksum_that_is_not_one_is_refused() {
        let root = scratch("manifest-fields");
        let path = root.join(MANIFEST_NAME);
        let sha = "0".repeat(64);
        for (archive, sha256, named) in [
            ("../../etc/passwd", sha.as_str(), "archive"),
            ("/dev/zero", sha.as_str(), "archive"),
            ("", sha.as_str(), "archive"),
            ("bundle.tar.zst", "../../../evil", "sha256"),
            ("bundle.tar.zst", "", "sha256"),
        ] {
            let manifest = Manifest {
                format: FORMAT,
                archive: archive.into(),
                sha256: sha256.into(),
                unpacked_bytes: 1,
                files: 1,
            };
            fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
            let err = unpack(&path, &root.join("tmp")).unwrap_err();
            assert!(err.message.contains(&format!("{named} is")), "{err}");
            assert!(!root.join("tmp").exists());
        }
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

    #[test]
    fn a_manifest_or_archive_that_is_a_fifo_a_device_or_huge_is_refused_without_blocking() {
        use crate::regular_file::tests::{returns, Hostile};
        for hostile in Hostile::ALL {
            let root = scratch(&format!("hostile-{hostile:?}"));
            let package = root.join("package");
            let manifest = pack_to(&bundle(&root), &package);
            let good = fs::read(&manifest).unwrap();
            hostile.plant(&manifest, MANIFEST_MAX);
            let (m, tmp) = (manifest.clone(), root.join("tmp"));
            let err = returns(&format!("a manifest that is {hostile:?}"), move || {
                unpack(&m, &tmp)
            })
            .unwrap_err();
            let said = match hostile {
                Hostile::Fifo => "is a FIFO, not a regular file",
                Hostile::LinkToDevZero => "is a character device, not a regular file",
                Hostile::Large => "has 65537 bytes, more than the 65536",
            };
            assert!(
                err.message.starts_with(&format!(
                    "the gem bundle's manifest {} {said}",
                    manifest.display()
                )),
                "{hostile:?}: {err}"
            );
            assert!(err.message.contains("rebuild and redeploy"), "{err}");

            // The archive it names: a FIFO or a device there is refused, not read forever.
            fs::remove_file(&manifest).unwrap();
            fs::write(&manifest, &good).unwrap();
            if !matches!(hostile, Hostile::Large) {
                let archive = package.join(ARCHIVE_NAME);
                hostile.plant(&archive, 0);
                let (m, tmp) = (manifest.clone(), root.join("tmp"));
                let err = returns(&format!("an archive that is {hostile:?}"), move || {
                    unpack(&m, &tmp)
                })
                .unwrap_err();
                let kind = match hostile {
                    Hostile::Fifo => "a FIFO",
                    _ => "a character device",
                };
                assert!(
                    err.message.starts_with(&format!(
                        "the gem bundle {} is {kind}, not a regular file",
                        archive.display()
                    )),
                    "{hostile:?}: {err}"
                );
                assert_eq!(left_in(&root.join("tmp")), Vec::<PathBuf>::new());
            }
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn a_bundle_directory_another_user_made_or_a_link_in_its_place_is_not_used() {
        use crate::tmp_dir::tests::{can_chown, chown, NOBODY};
        let root = scratch("planted");
        let manifest = pack_to(&bundle(&root), &root.join("package"));
        let tmp = root.join("tmp");
        let target = super::root(&manifest, &tmp).unwrap();
        fs::create_dir_all(&tmp).unwrap();
        let planted = root.join("planted");
        fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&planted, &target).unwrap();
        let err = unpack(&manifest, &tmp).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "unpacking the gem bundle: {} is a symbolic link",
                target.display()
            )),
            "{err}"
        );
        fs::remove_file(&target).unwrap();
        if can_chown() {
            fs::create_dir(&target).unwrap();
            chown(&target, NOBODY);
            let err = unpack(&manifest, &tmp).unwrap_err();
            assert!(
                err.message.starts_with(&format!(
                    "unpacking the gem bundle: {} is a directory of another user's (owner uid \
                     {NOBODY}",
                    target.display()
                )),
                "{err}"
            );
            fs::remove_dir(&target).unwrap();
            assert!(unpack(&manifest, &tmp).unwrap().unpacked);
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
