//! Any gem bundle, manifest and archive, through `lazy::unpack` must never panic or abort, and
//! must leave either the whole bundle (every path and link inside it) or nothing: no `.partial`
//! directory, nothing beside the package or the bundle directory.
//!
//! The input picks a manifest (arbitrary bytes as its JSON, or fields chosen to reach past its
//! checks: the archive's real checksum, sizes near the edges) and an archive: arbitrary bytes as
//! the `.tar.zst`, arbitrary bytes as the tar stream (compressed here), or tar entries whose
//! header fields (type, claimed size in octal or base-256, names, links) come from the input.
//!
//! The unpacking happens for real, in `megamode-fuzz-bundle-<pid>` under `MEGAMODE_FUZZ_SCRATCH`
//! (bin/fuzz sets it to a directory on /dev/shm) or /dev/shm. A manifest that passes the checks
//! may have the target write up to `unpacked_bytes`: sizes between `WRITE_CAP` and `UNREACHABLE`
//! are brought down to `WRITE_CAP`, so a run writes little (sizes from `UNREACHABLE` up are more
//! than any free space here, and refused before anything is written).

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use megamode_core::lazy::{self, Manifest, ARCHIVE_NAME, FORMAT, MANIFEST_NAME};
use sha2::{Digest, Sha256};

const WRITE_CAP: u64 = 1 << 20;
const UNREACHABLE: u64 = 1 << 40;

/// This process's directory: under `MEGAMODE_FUZZ_SCRATCH` (bin/fuzz makes one per run and
/// removes it after), else in /dev/shm.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = std::env::var_os("MEGAMODE_FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/shm"));
        let dir = parent.join(format!("megamode-fuzz-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory on /dev/shm");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let root = scratch();
    let package = root.join("package");
    let tmp = root.join("tmp");
    let _ = fs::remove_dir_all(&package);
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&package).unwrap();
    let mut u = Unstructured::new(data);
    let Ok(Some(declared)) = write_package(&mut u, &package) else {
        return;
    };
    match lazy::unpack(&package.join(MANIFEST_NAME), &tmp) {
        Ok(unpacked) => check_unpacked(&unpacked.root, &tmp, declared.as_ref()),
        Err(_) => assert_eq!(
            listing(&tmp),
            Vec::<String>::new(),
            "a refused bundle leaves nothing in MEGAMODE_TMP"
        ),
    }
    let mut beside = listing(root);
    beside.retain(|n| n != "tmp");
    assert_eq!(
        beside,
        vec!["package".to_string()],
        "nothing written beside"
    );
    let mut in_package = listing(&package);
    in_package.retain(|n| n != ARCHIVE_NAME && n != MANIFEST_NAME);
    assert_eq!(
        in_package,
        Vec::<String>::new(),
        "nothing written into the package"
    );
});

/// Names in `dir`, sorted; none when it does not exist.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A bundle that unpacked: alone in tmp, every path and link inside it, no more bytes or files
/// than the manifest declared.
fn check_unpacked(root: &Path, tmp: &Path, declared: Option<&Manifest>) {
    let name = root.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(listing(tmp), vec![name], "only the bundle in MEGAMODE_TMP");
    let real_root = fs::canonicalize(root).unwrap();
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                bytes += meta.len();
                files += 1;
            } else if meta.file_type().is_symlink() {
                // A link may dangle; one that resolves must resolve inside.
                if let Ok(target) = fs::canonicalize(&path) {
                    assert!(
                        target.starts_with(&real_root),
                        "{} leads out to {}",
                        path.display(),
                        target.display()
                    );
                }
            } else {
                panic!(
                    "{} is neither a file, a directory nor a link",
                    path.display()
                );
            }
        }
    }
    if let Some(manifest) = declared {
        assert!(bytes <= manifest.unpacked_bytes, "{bytes} bytes written");
        assert!(files <= manifest.files, "{files} files written");
    }
}

/// Writes the archive and the manifest. Some(the manifest), or Some(None) when the manifest is
/// arbitrary bytes; None for an input that would have it write past the cap.
///
/// An input's choices are drawn so that running out of input picks the ordinary case (a valid
/// manifest for the archive as built), so short inputs reach the entries rather than stopping at
/// the manifest's checks.
fn write_package(u: &mut Unstructured, package: &Path) -> Result<Option<Option<Manifest>>> {
    let raw_manifest = !u.ratio(7, 8)?;
    let format_good = u.ratio(15, 16)?;
    let archive_good = u.ratio(15, 16)?;
    let sha_mode = u.int_in_range(0..=15)?;
    let bytes_mode = u.int_in_range(0..=7)?;
    let files_mode = u.int_in_range(0..=7)?;
    let (archive, total) = match u.int_in_range(0..=7)? {
        6 => (u.arbitrary::<Vec<u8>>()?, Default::default()),
        7 => (compress(&u.arbitrary::<Vec<u8>>()?), Default::default()),
        _ => {
            let (tar, total) = tar_stream(u)?;
            (compress(&tar), total)
        }
    };
    fs::write(package.join(ARCHIVE_NAME), &archive).unwrap();
    if raw_manifest {
        let json: Vec<u8> = u.arbitrary()?;
        if let Ok(m) = serde_json::from_slice::<Manifest>(&json) {
            if (WRITE_CAP + 1..UNREACHABLE).contains(&m.unpacked_bytes) {
                return Ok(None);
            }
        }
        fs::write(package.join(MANIFEST_NAME), json).unwrap();
        return Ok(Some(None));
    }
    let sha256 = match sha_mode {
        14 => text(u)?,
        15 => "0".repeat(64),
        _ => hex(&Sha256::digest(&archive)),
    };
    let mut unpacked_bytes = match bytes_mode {
        6 => edgy(u)?,
        7 => total.bytes.saturating_sub(u.int_in_range(1..=512)?),
        _ => total.bytes,
    };
    if (WRITE_CAP + 1..UNREACHABLE).contains(&unpacked_bytes) {
        unpacked_bytes = WRITE_CAP;
    }
    let manifest = Manifest {
        format: if format_good { FORMAT } else { u.arbitrary()? },
        archive: if archive_good {
            ARCHIVE_NAME.to_string()
        } else {
            text(u)?
        },
        sha256,
        unpacked_bytes,
        files: match files_mode {
            6 => edgy(u)?,
            7 => total.entries.saturating_sub(1),
            _ => total.entries,
        },
    };
    fs::write(
        package.join(MANIFEST_NAME),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    Ok(Some(Some(manifest)))
}

fn compress(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 1).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A size: small most of the time, else one near an edge (a block, the buffered-file bound, the
/// manifest's plausible maximum, 2^62, 2^64) or any.
fn edgy(u: &mut Unstructured) -> Result<u64> {
    const EDGES: &[u64] = &[
        0,
        1,
        511,
        512,
        4095,
        4096,
        4097,
        65535,
        65536,
        65537,
        1 << 20,
        (1 << 33) - 1,
        1 << 33,
        (1 << 50) - 1,
        1 << 50,
        (1 << 50) + 1,
        u64::MAX / 4096,
        u64::MAX / 4096 + 1,
        1 << 62,
        u64::MAX - 4096,
        u64::MAX - 1,
        u64::MAX,
    ];
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        1 => *u.choose(EDGES)?,
        _ => u.int_in_range(0..=300_000)?,
    })
}

/// Names that steer into the path checks.
const NAMES: &[&str] = &[
    "a",
    "b",
    "a/b",
    "a/b/c",
    "bin/x",
    "c",
    "d/",
    ".",
    "..",
    "../evil",
    "a/../../evil",
    "/etc/evil",
    "",
    "././@LongLink",
    "PaxHeaders/a",
];

/// A name or link target: one of `NAMES` (the first when the input has run out), a long one, or
/// any.
fn text(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        6 => "n".repeat(u.int_in_range(90..=5000)?),
        7 => u.arbitrary::<String>()?,
        _ => u.choose(NAMES)?.to_string(),
    })
}

/// What a tar stream holds, for a manifest that declares it: every entry's data bytes and the
/// number of entries (upper bounds on the files' bytes and count).
#[derive(Default)]
struct Total {
    bytes: u64,
    entries: u64,
}

/// Tar entries written byte by byte from the input's choices.
fn tar_stream(u: &mut Unstructured) -> Result<(Vec<u8>, Total)> {
    // Files, directories, links, devices, FIFOs, GNU long name and link, PAX, sparse, volume.
    const KINDS: &[u8] = b"0\x0075213467LKxgSV";
    let mut out = Vec::new();
    let mut total = Total::default();
    for _ in 0..u.int_in_range(1..=6)? {
        let kind = if u.ratio(15, 16)? {
            *u.choose(KINDS)?
        } else {
            u.arbitrary()?
        };
        let name = text(u)?.into_bytes();
        let link = text(u)?.into_bytes();
        let data: Vec<u8> = match u.int_in_range(0..=3)? {
            // Large and cheap to describe: past the bound on what is read into memory.
            3 => vec![u.arbitrary()?; u.int_in_range(0..=200_000)?],
            _ => u.arbitrary()?,
        };
        let claimed = match u.int_in_range(0..=3)? {
            3 => edgy(u)?,
            _ => data.len() as u64,
        };
        total.bytes += data.len() as u64;
        total.entries += 1;
        out.extend(header(&name, kind, claimed, &link));
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    match u.int_in_range(0..=7)? {
        // Cut short somewhere.
        6 => {
            let at = u.int_in_range(0..=out.len())?;
            out.truncate(at);
        }
        // Something after the end.
        7 => {
            out.resize(out.len() + 1024, 0);
            out.extend(vec![u.arbitrary::<u8>()?; u.int_in_range(0..=2_000_000)?]);
        }
        _ => out.resize(out.len() + 1024, 0),
    }
    Ok((out, total))
}

/// A GNU tar header: the name and the link name cut to their fields (a longer one needs a long-name
/// entry, which the input can choose as an entry of its own), the size in octal or base-256.
fn header(name: &[u8], kind: u8, claimed: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    if claimed < 0o77777777777 {
        h[124..135].copy_from_slice(format!("{claimed:011o}").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&claimed.to_be_bytes());
    }
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}
