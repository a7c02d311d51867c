//! The manifest (`bundle.json`) the build writes beside the archive and the boot reads first: the
//! format version, the archive's name and SHA-256, and the sizes unpacking will take, each checked
//! as it is read; and the hashing both sides compute the checksum with.

use std::io::{self, Read, Write};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::FORMAT;
use crate::error::{Error, Result};
use crate::regular_file::{self, Links};

/// Per entry, on top of its bytes, for the space check.
const ENTRY_OVERHEAD: u64 = 4096;
/// More than any gem bundle, or any disk it could go to (1 PiB): a manifest claiming more is
/// refused as it is read, which keeps every sum of its sizes far from overflowing.
const PLAUSIBLE_BYTES: u64 = 1 << 50;
/// The most bytes read from a manifest: the build writes a few hundred.
const MANIFEST_MAX: u64 = 64 * 1024;

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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes what passes through, either way.
pub(super) struct Hashing<T> {
    inner: T,
    pub(super) hasher: Sha256,
}

impl<T> Hashing<T> {
    pub(super) fn new(inner: T) -> Self {
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
    use crate::lazy::test_support::*;
    use crate::lazy::{unpack, ARCHIVE_NAME, MANIFEST_NAME};
    use std::fs;
    use std::path::PathBuf;

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
}
