//! What the lazy-loading tests share: scratch directories, a small gem tree, and archives written
//! as a hostile packer would, entry by entry or byte by byte.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::hex;
use super::{pack, Manifest, ARCHIVE_NAME, FORMAT, MANIFEST_NAME};

pub(super) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("megamode-lazy-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small vendor/bundle-like tree.
pub(super) fn bundle(root: &Path) -> PathBuf {
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

pub(super) fn pack_to(src: &Path, package: &Path) -> PathBuf {
    pack(src, package).unwrap();
    package.join(MANIFEST_NAME)
}

/// One raw tar entry: name, type, link target, data.
pub(super) type RawEntry<'a> = (&'a [u8], tar::EntryType, Option<&'a str>, &'a [u8]);

/// An archive with the entries as given (unchecked, as an attacker would write them), and its
/// manifest declaring `declared` bytes.
pub(super) fn hostile_archive(root: &Path, entries: &[RawEntry], declared: u64) -> PathBuf {
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

pub(super) fn hostile_package(
    root: &Path,
    name: &[u8],
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
    declared: u64,
) -> PathBuf {
    hostile_archive(root, &[(name, kind, link, data)], declared)
}

/// A tar stream written byte by byte, as a hostile packer would: one entry of type `kind`
/// whose header claims `claimed` bytes (in GNU's base-256 form when octal cannot hold it),
/// followed by `data` (which may be shorter than claimed) and tar's end.
pub(super) fn raw_tar(name: &[u8], kind: u8, claimed: u64, data: &[u8]) -> Vec<u8> {
    let mut out = raw_entry(name, kind, claimed, data);
    out.resize(out.len() + 1024, 0);
    out
}

/// One entry of such a stream: its header and its data, padded to a block.
pub(super) fn raw_entry(name: &[u8], kind: u8, claimed: u64, data: &[u8]) -> Vec<u8> {
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
pub(super) fn raw_package(root: &Path, tar: &[u8], unpacked_bytes: u64, files: u64) -> PathBuf {
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
pub(super) fn left_in(tmp: &Path) -> Vec<PathBuf> {
    fs::read_dir(tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
