//! The app's copy: the app becomes a writable copy under `MEGAMODE_TMP`, from which its server
//! runs (`MEGAMODE_COPY_APP`, formerly `MEGAMODE_STAGE`). On Lambda
//! the package is read-only, and Rails writes `tmp/`, `log/` and caches as it boots. (An API
//! Gateway stage is another thing altogether: see `events`.)
//!
//! A full copy, not links: a tree of links to the read-only package would make `__dir__` and
//! `File.realpath` (and so `require_relative`, `Rails.root` and bootsnap's cache keys) point back
//! into the package, and copying is fast enough (BENCHMARKS.md: a 2,000-file, 20 MB app on tmpfs).
//!
//! The copy goes to a temporary name and is renamed into place, so a half-copied app is never used;
//! a copy already there for the same package is used as it is.
//!
//! Every entry of the copy (and of the unpacked gem bundle, see `lazy`) gets one fixed modification
//! time, `COPY_TIME`, whatever time the package's files have (Lambda's unzip decides those). With
//! the path (`app-<build id>`, `bundle-<checksum>`), that is all bootsnap's cache keys depend on, so
//! the cache `megamode build` makes by booting the app at these very paths (see `bootsnap`) is valid
//! here. A fixed time cannot make bootsnap trust a stale entry: a changed app is another build, with
//! another path.

use std::collections::hash_map::DefaultHasher;
use std::ffi::CString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::regular_file::{self, Links, Refusal};

/// Written by the build into the package: what identifies it, so a new package is copied afresh.
pub const BUILD_ID_FILE: &str = ".megamode-build-id";
/// The modification time of every copied file, directory and link: 1980-01-02 UTC, the time the
/// build gives the package's files (zip's epoch, plus a day so no time zone takes it below).
pub const COPY_TIME: i64 = 315_619_200;
/// What every file and directory costs on top of its bytes, for the space check (a tmpfs or ext4
/// block, rounded up).
const ENTRY_OVERHEAD: u64 = 4096;
/// The most bytes read from `BUILD_ID_FILE`: the build writes a few dozen.
const BUILD_ID_MAX: u64 = 4096;
/// What this module's errors begin with.
const COPYING: &str = "copying the app";

#[derive(Debug)]
pub struct AppCopy {
    /// Where the app's server runs from.
    pub root: PathBuf,
    /// Whether this call copied it (false: an earlier one had).
    pub copied: bool,
    pub elapsed: Duration,
    /// What was wrong with the package, for the log: a build id file megamode cannot use.
    pub warning: Option<String>,
}

/// Copies the app at `app` under `tmp`, or finds it copied already.
pub fn make(app: &Path, tmp: &Path) -> Result<AppCopy> {
    make_leaving(app, tmp, |_| Vec::new())
}

/// `make`, where `leave_out`, told where the copy goes, names paths below `app` not to copy (a
/// bootsnap cache that does not fit there).
pub fn make_leaving(
    app: &Path,
    tmp: &Path,
    leave_out: impl FnOnce(&Path) -> Vec<PathBuf>,
) -> Result<AppCopy> {
    make_with(app, tmp, copy_tree, leave_out)
}

type CopyFn = fn(&Path, &Path, &[PathBuf]) -> Result<()>;

fn make_with(
    app: &Path,
    tmp: &Path,
    copy: CopyFn,
    leave_out: impl FnOnce(&Path) -> Vec<PathBuf>,
) -> Result<AppCopy> {
    let started = Instant::now();
    crate::tmp_dir::prepare(tmp)?;
    // A build id file megamode cannot read counts as none: the app's fingerprint names the copy
    // instead, which is as sure to change with the app, and the log says why.
    let (written_id, warning) = match written_build_id(app) {
        Ok(id) => (id, None),
        Err(why) => (None, Some(why)),
    };
    // One walk serves both the fingerprint (when the build wrote no id) and the space check.
    let surveyed = match written_id {
        Some(_) => None,
        None => Some(survey(app)?),
    };
    let id = match (written_id, &surveyed) {
        (Some(id), _) => id,
        (None, Some(s)) => s.fingerprint.clone(),
        (None, None) => String::new(),
    };
    let root = tmp.join(format!("app-{id}"));
    if crate::tmp_dir::own_dir(&root, COPYING)? {
        return Ok(AppCopy {
            root,
            copied: false,
            elapsed: started.elapsed(),
            warning,
        });
    }
    let surveyed = match surveyed {
        Some(s) => s,
        None => survey(app)?,
    };
    remove_older_copies(tmp, "app-", &root);
    check_space(
        "copying the app",
        surveyed
            .bytes
            .saturating_add(surveyed.entries.saturating_mul(ENTRY_OVERHEAD)),
        free_space(tmp)?,
        tmp,
    )?;
    let skip = leave_out(&root);
    install(&root, COPYING, |partial| copy(app, partial, &skip))?;
    Ok(AppCopy {
        root,
        copied: true,
        elapsed: started.elapsed(),
        warning,
    })
}

/// Fills a new directory at `root` through `fill`, which gets a temporary sibling to create and
/// fill, renamed into place only when `fill` succeeded: a half-made directory is never at `root`,
/// and one that failed is removed, also when `fill` panicked. The app's copy and the gem bundle both
/// arrive this way (`what`: "copying the app", for errors).
pub(crate) fn install(
    root: &Path,
    what: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = root.file_name().unwrap_or_default().to_string_lossy();
    let partial = Partial(root.with_file_name(format!(".{name}.{}.partial", std::process::id())));
    let _ = fs::remove_dir_all(&partial.0);
    fill(&partial.0).and_then(|()| match fs::rename(&partial.0, root) {
        Ok(()) => Ok(()),
        // Another process of this user's made the same directory meanwhile: use theirs (only
        // theirs: another user's is refused).
        Err(e) => match crate::tmp_dir::own_dir(root, what)? {
            true => Ok(()),
            false => Err(io_error("rename into place", root, e)),
        },
    })
}

/// A directory being filled: removed when dropped, which after a successful rename finds nothing.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The package's build id, when the build wrote one; why it cannot be used, when the file is not
/// one the build writes (a link, a FIFO, a device, more than `BUILD_ID_MAX` bytes).
fn written_build_id(app: &Path) -> std::result::Result<Option<String>, String> {
    let path = app.join(BUILD_ID_FILE);
    let id = match regular_file::read(&path, Links::Refuse, BUILD_ID_MAX) {
        Ok(bytes) => bytes,
        Err(Refusal::Missing) => return Ok(None),
        Err(why) => {
            return Err(format!(
                "the package's build id {} {why}: the copy is named by a fingerprint of the app's files \
                 instead (megamode build writes it as a small regular file: rebuild the package)",
                path.display()
            ))
        }
    };
    let id: String = String::from_utf8_lossy(&id)
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Ok((!id.is_empty()).then_some(id))
}

struct Survey {
    /// Every entry's path, size and modification time hashed, so that a changed app is never
    /// mistaken for the copied one.
    fingerprint: String,
    bytes: u64,
    entries: u64,
}

fn survey(app: &Path) -> Result<Survey> {
    let mut hasher = DefaultHasher::new();
    app.hash(&mut hasher);
    let (mut bytes, mut entries) = (0u64, 0u64);
    walk(app, &mut |path, meta| {
        path.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.mtime().hash(&mut hasher);
        meta.mtime_nsec().hash(&mut hasher);
        // Sizes are the file system's word: a sparse file can claim nearly 2^64 bytes.
        if meta.is_file() {
            bytes = bytes.saturating_add(meta.len());
        }
        entries += 1;
        Ok(())
    })?;
    Ok(Survey {
        fingerprint: format!("{:016x}", hasher.finish()),
        bytes,
        entries,
    })
}

/// Calls `visit` for every entry below `dir` (not following links), parents before children.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_error("read", dir, e))?
        .collect::<io::Result<_>>()
        .map_err(|e| io_error("read", dir, e))?;
    // The same order every time, so the fingerprint does not depend on the directory's layout.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error("read", &path, e))?;
        visit(&path, &meta)?;
        if meta.is_dir() {
            walk(&path, visit)?;
        }
    }
    Ok(())
}

/// The mode a copied file or directory gets: the package's, less write for the group and others,
/// and less setuid, setgid and sticky. `MEGAMODE_TMP` may be shared (a sticky `/tmp` in a local
/// run), and a package's `0777` directory or `0666` file would let another user change what the
/// server runs; nobody but this user, the server's own, needs to write there.
pub(crate) fn copy_mode(mode: u32) -> u32 {
    mode & 0o755
}

/// Copies `from` to `to` (which must not exist): directories and files with their modes (as
/// `copy_mode` gives them), symlinks as they are (relative ones keep working inside the copy,
/// and one pointing outside still points there); sockets, FIFOs and devices are skipped, and so
/// are the paths in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> Result<()> {
    let meta = fs::metadata(from).map_err(|e| io_error("read", from, e))?;
    fs::create_dir(to).map_err(|e| io_error("create", to, e))?;
    set_copy_mode(to, meta.mode())?;
    for entry in fs::read_dir(from).map_err(|e| io_error("read", from, e))? {
        let entry = entry.map_err(|e| io_error("read", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if skip.contains(&source) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| io_error("read", &source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target, skip)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).map_err(|e| io_error("copy", &source, e))?;
            // `fs::copy` gave it the source's mode; most need no change (an lstat, no chmod).
            let mode = entry
                .metadata()
                .map_err(|e| io_error("read", &source, e))?
                .mode();
            if copy_mode(mode) != mode & 0o7777 {
                set_copy_mode(&target, mode)?;
            }
            set_copy_time(&target)?;
        } else if kind.is_symlink() {
            let link = fs::read_link(&source).map_err(|e| io_error("read the link", &source, e))?;
            std::os::unix::fs::symlink(&link, &target)
                .map_err(|e| io_error("create", &target, e))?;
            set_copy_time(&target)?;
        } else if kind.is_socket()
            || kind.is_fifo()
            || kind.is_block_device()
            || kind.is_char_device()
        {
            continue;
        }
    }
    // Last: creating the entries above changed the directory's time.
    set_copy_time(to)
}

/// Gives `path` (not a link) the copy's form of `mode`.
pub(crate) fn set_copy_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(copy_mode(mode)))
        .map_err(|e| io_error("set the mode of", path, e))
}

/// Gives `path` (a link itself, not what it points to) `COPY_TIME`.
pub(crate) fn set_copy_time(path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_error("name", path, io::ErrorKind::InvalidInput.into()))?;
    let time = libc::timespec {
        tv_sec: COPY_TIME as libc::time_t,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: a NUL-terminated path and two timespecs.
    let status = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if status != 0 {
        return Err(io_error(
            "set the time of",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Removes what an earlier package left under `tmp` with this name prefix (`app-`, `bundle-`), so a
/// new package has the space; `keep` is the current one.
pub(crate) fn remove_older_copies(tmp: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = entry.path();
        if name.to_string_lossy().starts_with(prefix) && path != keep {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

pub(crate) fn free_space(dir: &Path) -> Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::config("MEGAMODE_TMP has a NUL byte"))?;
    // SAFETY: statvfs is plain data, valid when zeroed.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io_error(
            "measure the free space of",
            dir,
            io::Error::last_os_error(),
        ));
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// `what` ("copying the app") needs `needed` bytes in `tmp`, which has `free`.
pub(crate) fn check_space(what: &str, needed: u64, free: u64, tmp: &Path) -> Result<()> {
    if needed <= free {
        return Ok(());
    }
    let mb = |bytes: u64| bytes.div_ceil(1024 * 1024);
    Err(Error::boot(format!(
        "{what} needs {} MB in {} but only {} MB are free: raise the function's ephemeral storage \
         (EphemeralStorage, 512 MB by default, up to 10240 MB) or make the package smaller",
        mb(needed),
        tmp.display(),
        mb(free)
    )))
}

fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    Error::boot(format!(
        "copying the app: cannot {action} {}: {error}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("megamode-copy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn app(root: &Path) -> PathBuf {
        let app = root.join("app");
        fs::create_dir_all(app.join("bin")).unwrap();
        fs::create_dir_all(app.join("tmp/empty")).unwrap();
        fs::create_dir_all(app.join("config")).unwrap();
        fs::write(app.join("config.ru"), "run ->(_) { [200, {}, []] }").unwrap();
        fs::write(app.join("config/settings.yml"), "a: 1").unwrap();
        fs::write(app.join("bin/server"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(app.join("bin/server"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("config/settings.yml", app.join("settings.yml")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", app.join("outside")).unwrap();
        let fifo = CString::new(app.join("a.fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        app
    }

    #[test]
    fn the_copy_keeps_modes_links_and_empty_directories_and_skips_fifos() {
        let root = scratch("copy");
        let app = app(&root);
        let copy = make(&app, &root.join("tmp")).unwrap();
        let s = &copy.root;
        assert!(copy.copied);
        assert_eq!(
            fs::read_to_string(s.join("config.ru")).unwrap(),
            "run ->(_) { [200, {}, []] }"
        );
        assert_eq!(
            fs::metadata(s.join("bin/server"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert!(s.join("tmp/empty").is_dir());
        assert_eq!(
            fs::read_link(s.join("settings.yml")).unwrap(),
            PathBuf::from("config/settings.yml")
        );
        assert_eq!(
            fs::read_to_string(s.join("settings.yml")).unwrap(),
            "a: 1",
            "relative link works inside the copy"
        );
        assert_eq!(
            fs::read_link(s.join("outside")).unwrap(),
            PathBuf::from("/etc/hostname")
        );
        assert!(fs::symlink_metadata(s.join("a.fifo")).is_err());
        for entry in [
            s.clone(),
            s.join("config.ru"),
            s.join("tmp/empty"),
            s.join("outside"),
        ] {
            let meta = fs::symlink_metadata(&entry).unwrap();
            assert_eq!(
                (meta.mtime(), meta.mtime_nsec()),
                (COPY_TIME, 0),
                "{}",
                entry.display()
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_one_but_this_user_can_write_to_the_copy_whatever_the_package_allows() {
        let root = scratch("modes");
        let app = app(&root);
        fs::set_permissions(app.join("config"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(app.join("config.ru"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::set_permissions(app.join("bin/server"), fs::Permissions::from_mode(0o6777)).unwrap();
        fs::set_permissions(app.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let copy = make(&app, &root.join("tmp")).unwrap();
        let mode = |p: &str| fs::metadata(copy.root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(
            [
                mode("config"),
                mode("config.ru"),
                mode("bin/server"),
                mode("tmp")
            ],
            [0o755, 0o644, 0o755, 0o755]
        );
        // What was not too open stays as it was.
        assert_eq!(
            mode("config/settings.yml"),
            fs::metadata(app.join("config/settings.yml"))
                .unwrap()
                .mode()
                & 0o7777
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn what_the_caller_leaves_out_is_not_copied() {
        let root = scratch("leave");
        let app = app(&root);
        let mut told = None;
        let copy = make_leaving(&app, &root.join("tmp"), |at| {
            told = Some(at.to_path_buf());
            vec![app.join("config/settings.yml")]
        })
        .unwrap();
        assert_eq!(told.as_ref(), Some(&copy.root));
        assert!(copy.root.join("config").is_dir());
        assert!(!copy.root.join("config/settings.yml").exists());
        assert!(copy.root.join("config.ru").is_file());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn copying_again_copies_nothing_and_a_new_build_replaces_the_old_copy() {
        let root = scratch("again");
        let app = app(&root);
        let tmp = root.join("tmp");
        let first = make(&app, &tmp).unwrap();
        let again = make(&app, &tmp).unwrap();
        assert!(!again.copied);
        assert_eq!(again.root, first.root);
        fs::write(app.join(BUILD_ID_FILE), "build-2\n").unwrap();
        let second = make(&app, &tmp).unwrap();
        assert!(second.copied);
        assert_eq!(second.root, tmp.join("app-build-2"));
        assert!(!first.root.exists(), "the old package's copy is removed");
        let leftovers: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("app-build-2")]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_failed_copy_leaves_nothing_to_use() {
        let root = scratch("failed");
        let app = app(&root);
        // A copy that gets half way (root reads anything, so a real unreadable file cannot be made).
        fn half_then_fail(from: &Path, to: &Path, _: &[PathBuf]) -> Result<()> {
            fs::create_dir(to).unwrap();
            fs::copy(from.join("config.ru"), to.join("config.ru")).unwrap();
            Err(Error::boot(
                "copying the app: cannot copy config/settings.yml: disk full",
            ))
        }
        let err = make_with(&app, &root.join("tmp"), half_then_fail, |_| Vec::new()).unwrap_err();
        assert!(err.message.contains("disk full"), "{err}");
        let left: Vec<_> = fs::read_dir(root.join("tmp")).unwrap().flatten().collect();
        assert!(
            left.is_empty(),
            "no partial or finished copy is left: {left:?}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_fill_that_panics_leaves_no_partial_directory() {
        let root = scratch("panicked");
        let target = root.join("tmp/app-x");
        fs::create_dir_all(root.join("tmp")).unwrap();
        let panicked = std::panic::catch_unwind(|| {
            install(&target, COPYING, |partial| {
                fs::create_dir(partial).unwrap();
                fs::write(partial.join("half"), "x").unwrap();
                panic!("a bug half way");
            })
        });
        assert!(panicked.is_err());
        let left: Vec<_> = fs::read_dir(root.join("tmp")).unwrap().flatten().collect();
        assert!(left.is_empty(), "nothing is left: {left:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn too_little_space_names_both_numbers_and_the_setting() {
        let err = check_space(
            "copying the app",
            700 * 1024 * 1024,
            300 * 1024 * 1024,
            Path::new("/tmp/megamode"),
        )
        .unwrap_err();
        assert!(
            err.message.contains("copying the app needs 700 MB"),
            "{err}"
        );
        assert!(err.message.contains("only 300 MB are free"), "{err}");
        assert!(err.message.contains("EphemeralStorage"), "{err}");
        assert!(check_space("copying the app", 1, 2, Path::new("/tmp")).is_ok());
    }

    #[test]
    fn a_build_id_that_is_a_fifo_a_device_or_huge_copies_by_fingerprint_and_says_why() {
        use crate::regular_file::tests::{returns, Hostile};
        for hostile in Hostile::ALL {
            let root = scratch(&format!("id-{hostile:?}"));
            let app = app(&root);
            hostile.plant(&app.join(BUILD_ID_FILE), BUILD_ID_MAX);
            let tmp = root.join("tmp");
            let (a, t) = (app.clone(), tmp.clone());
            let copy = returns(
                &format!("copying with a build id that is {hostile:?}"),
                move || make(&a, &t),
            )
            .unwrap();
            assert!(copy.copied);
            let name = copy
                .root
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                name.starts_with("app-") && name.len() == "app-".len() + 16,
                "named by the fingerprint: {name}"
            );
            let warning = copy.warning.expect("a warning for the log");
            assert!(
                warning.starts_with(&format!(
                    "the package's build id {}",
                    app.join(BUILD_ID_FILE).display()
                )),
                "{warning}"
            );
            assert!(warning.contains("rebuild the package"), "{warning}");
            assert!(copy.root.join("config.ru").is_file());
            fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn megamode_tmp_that_is_a_link_is_refused_and_nothing_is_copied_through_it() {
        let root = scratch("tmp-link");
        let app = app(&root);
        fs::write(app.join(BUILD_ID_FILE), "build-1\n").unwrap();
        // What another user would plant: the link, and an app of their own where it leads.
        let planted = root.join("planted");
        fs::create_dir_all(planted.join("app-build-1")).unwrap();
        fs::write(planted.join("app-build-1/config.ru"), "planted").unwrap();
        let tmp = root.join("megamode");
        std::os::unix::fs::symlink(&planted, &tmp).unwrap();
        let err = make(&app, &tmp).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "MEGAMODE_TMP {} is a symbolic link to {}",
                tmp.display(),
                planted.display()
            )),
            "{err}"
        );
        assert!(
            err.message
                .contains("set MEGAMODE_TMP to a directory of your own"),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(&planted).unwrap().count(),
            1,
            "nothing copied there"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_copy_another_user_made_or_a_link_in_its_place_is_not_run() {
        use crate::tmp_dir::tests::{can_chown, chown, NOBODY};
        let root = scratch("planted");
        let app = app(&root);
        fs::write(app.join(BUILD_ID_FILE), "build-1\n").unwrap();
        let tmp = root.join("tmp");
        fs::create_dir(&tmp).unwrap();
        let target = tmp.join("app-build-1");

        let planted = root.join("planted");
        fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&planted, &target).unwrap();
        let err = make(&app, &tmp).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "copying the app: {} is a symbolic link",
                target.display()
            )),
            "{err}"
        );
        fs::remove_file(&target).unwrap();

        if can_chown() {
            fs::create_dir(&target).unwrap();
            fs::write(target.join("config.ru"), "planted").unwrap();
            chown(&target, NOBODY);
            let err = make(&app, &tmp).unwrap_err();
            assert!(
                err.message.starts_with(&format!(
                    "copying the app: {} is a directory of another user's (owner uid {NOBODY}, \
                     this user is uid 0)",
                    target.display()
                )),
                "{err}"
            );
            assert!(
                err.message.contains("remove it, or set MEGAMODE_TMP"),
                "{err}"
            );
            assert_eq!(
                fs::read_to_string(target.join("config.ru")).unwrap(),
                "planted"
            );
            // Once it is gone, the copy is made anew.
            fs::remove_dir_all(&target).unwrap();
            let copy = make(&app, &tmp).unwrap();
            assert!(copy.copied);
            assert_eq!(copy.root, target);
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
