//! Reading a file megamode did not write itself (a package's records, an app's lockfile): only as
//! a regular file, and only so much of it.
//!
//! A package is whatever was unzipped into the task root, and an app whatever is in its directory:
//! a record that is a link to `/dev/zero` would be read until memory runs out, and one that is a
//! FIFO would block the read forever. So such a file is opened without blocking (a FIFO opens at
//! once, and is then refused), is used only when it is a regular file, and is read up to a bound
//! that is far above what megamode ever writes or an app ever has there.
//!
//! It also holds the core's one check of whether a path may be written (access(2)), for the
//! decisions made before writing anything there: whether the app is copied, whether `HOME` is kept.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Whether a link at the file's own name is followed. Links on the way to it are followed either
/// way; what is read is a regular file in both cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// For files megamode's build writes as regular files: a link there is not a package it made.
    Refuse,
    /// For files an app or a setting names, which may be links in a developer's checkout.
    Follow,
}

/// Why a file was not read. Its `Display` is what follows the file's name in a message ("... is a
/// FIFO, not a regular file").
#[derive(Debug)]
pub enum Refusal {
    Missing,
    Link,
    /// What it is instead ("a FIFO", "a character device", ...).
    NotRegular(&'static str),
    TooLarge {
        size: u64,
        max: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("does not exist"),
            Refusal::Link => f.write_str("is a symbolic link, not a regular file"),
            Refusal::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            Refusal::TooLarge { size, max } => write!(
                f,
                "has {size} bytes, more than the {max} megamode reads from such a file"
            ),
            Refusal::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// Opens `path` for reading when it is a regular file (without blocking on a FIFO, without taking
/// a terminal as the controlling one, closed on exec).
pub fn open(path: &Path, links: Links) -> Result<File, Refusal> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    // O_CLOEXEC: std sets it on every file it opens. O_NONBLOCK stays set: on a regular file it
    // changes nothing (Linux reads regular files the same either way).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Refusal::Missing,
            _ if links == Links::Refuse && e.raw_os_error() == Some(libc::ELOOP) => Refusal::Link,
            _ => Refusal::Io(e),
        })?;
    let kind = file.metadata().map_err(Refusal::Io)?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(Refusal::NotRegular(if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }))
}

/// The bytes of the regular file at `path`, when it has at most `max`.
pub fn read(path: &Path, links: Links, max: u64) -> Result<Vec<u8>, Refusal> {
    let file = open(path, links)?;
    let size = file.metadata().map_err(Refusal::Io)?.len();
    if size > max {
        return Err(Refusal::TooLarge { size, max });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte past the bound tells a file that grew since its size was read.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Io)?;
    if bytes.len() as u64 > max {
        return Err(Refusal::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// `read`, as text: a file that is not UTF-8 is refused too (as `InvalidData`).
pub fn read_text(path: &Path, links: Links, max: u64) -> Result<String, Refusal> {
    String::from_utf8(read(path, links, max)?)
        .map_err(|e| Refusal::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Whether this process may write to `path` (access(2), W_OK: by its real ids, as the server it
/// starts will run); false for a path that does not exist or cannot be named to the kernel.
pub fn writable(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;
    use std::time::Duration;

    /// Runs `f` on a thread of its own and fails when it has not returned within 30 s: a hang
    /// detector (a blocked read never returns), not a measure of speed.
    pub(crate) fn returns<T: Send + 'static>(
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what} did not return within 30 s: it blocked"))
    }

    pub(crate) fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    /// What a hostile package may have in place of a record.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Hostile {
        Fifo,
        LinkToDevZero,
        /// A regular file one byte past the bound.
        Large,
    }

    impl Hostile {
        pub(crate) const ALL: [Hostile; 3] =
            [Hostile::Fifo, Hostile::LinkToDevZero, Hostile::Large];

        /// Puts this at `path` (replacing what is there), `max` being the reader's bound.
        pub(crate) fn plant(self, path: &Path, max: u64) {
            let _ = std::fs::remove_file(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            match self {
                Hostile::Fifo => mkfifo(path),
                Hostile::LinkToDevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
                Hostile::Large => std::fs::write(path, vec![b'x'; max as usize + 1]).unwrap(),
            }
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("megamode-regular-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_within_the_bound_is_read_and_anything_else_is_refused_without_blocking() {
        let dir = scratch("kinds");
        Hostile::Fifo.plant(&dir.join("fifo"), 100);
        Hostile::LinkToDevZero.plant(&dir.join("zero"), 100);
        Hostile::Large.plant(&dir.join("large"), 100);
        std::fs::write(dir.join("ok"), "fine").unwrap();
        std::os::unix::fs::symlink("ok", dir.join("link-to-ok")).unwrap();
        let d = dir.clone();
        let results = returns("reading hostile files", move || {
            let read = |name: &str, links| read(&d.join(name), links, 100).map(|b| b.len());
            [
                read("ok", Links::Refuse),
                read("link-to-ok", Links::Follow),
                read("link-to-ok", Links::Refuse),
                read("fifo", Links::Follow),
                read("zero", Links::Follow),
                read("zero", Links::Refuse),
                read("large", Links::Follow),
                read("missing", Links::Follow),
                read(".", Links::Follow),
            ]
        });
        let shown: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(n) => format!("{n} bytes"),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "4 bytes",
                "4 bytes",
                "is a symbolic link, not a regular file",
                "is a FIFO, not a regular file",
                "is a character device, not a regular file",
                "is a symbolic link, not a regular file",
                "has 101 bytes, more than the 100 megamode reads from such a file",
                "does not exist",
                "is a directory, not a regular file",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
