//! The bootsnap cache a package ships, checked where the app is copied.
//!
//! bootsnap (which every Rails 7+ app requires from `config/boot.rb`) keys its compile cache by each
//! source file's absolute path, modification time and size, and by the Ruby (version, revision,
//! platform); its load-path cache by directory paths. An empty cache is slower than none, as it is
//! written while the app boots. So `megamode build` makes the cache by booting the package the way
//! Lambda boots it: copied by this core to the very paths it gets there (`MEGAMODE_TMP`'s default,
//! `app-<build id>`, `bundle-<checksum>`), every file with the copy's time (`app_copy::COPY_TIME`),
//! with the build's Ruby. It ships that cache in the app's `tmp/cache/bootsnap`, with a record of
//! what it was made for (`RECORD`). Before the copy, this module compares the record with where the
//! app is copied and the Ruby that runs it: a cache made for anything else would only be read,
//! found stale file by file and rewritten, so the copy leaves it out, which makes the boot an
//! empty-cache boot, and the log says why, once (a package is copied once per environment).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::app::App;
use crate::regular_file::{self, Links, Refusal};

/// The record the build writes beside the cache, relative to the app.
pub const RECORD: &str = "tmp/cache/megamode-bootsnap.json";
/// Where bootsnap puts its cache in a Rails app (`bootsnap/setup`: the app's `tmp/cache`).
pub const CACHE: &str = "tmp/cache/bootsnap";
/// The most bytes read from `RECORD`: the build writes a few hundred.
const RECORD_MAX: u64 = 64 * 1024;

/// The Ruby that bootsnap's compile cache is valid for (`RUBY_VERSION`, `RUBY_REVISION`,
/// `RUBY_PLATFORM`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Ruby {
    pub version: String,
    pub revision: String,
    pub platform: String,
}

impl std::fmt::Display for Ruby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ruby {} ({}, {})",
            self.version, self.revision, self.platform
        )
    }
}

#[derive(Debug, Deserialize)]
struct Record {
    app: PathBuf,
    bundle: Option<PathBuf>,
    ruby: Ruby,
}

/// What the server boots with, for the cold start's log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cache {
    /// The package's cache, valid here.
    Shipped,
    /// The package has none: bootsnap writes it while the app boots.
    NotShipped,
    /// The package's cache was made for another place or Ruby, and left out.
    Discarded(String),
    /// The server runs from a copy an earlier server used: whatever cache that one left.
    Kept,
    /// `DISABLE_BOOTSNAP` is set.
    Disabled,
}

impl std::fmt::Display for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cache::Shipped => "bootsnap: the package's cache",
            Cache::NotShipped => "bootsnap: none in the package, written while booting",
            Cache::Discarded(_) => {
                "bootsnap: the package's cache does not fit here, written while booting"
            }
            Cache::Kept => "bootsnap: an earlier server's cache",
            Cache::Disabled => "bootsnap: disabled",
        })
    }
}

/// What the boot did with the compile cache at `app`'s `CACHE`: how many of its entries it wrote
/// (bootsnap writes one on every miss and every stale entry, never on a hit) and how many there
/// are now. The copy gives each shipped entry `COPY_TIME`, so an entry with another modification
/// time was written by the boot. A cache the app reads is all this counts: an entry bootsnap never
/// looked up is not told from a hit (bootsnap 1.x reports no hits, only misses, to its
/// instrumentation, and only from inside the app's process). `None`: no cache there to count.
pub fn written(app: &Path) -> Option<Written> {
    fn walk(dir: &Path, top: bool, counts: &mut Written) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), false, counts)?;
            } else if kind.is_file() && !(top && entry.file_name() == "load-path-cache") {
                use std::os::unix::fs::MetadataExt;
                counts.entries += 1;
                if entry.metadata()?.mtime() != crate::app_copy::COPY_TIME {
                    counts.written += 1;
                }
            }
        }
        Ok(())
    }
    let mut counts = Written::default();
    walk(&app.join(CACHE), true, &mut counts).ok()?;
    Some(counts)
}

/// The compile cache's entries after a boot on the package's cache, and those the boot wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub entries: usize,
    pub written: usize,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of its {} entries written while booting",
            self.written, self.entries
        )
    }
}

/// Before the app is copied to `copy` (with its gem bundle at `bundle`, under `ruby`: unknown
/// is not compared): what the package's cache at `app` will be there. `None`: the app does not use
/// bootsnap.
pub fn judge(app: &App, copy: &Path, bundle: Option<&Path>, ruby: Option<&Ruby>) -> Option<Cache> {
    if disabled() {
        return Some(Cache::Disabled);
    }
    // The build writes the record as a small regular file; anything else at its name (a link, a
    // FIFO, a device, a huge file) is no record of a cache this megamode can trust.
    let text = match regular_file::read(&app.root.join(RECORD), Links::Refuse, RECORD_MAX) {
        Ok(text) => text,
        Err(Refusal::Missing) => return uses_bootsnap(app).then_some(Cache::NotShipped),
        Err(why) => return Some(Cache::Discarded(format!("its record {RECORD} {why}"))),
    };
    let mismatch = match serde_json::from_slice::<Record>(&text) {
        Err(e) => Some(format!("its record {RECORD} cannot be read ({e})")),
        Ok(record) => mismatch(&record, copy, bundle, ruby),
    };
    Some(match mismatch {
        None => Cache::Shipped,
        Some(why) => Cache::Discarded(why),
    })
}

/// What copying the app at `app` leaves out for `state`: a cache bootsnap would only find stale
/// (or not read at all), so that it costs nothing.
pub fn left_out(app: &Path, state: Option<&Cache>) -> Vec<PathBuf> {
    match state {
        Some(Cache::Discarded(_) | Cache::Disabled) => vec![app.join(CACHE), app.join(RECORD)],
        _ => Vec::new(),
    }
}

/// For a server that runs from `dir`, a copy of `app` made earlier (or `app` itself, in place): what
/// cache it finds.
pub fn reused(app: &App, dir: &Path) -> Option<Cache> {
    if disabled() {
        return Some(Cache::Disabled);
    }
    if dir.join(CACHE).is_dir() {
        return Some(Cache::Kept);
    }
    uses_bootsnap(app).then_some(Cache::NotShipped)
}

fn disabled() -> bool {
    std::env::var_os("DISABLE_BOOTSNAP").is_some_and(|v| !v.is_empty())
}

fn mismatch(
    record: &Record,
    app: &Path,
    bundle: Option<&Path>,
    ruby: Option<&Ruby>,
) -> Option<String> {
    if record.app != app {
        return Some(format!(
            "it was made for the app at {}, copied here to {} (MEGAMODE_TMP is not {}: it is set, \
             or another user had that one)",
            record.app.display(),
            app.display(),
            crate::tmp_dir::DEFAULT
        ));
    }
    if record.bundle.as_deref() != bundle {
        let shown = |b: Option<&Path>| b.map_or("none".to_string(), |b| b.display().to_string());
        return Some(format!(
            "it was made with the gem bundle at {}, here at {}",
            shown(record.bundle.as_deref()),
            shown(bundle)
        ));
    }
    match ruby {
        Some(ruby) if *ruby != record.ruby => Some(format!(
            "it was made by {}, and this is {}",
            record.ruby, ruby
        )),
        _ => None,
    }
}

/// Whether the app's lockfile has bootsnap.
fn uses_bootsnap(app: &App) -> bool {
    app.lockfile().is_some_and(|lock| {
        lock.lines()
            .any(|l| l.trim_start().starts_with("bootsnap ("))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn ruby(revision: &str) -> Ruby {
        Ruby {
            version: "3.3.8".into(),
            revision: revision.into(),
            platform: "x86_64-linux".into(),
        }
    }

    fn app_with_cache(name: &str, record: &str) -> PathBuf {
        let app =
            std::env::temp_dir().join(format!("megamode-bootsnap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&app);
        fs::create_dir_all(app.join(CACHE).join("compile-cache-iseq")).unwrap();
        fs::write(app.join(CACHE).join("load-path-cache"), "x").unwrap();
        fs::write(
            app.join("Gemfile.lock"),
            "GEM\n  specs:\n    bootsnap (1.18.4)\n",
        )
        .unwrap();
        let record = record.replace("APP", &app.display().to_string());
        fs::write(app.join(RECORD), record).unwrap();
        app
    }

    const RECORD_TEXT: &str = r#"{"app": "APP", "bundle": "/tmp/megamode/bundle-abc",
        "ruby": {"version": "3.3.8", "revision": "b200bad6cd", "platform": "x86_64-linux"}}"#;

    #[test]
    fn a_cache_made_for_this_place_and_ruby_is_shipped() {
        let app = app_with_cache("fits", RECORD_TEXT);
        let bundle = Path::new("/tmp/megamode/bundle-abc");
        let state = judge(
            &App::new(&app),
            &app,
            Some(bundle),
            Some(&ruby("b200bad6cd")),
        );
        assert_eq!(state, Some(Cache::Shipped));
        assert!(left_out(&app, state.as_ref()).is_empty());
        // A later server in the same copy boots with what the first one left.
        assert_eq!(reused(&App::new(&app), &app), Some(Cache::Kept));
        fs::remove_dir_all(&app).unwrap();
    }

    #[test]
    fn a_cache_for_another_ruby_or_place_is_left_out_and_says_why() {
        let bundle = Path::new("/tmp/megamode/bundle-abc");
        let app = app_with_cache("ruby", RECORD_TEXT);
        let state = judge(
            &App::new(&app),
            &app,
            Some(bundle),
            Some(&ruby("0123456789")),
        );
        let Some(Cache::Discarded(why)) = &state else {
            panic!("{state:?}")
        };
        assert!(why.contains("made by Ruby 3.3.8 (b200bad6cd"), "{why}");
        assert!(why.contains("this is Ruby 3.3.8 (0123456789"), "{why}");
        assert_eq!(
            left_out(&app, state.as_ref()),
            vec![app.join(CACHE), app.join(RECORD)]
        );
        let elsewhere = Path::new("/tmp/other/app-1");
        let state = judge(
            &App::new(&app),
            elsewhere,
            Some(bundle),
            Some(&ruby("b200bad6cd")),
        );
        assert!(
            matches!(&state, Some(Cache::Discarded(why)) if why.contains("/tmp/other/app-1")),
            "{state:?}"
        );
        let state = judge(&App::new(&app), &app, None, Some(&ruby("b200bad6cd")));
        assert!(
            matches!(&state, Some(Cache::Discarded(why)) if why.contains("gem bundle")),
            "{state:?}"
        );
        fs::remove_dir_all(&app).unwrap();
    }

    #[test]
    fn the_entries_a_boot_wrote_are_those_without_the_copy_time() {
        let app = app_with_cache("written", RECORD_TEXT);
        assert_eq!(written(&app), Some(Written::default()));
        let iseq = app.join(CACHE).join("compile-cache-iseq");
        fs::create_dir_all(iseq.join("ab")).unwrap();
        for name in ["ab/1", "ab/2", "3"] {
            fs::write(iseq.join(name), "x").unwrap();
            crate::app_copy::set_copy_time(&iseq.join(name)).unwrap();
        }
        // A miss writes a new entry; a stale entry is written again; load-path-cache is no entry.
        fs::write(iseq.join("ab/4"), "x").unwrap();
        fs::write(iseq.join("3"), "y").unwrap();
        fs::write(app.join(CACHE).join("load-path-cache"), "y").unwrap();
        let counts = written(&app).unwrap();
        assert_eq!(
            counts,
            Written {
                entries: 4,
                written: 2
            }
        );
        assert_eq!(
            counts.to_string(),
            "2 of its 4 entries written while booting"
        );
        fs::remove_dir_all(app.join(CACHE)).unwrap();
        assert_eq!(written(&app), None);
        fs::remove_dir_all(&app).unwrap();
    }

    #[test]
    fn an_app_without_bootsnap_has_no_state_and_one_without_a_shipped_cache_says_so() {
        let app = app_with_cache("none", RECORD_TEXT);
        fs::remove_file(app.join(RECORD)).unwrap();
        fs::remove_dir_all(app.join(CACHE)).unwrap();
        assert_eq!(
            judge(&App::new(&app), &app, None, None),
            Some(Cache::NotShipped)
        );
        assert_eq!(reused(&App::new(&app), &app), Some(Cache::NotShipped));
        fs::write(
            app.join("Gemfile.lock"),
            "GEM\n  specs:\n    rack (3.1.0)\n",
        )
        .unwrap();
        assert_eq!(judge(&App::new(&app), &app, None, None), None);
        assert_eq!(reused(&App::new(&app), &app), None);
        fs::remove_dir_all(&app).unwrap();
    }

    #[test]
    fn a_record_that_is_a_fifo_a_device_or_huge_is_no_cache_and_says_why_without_blocking() {
        use crate::regular_file::tests::{returns, Hostile};
        for hostile in Hostile::ALL {
            let app = app_with_cache(&format!("{hostile:?}"), RECORD_TEXT);
            hostile.plant(&app.join(RECORD), RECORD_MAX);
            let a = app.clone();
            let state = returns(
                &format!("judging a record that is {hostile:?}"),
                move || judge(&App::new(&a), &a, None, None),
            );
            let Some(Cache::Discarded(why)) = &state else {
                panic!("{hostile:?}: {state:?}")
            };
            let said = match hostile {
                Hostile::Fifo => "is a FIFO, not a regular file",
                Hostile::LinkToDevZero => "is a symbolic link, not a regular file",
                Hostile::Large => "has 65537 bytes, more than the 65536",
            };
            assert!(
                why.starts_with(&format!("its record {RECORD} {said}")),
                "{hostile:?}: {why}"
            );
            // Left out of the copy with the cache it describes.
            assert_eq!(
                left_out(&app, state.as_ref()),
                vec![app.join(CACHE), app.join(RECORD)]
            );
            // A lockfile in such a place is no lockfile: the app is taken as one without bootsnap.
            fs::remove_file(app.join(RECORD)).unwrap();
            hostile.plant(&app.join("Gemfile.lock"), 16 * 1024 * 1024);
            let a = app.clone();
            let state = returns(&format!("a Gemfile.lock that is {hostile:?}"), move || {
                judge(&App::new(&a), &a, None, None)
            });
            assert_eq!(state, None, "{hostile:?}");
            fs::remove_dir_all(&app).unwrap();
        }
    }
}
