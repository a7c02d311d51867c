//! How the app's server is launched: which command runs it, in which directory (the app, or its
//! copy under `MEGAMODE_TMP`), with which environment (the gem bundle's included), listening where
//! (a loopback port or a Unix socket).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::App;
use crate::bootsnap::{self, Cache};
use crate::config::{Config, CopyApp, Statuses, Transport};
use crate::error::{Error, Result};
use crate::listen::Target;
use crate::logs::LogSink;

/// Variables for a process's environment, in the order they are set.
pub type Env = Vec<(String, String)>;

/// Everything needed to start the server.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Run by `sh -c`, so it may use `$PORT` and shell syntax.
    pub command: String,
    pub dir: PathBuf,
    pub env: Env,
    /// Where the server is told to listen (`$PORT` or `$MEGAMODE_SOCKET`).
    pub target: Target,
    pub log_prefix: String,
    /// Where the server's lines go (the handler's stdout).
    pub logs: LogSink,
    /// With `MEGAMODE_READINESS_PATH`: ready means that path answers healthy, not only listening.
    pub health: Option<Health>,
    /// How long the server may take to become ready (`MEGAMODE_BOOT_TIMEOUT`).
    pub boot_timeout: Duration,
    /// `MEGAMODE_LIFECYCLE_TOKEN`, new for each server: what megamode's requests to run SnapStart
    /// hooks carry (`lifecycle`). The server's alone: not in `env`, which tasks get too.
    pub lifecycle_token: String,
}

/// `MEGAMODE_READINESS_PATH` and the statuses that count as healthy.
#[derive(Clone, Debug)]
pub struct Health {
    pub path: String,
    pub statuses: Statuses,
}

/// Where the server runs and with what environment. Tasks run there too, with the same
/// environment: `bin/rails db:migrate` must find the gems and migrate the database the server uses.
#[derive(Clone, Debug)]
pub struct Site {
    pub dir: PathBuf,
    pub env: Env,
    /// How long copying the app took (0 when it was copied already); `None` when it runs in place.
    pub copy_ms: Option<u64>,
    /// How long unpacking the gem bundle took; `None` without one.
    pub lazy_ms: Option<u64>,
    /// The state of bootsnap's cache; `None` for an app without bootsnap.
    pub bootsnap: Option<Cache>,
    /// The app (`MEGAMODE_APP_ROOT`), whose `Gemfile.lock` the copy and the default command share:
    /// read once per launch. A copy's is the same file, copied.
    pub app: App,
}

impl Site {
    /// The app's directory or its copy, and the server's environment plus the gem bundle's
    /// variables (copying and unpacking as needed, said in the log).
    pub fn prepare(config: &Config, logs: &LogSink) -> Result<Site> {
        let bundle_root = match &config.bundle {
            Some(manifest) => Some(crate::lazy::root(manifest, &config.tmp_dir)?),
            None => None,
        };
        let app = App::new(&config.app_root);
        let (dir, copy_ms, bootsnap) = app_dir(config, logs, &app, bundle_root.as_deref())?;
        let mut env = server_env(config)?;
        let (bundle_env, lazy_ms) = unpack_bundle(config, logs, &dir)?;
        env.extend(bundle_env);
        Ok(Site {
            dir,
            env,
            copy_ms,
            lazy_ms,
            bootsnap,
            app,
        })
    }
}

impl Launch {
    /// How to start the server at `site`: the transport (a Unix socket where the server can use
    /// one, see BENCHMARKS.md: puma by default, or a custom command that names
    /// `$MEGAMODE_SOCKET`), the command, and where it listens.
    pub fn new(config: &Config, logs: &LogSink, site: Site) -> Result<Launch> {
        let unix = match (config.transport, &config.command) {
            (Some(transport), _) => transport == Transport::Unix,
            (None, Some(command)) => command.contains("MEGAMODE_SOCKET"),
            (None, None) => default_is_puma(&site.dir, site.app.lockfile()),
        };
        let command = match &config.command {
            Some(command) => command.clone(),
            None => default_command(&site.dir, site.app.lockfile(), unix)?,
        };
        let target = if unix {
            Target::socket_in(&config.tmp_dir)?
        } else {
            Target::free_port()?
        };
        Ok(Launch {
            command,
            env: site.env,
            dir: site.dir,
            target,
            log_prefix: config.log_prefix.clone(),
            logs: logs.clone(),
            health: config.readiness_path.as_ref().map(|path| Health {
                path: path.clone(),
                statuses: config.readiness_statuses.clone(),
            }),
            boot_timeout: config.boot_timeout,
            lifecycle_token: crate::lifecycle::token()?,
        })
    }
}

/// Where the server runs from: the app itself, or its copy under `MEGAMODE_TMP`, how long copying
/// took, and the state of bootsnap's cache there (see `bootsnap`; the bundle goes to `bundle`).
fn app_dir(
    config: &Config,
    logs: &LogSink,
    app: &App,
    bundle: Option<&Path>,
) -> Result<(PathBuf, Option<u64>, Option<Cache>)> {
    let copy = match config.copy_app {
        CopyApp::Always => true,
        CopyApp::Never => false,
        // `MEGAMODE_COPY_APP=auto`: the server may run from the app itself only where it can write
        // there, which on Lambda, with the package read-only, it cannot.
        CopyApp::Auto => !crate::regular_file::writable(&app.root),
    };
    if !copy {
        return Ok((app.root.clone(), None, bootsnap::reused(app, &app.root)));
    }
    let mut judged = None;
    let copy = crate::app_copy::make_leaving(&app.root, &config.tmp_dir, |root| {
        let state = bootsnap::judge(app, root, bundle, config.ruby.as_ref());
        let skip = bootsnap::left_out(&app.root, state.as_ref());
        judged = Some(state);
        skip
    })?;
    if let Some(warning) = &copy.warning {
        logs.line("megamode", warning);
    }
    if copy.copied {
        logs.line(
            "megamode",
            &format!(
                "copied the app into {} in {} ms",
                copy.root.display(),
                copy.elapsed.as_millis()
            ),
        );
    }
    let state = match judged {
        Some(state) => state,
        None => bootsnap::reused(app, &copy.root),
    };
    if let Some(Cache::Discarded(why)) = &state {
        logs.line(
            "megamode",
            &format!(
                "the package's bootsnap cache does not fit here: {why}; the copy left it out, so the \
                 app boots as with an empty cache (a build on the function's Ruby makes one that \
                 fits, e.g. megamode build --container)"
            ),
        );
    }
    Ok((copy.root, Some(copy.elapsed.as_millis() as u64), state))
}

/// Unpacks the gem bundle, when there is one, and returns the variables that point bundler and
/// RubyGems at it, and how long unpacking took.
fn unpack_bundle(config: &Config, logs: &LogSink, app_dir: &Path) -> Result<(Env, Option<u64>)> {
    let Some(manifest) = &config.bundle else {
        return Ok((Vec::new(), None));
    };
    let unpacked = crate::lazy::unpack(manifest, &config.tmp_dir)?;
    if unpacked.unpacked {
        logs.line(
            "megamode",
            &format!(
                "unpacked the gem bundle into {} in {} ms",
                unpacked.root.display(),
                unpacked.elapsed.as_millis()
            ),
        );
    }
    let root = unpacked.root.display().to_string();
    let mut env = vec![
        ("BUNDLE_PATH".to_string(), root.clone()),
        (
            "BUNDLE_GEMFILE".to_string(),
            app_dir.join("Gemfile").display().to_string(),
        ),
    ];
    // RubyGems alone (an app without a Gemfile) finds the gems through GEM_PATH:
    // <bundle>/ruby/<ruby abi>/ is a gem directory. A trailing ':' keeps RubyGems' default
    // paths (where puma itself may be) after ours.
    let gem_dirs: Vec<String> = std::fs::read_dir(unpacked.root.join("ruby"))
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if !gem_dirs.is_empty() {
        let existing = std::env::var("GEM_PATH").unwrap_or_default();
        let path = format!("{}:{existing}", gem_dirs.join(":"));
        env.push(("GEM_PATH".to_string(), path));
    }
    Ok((env, Some(unpacked.elapsed.as_millis() as u64)))
}

/// The server's environment on top of the handler's: production by default, logs to stdout, a
/// writable HOME and TMPDIR (Lambda's HOME may be unset or read-only).
fn server_env(config: &Config) -> Result<Env> {
    let tmp = &config.tmp_dir;
    let home = tmp.join("home");
    let tmpdir = tmp.join("tmp");
    crate::tmp_dir::prepare(tmp)?;
    crate::tmp_dir::own_dir_created(&home, "the server's HOME")?;
    crate::tmp_dir::own_dir_created(&tmpdir, "the server's TMPDIR")?;
    let rack_env = std::env::var("RACK_ENV")
        .or_else(|_| std::env::var("RAILS_ENV"))
        .unwrap_or_else(|_| "production".to_string());
    let mut env = vec![
        ("RACK_ENV".to_string(), rack_env.clone()),
        (
            "RAILS_ENV".to_string(),
            std::env::var("RAILS_ENV").unwrap_or(rack_env),
        ),
        ("RAILS_LOG_TO_STDOUT".to_string(), "1".to_string()),
        ("MEGAMODE".to_string(), "1".to_string()),
        ("TMPDIR".to_string(), tmpdir.display().to_string()),
    ];
    if !home_is_writable() {
        env.push(("HOME".to_string(), home.display().to_string()));
    }
    env.extend(config.child_env.iter().cloned());
    Ok(env)
}

fn home_is_writable() -> bool {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .is_some_and(|home| crate::regular_file::writable(Path::new(&home)))
}

/// The command that serves the app at `root` when `MEGAMODE_COMMAND` is not set: puma through
/// bundler when the app has a Gemfile (rackup when its `lockfile` has no puma), else the system's
/// puma, else its rackup. `exec`, so the server is the process megamode started and signals reach
/// it. With `unix`, puma listens on `$MEGAMODE_SOCKET` (rackup cannot, so it keeps `$PORT`).
pub fn default_command(root: &Path, lockfile: Option<&str>, unix: bool) -> Result<String> {
    if !root.join("config.ru").is_file() {
        return Err(Error::boot(format!(
            "there is no config.ru in {}: set MEGAMODE_APP_ROOT to your app's directory, or \
             MEGAMODE_COMMAND to the command that serves it on $PORT",
            root.display()
        )));
    }
    let puma = if unix {
        "puma --bind unix://$MEGAMODE_SOCKET config.ru"
    } else {
        "puma --bind tcp://127.0.0.1:$PORT config.ru"
    };
    let rackup = "rackup --host 127.0.0.1 --port $PORT config.ru";
    if root.join("Gemfile").is_file() {
        let has_puma = uses_puma(lockfile.unwrap_or_default());
        let server = if has_puma { puma } else { rackup };
        return Ok(format!("exec bundle exec {server}"));
    }
    for (program, command) in [("puma", puma), ("rackup", rackup)] {
        if find_in_path(program).is_some() {
            return Ok(format!("exec {command}"));
        }
    }
    Err(Error::boot(
        "found neither puma nor rackup on PATH to serve the app: add puma to the app's Gemfile, \
         install it, or set MEGAMODE_COMMAND",
    ))
}

fn uses_puma(lockfile: &str) -> bool {
    lockfile
        .lines()
        .any(|l| l.trim_start().starts_with("puma "))
}

/// Whether the default command for the app at `root` (with `lockfile`) is puma, which can listen on
/// a Unix socket.
pub fn default_is_puma(root: &Path, lockfile: Option<&str>) -> bool {
    if root.join("Gemfile").is_file() {
        uses_puma(lockfile.unwrap_or_default())
    } else {
        find_in_path("puma").is_some()
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_command_follows_the_app() {
        let dir = std::env::temp_dir().join(format!("megamode-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = default_command(&dir, App::new(&dir).lockfile(), false).unwrap_err();
        assert!(err.message.contains("config.ru"), "{err}");
        std::fs::write(dir.join("config.ru"), "run ->(_) { [200, {}, []] }").unwrap();
        std::fs::write(dir.join("Gemfile"), "gem 'puma'").unwrap();
        std::fs::write(
            dir.join("Gemfile.lock"),
            "GEM\n  specs:\n    puma (6.4.0)\n",
        )
        .unwrap();
        assert!(default_command(&dir, App::new(&dir).lockfile(), false)
            .unwrap()
            .starts_with("exec bundle exec puma --bind tcp://"));
        assert!(default_command(&dir, App::new(&dir).lockfile(), true)
            .unwrap()
            .starts_with("exec bundle exec puma --bind unix://$MEGAMODE_SOCKET"));
        assert!(default_is_puma(&dir, App::new(&dir).lockfile()));
        std::fs::write(
            dir.join("Gemfile.lock"),
            "GEM\n  specs:\n    rack (3.0.0)\n",
        )
        .unwrap();
        assert!(default_command(&dir, App::new(&dir).lockfile(), true)
            .unwrap()
            .starts_with("exec bundle exec rackup "));
        assert!(!default_is_puma(&dir, App::new(&dir).lockfile()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
