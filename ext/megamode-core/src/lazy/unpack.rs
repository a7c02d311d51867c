//! The boot's side: unpacks the archive into `MEGAMODE_TMP/bundle-<checksum>` (or finds it there
//! already), one thread reading the stream and writer threads creating the files, each file given
//! the copy's time and mode bootsnap's cache keys expect. What an entry may be is `guard`'s to say.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

use super::guard::{corrupt, cut_short, dangling, read_exactly, trailer, unwanted, Guard};
use super::io_error;
use super::manifest::{hex, read_manifest, Hashing, Manifest};
use crate::error::{Error, Result};
use crate::regular_file::{self, Links};

/// A file up to this size is read into memory and handed to a writer thread; a larger one is
/// streamed to disk by the reading thread, so what is held in memory stays bounded (at most this
/// times the writers' queue) whatever the headers claim.
pub(super) const BUFFERED_MAX: u64 = 64 * 1024;
/// How many read files may wait for a writer.
const QUEUE: usize = 256;
/// What errors about the bundle's directory in `MEGAMODE_TMP` begin with.
const UNPACKING: &str = "unpacking the gem bundle";

#[derive(Debug)]
pub struct Unpacked {
    pub root: PathBuf,
    /// Whether this call unpacked it (false: an earlier one had).
    pub unpacked: bool,
    pub elapsed: Duration,
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

pub(super) fn extract(archive_path: &Path, manifest: &Manifest, dest: &Path) -> Result<()> {
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

/// The copy's time (`app_copy::COPY_TIME`), which bootsnap's cache keys for the gems' files depend
/// on; directories keep theirs: bootsnap takes a gem directory's listing as stable.
fn set_copy_time(out: &File, target: &Path) -> Result<()> {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(crate::app_copy::COPY_TIME as u64);
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
    set_copy_time(&out, target)?;
    crate::app_copy::set_copy_mode(target, pending.mode)
}

/// Walks the archive, checking every entry (`guard`), making directories and links itself and
/// handing files to the writers; stops at the first problem, its own or a writer's.
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
    let mut guard = Guard::new(manifest);
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
            guard.long_entry(what, size, slot.is_some())?;
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
        let relative = guard.path(&path_bytes)?;
        let target = dest.join(&relative);
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            tar::EntryType::Directory => {
                Guard::no_data(&relative, kind, size)?;
                fs::create_dir_all(&target).map_err(|e| io_error("create", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                guard.file(&relative, size)?;
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
                Guard::no_data(&relative, kind, size)?;
                let link = guard.link(&relative, link_bytes.as_deref())?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
                }
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| io_error("create", &target, e))?;
            }
            other => return Err(unwanted(&relative, other)),
        }
    }
    if long_name.is_some() || long_link.is_some() {
        return Err(dangling());
    }
    trailer(archive.into_inner(), archive_path)
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
    set_copy_time(&out, target)?;
    crate::app_copy::set_copy_mode(target, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lazy::test_support::*;
    use crate::lazy::{pack, ARCHIVE_NAME, MANIFEST_NAME};

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
