//! `MEGAMODE_TMP`, and what megamode finds in it: used only when no other user could have put it
//! there. megamode runs the app from `MEGAMODE_TMP/app-<build id>` and its gems from
//! `bundle-<checksum>`, and reuses either when it is already there, so whoever can put a directory
//! at such a name chooses the code megamode runs (as root, when megamode runs as root).
//!
//! On Lambda `/tmp` is the function's alone, and megamode creates `/tmp/megamode` itself. A local
//! run copies the app into the machine's `/tmp/megamode`, where another user may have been first. So:
//!
//! - `MEGAMODE_TMP` is created when missing, mode 0700 (nothing in it is for anyone else; the
//!   app's server runs as the same user);
//! - it must be, without following a link at its name, a directory owned by this user or by root,
//!   that no one else can write, or only with the sticky bit (a tmpfs mounted `mode=1777` for
//!   megamode alone, as `megamode invoke --package` mounts as root; there no one can remove or
//!   rename what megamode made);
//! - so must every directory it is in, links resolved, and a link on the way must be this user's
//!   or root's: whoever can rename an entry of a parent can swap `MEGAMODE_TMP` for a directory of
//!   their own between the check and the server's start;
//! - each directory megamode uses in it (`app-*`, `bundle-*`, `home`, `tmp`) must be, again
//!   without following a link, a directory owned by this user: in a sticky directory another user
//!   can still create a name before megamode does.
//!
//! Anything else is refused with an error that names the path and its owner: removing a stranger's
//! directory could remove what another user is running, and copying elsewhere would move the paths
//! a shipped bootsnap cache is made for.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `MEGAMODE_TMP`'s default: where Lambda's `/tmp` is the function's alone, and where the bootsnap
/// cache a package ships is made for.
pub const DEFAULT: &str = "/tmp/megamode";

/// `MEGAMODE_TMP` when it is not set: `DEFAULT`, unless this user cannot have it, when it is another
/// user's, or root's without the sticky bit (on a machine where someone, or `sudo`, ran megamode
/// first: root makes it 0700). Then `DEFAULT-<uid>`, this user's own, so that a local run works
/// instead of failing on the other user's directory (a shipped bootsnap cache, made for `DEFAULT`,
/// is left out there, as the cold start line says). On Lambda `/tmp` is the function's: always
/// `DEFAULT`. What is chosen is checked by `prepare` like any `MEGAMODE_TMP`.
pub fn default_dir() -> PathBuf {
    default_for(Path::new(DEFAULT), euid())
}

fn default_for(shared: &Path, me: u32) -> PathBuf {
    let usable = match fs::symlink_metadata(shared) {
        Err(_) => true,
        Ok(meta) => {
            meta.is_dir() && (meta.uid() == me || (meta.uid() == 0 && meta.mode() & STICKY != 0))
        }
    };
    if usable {
        shared.to_path_buf()
    } else {
        let mut own = shared.as_os_str().to_owned();
        own.push(format!("-{me}"));
        PathBuf::from(own)
    }
}

/// Creates `MEGAMODE_TMP` (`tmp`) when it is missing, and checks it is safe to copy the app into.
pub fn prepare(tmp: &Path) -> Result<()> {
    let parent = tmp
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| cannot_create(tmp, e))?;
    check_parents(tmp, parent)?;
    match fs::DirBuilder::new().mode(0o700).create(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(cannot_create(tmp, e)),
    }
    let meta = fs::symlink_metadata(tmp).map_err(|e| cannot_create(tmp, e))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(tmp)
            .map(|t| format!(" to {}", t.display()))
            .unwrap_or_default();
        return Err(Error::boot(format!(
            "MEGAMODE_TMP {} is a symbolic link{target} (made by uid {}), which megamode does not \
             follow: whoever can change it chooses the code megamode runs; remove it, or {FIX}",
            tmp.display(),
            meta.uid()
        )));
    }
    if !meta.is_dir() {
        return Err(Error::boot(format!(
            "MEGAMODE_TMP {} is not a directory: {FIX}",
            tmp.display()
        )));
    }
    if let Some(why) = open_to_others(&meta) {
        let remedy = match why {
            Opening::Owner(_) => format!("{FIX} (or remove it, if it is a leftover)"),
            Opening::Writable(_) => format!("chmod go-w it, or {FIX}"),
        };
        return Err(Error::boot(format!(
            "MEGAMODE_TMP {} {why}: that user could put code there for megamode to run; {remedy}",
            tmp.display()
        )));
    }
    Ok(())
}

/// What the errors about `MEGAMODE_TMP` advise.
const FIX: &str = "set MEGAMODE_TMP to a directory of your own";

/// How another user could change what is in a directory.
enum Opening {
    /// It is theirs (not this user's, nor root's).
    Owner(u32),
    /// They can write it (the mode), and nothing stops them renaming what is in it.
    Writable(u32),
}

impl std::fmt::Display for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opening::Owner(uid) => write!(
                f,
                "belongs to uid {uid}, not to this user (uid {}) nor to root",
                euid()
            ),
            Opening::Writable(mode) => write!(
                f,
                "can be written by other users (mode {:04o}, without the sticky bit)",
                mode & 0o7777
            ),
        }
    }
}

/// How another user could change what is in the directory `meta` describes; `None` when only this
/// user and root can: it is theirs, and others cannot write it or only with the sticky bit.
fn open_to_others(meta: &fs::Metadata) -> Option<Opening> {
    if meta.uid() != euid() && meta.uid() != 0 {
        return Some(Opening::Owner(meta.uid()));
    }
    let mode = meta.mode();
    (mode & 0o022 != 0 && mode & STICKY == 0).then_some(Opening::Writable(mode))
}

/// Checks that no other user can change which directory `tmp` is: each directory it is in (as
/// the path reaches it through `parent`, links resolved) is closed to others (`open_to_others`),
/// and each link on the way is this user's or root's (in a sticky directory only a link's owner
/// can replace it, and it can point anywhere).
fn check_parents(tmp: &Path, parent: &Path) -> Result<()> {
    let mut checked = std::collections::HashSet::new();
    for prefix in parent.ancestors() {
        let prefix = if prefix.as_os_str().is_empty() {
            Path::new(".")
        } else {
            prefix
        };
        let link = fs::symlink_metadata(prefix).map_err(|e| cannot_create(tmp, e))?;
        if link.file_type().is_symlink() && link.uid() != euid() && link.uid() != 0 {
            return Err(Error::boot(format!(
                "MEGAMODE_TMP {} goes through {}, a symbolic link of uid {}, who can point it \
                 elsewhere at any time and so choose the code megamode runs; {FIX}",
                tmp.display(),
                prefix.display(),
                link.uid()
            )));
        }
        let real = fs::canonicalize(prefix).map_err(|e| cannot_create(tmp, e))?;
        for dir in real.ancestors() {
            if !checked.insert(dir.to_path_buf()) {
                continue;
            }
            let meta = fs::metadata(dir).map_err(|e| cannot_create(tmp, e))?;
            if let Some(why) = open_to_others(&meta) {
                return Err(Error::boot(format!(
                    "MEGAMODE_TMP {} is inside {}, which {why}: that user could replace \
                     MEGAMODE_TMP with a directory of their own, and so choose the code megamode \
                     runs; {FIX}",
                    tmp.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether `dir` (a directory megamode uses in `MEGAMODE_TMP`, for `what`: "copying the app") is
/// there and this user's; an error when something else is at its name: a link, a file, or a
/// directory another user made.
pub fn own_dir(dir: &Path, what: &str) -> Result<bool> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::boot(format!(
                "{what}: cannot read {}: {e}",
                dir.display()
            )))
        }
    };
    let me = euid();
    let kind = if meta.file_type().is_symlink() {
        "a symbolic link"
    } else if !meta.is_dir() {
        "not a directory"
    } else if meta.uid() != me {
        "a directory of another user's"
    } else {
        return Ok(true);
    };
    Err(Error::boot(format!(
        "{what}: {} is {kind} (owner uid {}, this user is uid {me}), so megamode does not use it: \
         only what megamode made there itself is run; remove it, or set MEGAMODE_TMP to a directory \
         of your own",
        dir.display(),
        meta.uid()
    )))
}

/// `own_dir`, creating the directory when it is missing.
pub fn own_dir_created(dir: &Path, what: &str) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::boot(format!(
                "{what}: cannot create {} ({e}); set MEGAMODE_TMP to a writable directory",
                dir.display()
            )))
        }
    }
    own_dir(dir, what).map(|_| ())
}

/// The sticky bit in `MetadataExt::mode`'s u32: libc's `S_ISVTX` is a `mode_t`, u32 on Linux (the
/// cast clippy sees there) but u16 on macOS.
#[allow(clippy::unnecessary_cast)]
const STICKY: u32 = libc::S_ISVTX as u32;

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() }
}

fn cannot_create(tmp: &Path, e: io::Error) -> Error {
    Error::boot(format!(
        "cannot create MEGAMODE_TMP {} ({e}); set MEGAMODE_TMP to a writable directory",
        tmp.display()
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// Another user, for planting what such a user would (tests run as root: `chown` works).
    pub(crate) const NOBODY: u32 = 65534;

    /// Whether this process can make files owned by another user; tests that need it say so and
    /// stop when it cannot.
    pub(crate) fn can_chown() -> bool {
        let root = euid() == 0;
        if !root {
            eprintln!("skipped: planting another user's directory needs root");
        }
        root
    }

    pub(crate) fn chown(path: &Path, uid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    }

    #[test]
    fn the_default_is_shared_unless_another_user_was_first() {
        let root = scratch("default");
        let shared = root.join("megamode");
        let (me, other) = (euid(), euid() + 1);
        assert_eq!(
            default_for(&shared, me),
            shared,
            "missing: made by this user"
        );
        fs::create_dir(&shared).unwrap();
        assert_eq!(default_for(&shared, me), shared, "this user's own");
        let own = root.join(format!("megamode-{other}"));
        assert_eq!(default_for(&shared, other), own, "someone else's");
        if me == 0 {
            fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
            assert_eq!(
                default_for(&shared, other),
                shared,
                "root's and sticky (a tmpfs mounted for megamode): shared, each entry checked"
            );
        }
        fs::remove_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&root, &shared).unwrap();
        assert_eq!(
            default_for(&shared, me),
            root.join(format!("megamode-{me}")),
            "a link: not followed"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("megamode-tmpdir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn megamode_tmp_is_made_private_and_a_link_or_a_shared_directory_is_refused() {
        let root = scratch("prepare");
        let tmp = root.join("a/megamode");
        prepare(&tmp).unwrap();
        let mode = fs::metadata(&tmp).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "made for this user alone");
        prepare(&tmp).unwrap();

        let elsewhere = root.join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = prepare(&link).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "MEGAMODE_TMP {} is a symbolic link to {}",
                link.display(),
                elsewhere.display()
            )),
            "{err}"
        );
        assert!(
            err.message
                .contains("set MEGAMODE_TMP to a directory of your own"),
            "{err}"
        );

        let shared = root.join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&shared).unwrap_err();
        assert!(
            err.message.contains("mode 0777, without the sticky bit"),
            "{err}"
        );
        // A sticky one (a tmpfs mounted mode=1777) is fine: what is in it is checked one by one.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        prepare(&shared).unwrap();

        let file = root.join("file");
        fs::write(&file, "").unwrap();
        assert!(prepare(&file)
            .unwrap_err()
            .message
            .contains("is not a directory"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn megamode_tmp_of_another_user_is_refused() {
        if !can_chown() {
            return;
        }
        let root = scratch("owner");
        let tmp = root.join("megamode");
        fs::create_dir(&tmp).unwrap();
        chown(&tmp, NOBODY);
        let err = prepare(&tmp).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "MEGAMODE_TMP {} belongs to uid {NOBODY}, not to this user (uid 0)",
                tmp.display()
            )),
            "{err}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn megamode_tmp_inside_a_directory_another_user_can_change_is_refused() {
        // Whoever can rename entries of a parent can swap MEGAMODE_TMP for a directory of their
        // own between the check and the server's start.
        let root = scratch("parents");
        let shared = root.join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&shared.join("megamode")).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "MEGAMODE_TMP {} is inside {}, which can be written by other users (mode 0777, \
                 without the sticky bit)",
                shared.join("megamode").display(),
                shared.display()
            )),
            "{err}"
        );
        assert!(
            err.message
                .contains("set MEGAMODE_TMP to a directory of your own"),
            "{err}"
        );
        // Through a link to it, too.
        std::os::unix::fs::symlink(&shared, root.join("to-shared")).unwrap();
        let err = prepare(&root.join("to-shared/megamode")).unwrap_err();
        assert!(
            err.message.contains("which can be written by other users"),
            "{err}"
        );
        // A sticky one is fine: no one else can rename what megamode made there.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            !shared.join("megamode").exists(),
            "nothing made where it was refused"
        );
        prepare(&shared.join("megamode")).unwrap();
        prepare(&root.join("to-shared/megamode")).unwrap();

        if can_chown() {
            let theirs = root.join("theirs");
            fs::create_dir(&theirs).unwrap();
            chown(&theirs, NOBODY);
            let err = prepare(&theirs.join("megamode")).unwrap_err();
            assert!(
                err.message.starts_with(&format!(
                    "MEGAMODE_TMP {} is inside {}, which belongs to uid {NOBODY}",
                    theirs.join("megamode").display(),
                    theirs.display()
                )),
                "{err}"
            );
            // A link on the way that another user owns, in a sticky directory: they can point it
            // elsewhere at any time, wherever it leads now.
            let mine = root.join("mine");
            fs::create_dir(&mine).unwrap();
            let link = shared.join("link");
            std::os::unix::fs::symlink(&mine, &link).unwrap();
            chown(&link, NOBODY);
            let err = prepare(&link.join("megamode")).unwrap_err();
            assert!(
                err.message.starts_with(&format!(
                    "MEGAMODE_TMP {} goes through {}, a symbolic link of uid {NOBODY}",
                    link.join("megamode").display(),
                    link.display()
                )),
                "{err}"
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_in_it_is_used_only_when_it_is_this_users_own() {
        let root = scratch("entries");
        assert!(!own_dir(&root.join("app-x"), "copying the app").unwrap());
        fs::create_dir(root.join("app-x")).unwrap();
        assert!(own_dir(&root.join("app-x"), "copying the app").unwrap());
        std::os::unix::fs::symlink(root.join("app-x"), root.join("app-y")).unwrap();
        let err = own_dir(&root.join("app-y"), "copying the app").unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "copying the app: {} is a symbolic link",
                root.join("app-y").display()
            )),
            "{err}"
        );
        own_dir_created(&root.join("home"), "the server's HOME").unwrap();
        assert!(root.join("home").is_dir());
        if can_chown() {
            chown(&root.join("home"), NOBODY);
            let err = own_dir_created(&root.join("home"), "the server's HOME").unwrap_err();
            assert!(
                err.message
                    .contains("is a directory of another user's (owner uid 65534"),
                "{err}"
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
