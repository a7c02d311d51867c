//! The build's side: packs the app's installed gems (vendor/bundle) into the archive and writes
//! the manifest describing it, byte-identical for the same gems.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

use super::manifest::{hex, Hashing, Manifest};
use super::{io_error, ARCHIVE_NAME, FORMAT, MANIFEST_NAME};
use crate::error::{Error, Result};

/// The level the build packs at: decompression speed hardly depends on it, size does.
const LEVEL: i32 = 10;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lazy::test_support::*;
    use crate::lazy::unpack;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

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
            std::time::UNIX_EPOCH + Duration::from_secs(crate::app_copy::COPY_TIME as u64)
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
}
