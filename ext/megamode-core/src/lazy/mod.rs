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
//!
//! The parts: `pack` (the build: the tree into archive and manifest), `unpack` (the boot: the
//! archive into `MEGAMODE_TMP`, with writer threads), `guard` (what unpacking refuses, and the
//! errors that say so) and `manifest` (the record both sides share, and its checks).

use std::io;
use std::path::Path;

use crate::error::Error;

mod guard;
mod manifest;
mod pack;
#[cfg(test)]
mod test_support;
mod unpack;

pub use manifest::{read_manifest, Manifest};
pub use pack::pack;
pub use unpack::{root, unpack, Unpacked};

pub const FORMAT: u32 = 1;
pub const ARCHIVE_NAME: &str = "bundle.tar.zst";
pub const MANIFEST_NAME: &str = "bundle.json";

/// A file or directory of the bundle that could not be made or read, packing or unpacking: the
/// system's error, not the archive's fault.
fn io_error(action: &str, path: &Path, error: io::Error) -> Error {
    Error::boot(format!(
        "the gem bundle: cannot {action} {}: {error}",
        path.display()
    ))
}
