//! What unpacking refuses: an archive is the build's word, checked entry by entry before anything
//! is written for it. Paths stay inside the bundle and never go through a link the archive made,
//! links point inside, only files, directories and symlinks are made, and every size a header
//! claims is held to the manifest's and to what the stream really has. The errors say which
//! entry, and that the package is to be rebuilt.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::unpack::BUFFERED_MAX;
use super::Manifest;
use crate::error::{Error, Result};

/// The longest path a GNU long-name or long-link entry may carry (Linux's PATH_MAX).
const LONG_NAME_MAX: u64 = 4096;
/// What may follow tar's end marker in the stream (other tars pad to a 10 KB record).
const TRAILER_MAX: u64 = 1024 * 1024;

/// What the walk has met so far, for the checks that span entries: the paths (none twice), the
/// links made (nothing through one), and the bytes and files against the manifest's declaration.
pub(super) struct Guard<'a> {
    manifest: &'a Manifest,
    seen: HashSet<PathBuf>,
    links: HashSet<PathBuf>,
    written: u64,
    file_count: u64,
}

impl<'a> Guard<'a> {
    pub(super) fn new(manifest: &'a Manifest) -> Self {
        Guard {
            manifest,
            seen: HashSet::new(),
            links: HashSet::new(),
            written: 0,
            file_count: 0,
        }
    }

    /// A GNU long-name or long-link entry (`what`) claiming `size` bytes, for an entry that has
    /// one already when `taken`.
    pub(super) fn long_entry(&self, what: &str, size: u64, taken: bool) -> Result<()> {
        if size > LONG_NAME_MAX {
            return Err(hostile(format!(
                "a GNU {what} entry claims {size} bytes, more than the {LONG_NAME_MAX} of a path"
            )));
        }
        if taken {
            return Err(hostile(format!("two GNU {what} entries for one entry")));
        }
        Ok(())
    }

    /// The entry's path, relative to the bundle: inside it, not through a link, not seen before.
    pub(super) fn path(&mut self, path_bytes: &[u8]) -> Result<PathBuf> {
        let relative = safe_path(path_bytes)?;
        through_no_link(&relative, &self.links)?;
        if !self.seen.insert(relative.clone()) {
            return Err(hostile(format!(
                "{} appears twice in it",
                relative.display()
            )));
        }
        Ok(relative)
    }

    /// A directory or link: no data.
    pub(super) fn no_data(relative: &Path, kind: tar::EntryType, size: u64) -> Result<()> {
        if size != 0 {
            return Err(hostile(format!(
                "{} is a {kind:?} entry that claims {size} bytes of data",
                relative.display()
            )));
        }
        Ok(())
    }

    /// A regular file of `size` bytes, counted against the manifest's bytes and files.
    pub(super) fn file(&mut self, relative: &Path, size: u64) -> Result<()> {
        let manifest = self.manifest;
        self.written = self
            .written
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
        self.file_count += 1;
        if self.file_count > manifest.files {
            return Err(hostile(format!(
                "{} is one more file than the {} its manifest declares (files)",
                relative.display(),
                manifest.files
            )));
        }
        Ok(())
    }

    /// A symlink at `relative` pointing to `link`: the target it must have, inside the bundle.
    /// Taken as made from here on, so nothing later is written through it.
    pub(super) fn link(&mut self, relative: &Path, link: Option<&[u8]>) -> Result<PathBuf> {
        let link =
            link.ok_or_else(|| hostile(format!("the link {} has no target", relative.display())))?;
        let link = Path::new(OsStr::from_bytes(link));
        inside(relative, link)?;
        self.links.insert(relative.to_path_buf());
        Ok(link.to_path_buf())
    }
}

/// An entry of a kind a gem bundle never has.
pub(super) fn unwanted(relative: &Path, kind: tar::EntryType) -> Error {
    hostile(format!(
        "{} is a {} entry, which a gem bundle has no use for (hard links, devices, FIFOs and PAX headers are refused)",
        relative.display(),
        kind_name(kind)
    ))
}

/// A GNU long name or link left over when the entries end.
pub(super) fn dangling() -> Error {
    hostile("it ends with a GNU long name or link that names no entry".to_string())
}

/// The rest of the stream (tar's end blocks, zstd's frame end) still counts for the checksum;
/// it is padding, so more than a little of it is an archive that is not what it says.
pub(super) fn trailer(rest: impl Read, archive_path: &Path) -> Result<()> {
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
pub(super) fn read_exactly(
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

pub(super) fn cut_short(path: &Path, what: &str, claimed: u64, got: u64) -> Error {
    Error::boot(format!(
        "the gem bundle {} is cut short: {what} claims {claimed} bytes and has {got}; rebuild and \
         redeploy the package",
        path.display()
    ))
}

pub(super) fn corrupt(path: &Path, error: io::Error) -> Error {
    Error::boot(format!(
        "the gem bundle {} cannot be read ({error}): it is corrupted or not a megamode bundle; rebuild \
         and redeploy the package",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use crate::lazy::test_support::*;
    use crate::lazy::unpack;
    use std::fs;
    use std::path::{Path, PathBuf};

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
}
