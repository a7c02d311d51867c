//! Settings, read from `MEGAMODE_*` variables (or the same names given by `Megamode.configure`).

use std::path::PathBuf;
use std::time::Duration;

use crate::app::AppKind;
use crate::error::{Error, Result};
use crate::invocation::NO_DEADLINE;
use crate::logs::LogFormat;

#[derive(Clone, Debug)]
pub struct Config {
    /// The rack app: the directory holding config.ru.
    pub app_root: PathBuf,
    /// The server's command (`MEGAMODE_COMMAND`), run by `sh -c`; `None` picks one from the app.
    pub command: Option<String>,
    /// Put in front of every line the server prints.
    pub log_prefix: String,
    /// Where megamode may write (the app's copy, gems, the server's HOME and TMPDIR).
    pub tmp_dir: PathBuf,
    /// Where events that are not HTTP are POSTed.
    pub pass_through_path: String,
    /// When set, the server is ready once this path answers, not merely once its port accepts.
    pub readiness_path: Option<String>,
    /// How long the server may take to become ready.
    pub boot_timeout: Duration,
    /// A custom domain's base path mapping, moved from the path into `X-Forwarded-Prefix`.
    pub base_path: Option<String>,
    /// Whether the app is copied into `tmp_dir` before its server starts (`MEGAMODE_COPY_APP`).
    pub copy_app: CopyApp,
    /// The gem bundle's manifest (`MEGAMODE_BUNDLE`, a path or a `file://` URL), unpacked into
    /// `tmp_dir` before the server starts.
    pub bundle: Option<PathBuf>,
    /// How megamode reaches the server (`MEGAMODE_TRANSPORT`); `None` picks by the command.
    pub transport: Option<Transport>,
    /// When a compressible response is gzipped for a client that accepts it.
    pub compress: Compress,
    /// App statuses that become a handler error instead of a response (`MEGAMODE_ERROR_STATUS`).
    pub error_statuses: Statuses,
    /// The statuses of `MEGAMODE_READINESS_PATH` that mean ready (`MEGAMODE_READINESS_STATUS`).
    pub readiness_statuses: Statuses,
    /// Which tasks command events may run (`MEGAMODE_COMMANDS_ALLOWED`, matched against the whole
    /// shell line).
    pub tasks_allowed: Option<regex_lite::Regex>,
    /// Lambda's log format (`AWS_LAMBDA_LOG_FORMAT`): text lines, or one JSON object per line.
    pub log_format: LogFormat,
    /// Extra variables for the server's environment, set by the embedding caller.
    pub child_env: Vec<(String, String)>,
    /// How the native loop sends HTTP responses to Lambda (`MEGAMODE_INVOKE_MODE`).
    pub invoke_mode: InvokeMode,
    /// Lambda initializes this environment for provisioned concurrency or SnapStart
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE`): ahead of traffic, then frozen until its first event (or
    /// snapshotted), so the init waits for the server to be ready instead of leaving it half booted.
    pub init_waits: bool,
    /// Lambda initializes this environment for SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE` is
    /// `snap-start`): init ends with the server ready, its before-snapshot hooks run, and the
    /// native loop waits for the restore (see `runtime`). The init waits then too.
    pub snap_start: bool,
    /// How long the app's SnapStart hooks of one phase may take (`MEGAMODE_HOOK_TIMEOUT`).
    pub hook_timeout: Duration,
    /// The paths the app is asked for (GET) before a SnapStart snapshot, so that what it loads
    /// lazily is in the snapshot (`MEGAMODE_PRIME`, comma-separated: `/up,/posts`).
    pub prime: Vec<String>,
    /// The Ruby that runs the handler (and so the server), set by the Ruby binding: what a shipped
    /// bootsnap cache must have been made by (`None`: not compared).
    pub ruby: Option<crate::bootsnap::Ruby>,
    /// What reading the settings has to say, logged once when the engine starts: an old name used
    /// for a setting (see `renamed`).
    pub notes: Vec<String>,
}

/// `MEGAMODE_INVOKE_MODE`: Lambda's two ways of taking a function's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeMode {
    /// The whole response at once, up to 6 MB.
    Buffered,
    /// Streamed as it arrives, up to 200 MB, where the event's source can stream (Function URLs in
    /// `RESPONSE_STREAM` mode, REST APIs with `responseTransferMode: STREAM`).
    ResponseStream,
}

/// `MEGAMODE_COPY_APP` (formerly `MEGAMODE_STAGE`): when the app runs from a copy under
/// `MEGAMODE_TMP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyApp {
    /// When the app's directory is not writable (a Lambda package).
    Auto,
    Always,
    Never,
}

/// `MEGAMODE_TRANSPORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
}

/// `MEGAMODE_COMPRESS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    /// Only a response that would otherwise be over the source's size limit (the default).
    Auto,
    /// Never.
    Off,
    /// Any response whose body is larger than this many bytes.
    Above(usize),
}

impl Config {
    /// Whether the app's `status` is one `MEGAMODE_ERROR_STATUS` turns into a handler error.
    pub fn is_error_status(&self, status: u16) -> bool {
        self.error_statuses.contains(status)
    }
}

/// A list of HTTP statuses and ranges, written like `500,502-504`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statuses(Vec<(u16, u16)>);

impl Statuses {
    pub fn contains(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }

    /// `value` of the setting `name`; `default` when it is not set.
    fn parse(name: &str, value: Option<String>, default: &[(u16, u16)]) -> Result<Statuses> {
        let Some(value) = value else {
            return Ok(Statuses(default.to_vec()));
        };
        let bad = || {
            Error::config(format!(
                "{name} must list HTTP statuses and ranges like 500,502-504, got {value:?}"
            ))
        };
        let status = |text: &str| {
            text.trim()
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(bad)
        };
        value
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (status(low)?, status(high)?);
                    if low > high {
                        return Err(bad());
                    }
                    Ok((low, high))
                }
                None => status(part).map(|s| (s, s)),
            })
            .collect::<Result<_>>()
            .map(Statuses)
    }
}

impl Config {
    /// Reads each setting through `get`, which answers for `MEGAMODE_*` names and Lambda's own
    /// variables; the Ruby side layers `Megamode.configure` over the process environment this way.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let app_root = match get("MEGAMODE_APP_ROOT") {
            Some(root) => PathBuf::from(root),
            None => default_app_root(get("LAMBDA_TASK_ROOT"))?,
        };
        let log_prefix = get("MEGAMODE_LOG_PREFIX")
            .unwrap_or_else(|| AppKind::detect(&app_root).log_prefix().to_string());
        let pass_through_path =
            get("MEGAMODE_PASS_THROUGH_PATH").unwrap_or_else(|| "/events".into());
        let readiness_path = get("MEGAMODE_READINESS_PATH");
        for (name, path) in [
            ("MEGAMODE_PASS_THROUGH_PATH", Some(&pass_through_path)),
            ("MEGAMODE_READINESS_PATH", readiness_path.as_ref()),
        ] {
            if let Some(path) = path {
                if !path.starts_with('/') {
                    return Err(Error::config(format!(
                        "{name} must be a path starting with '/', got {path:?}"
                    )));
                }
            }
        }
        let base_path = get("MEGAMODE_BASE_PATH")
            .map(|p| format!("/{}", p.trim_matches('/')))
            .filter(|p| p != "/");
        let mut notes = Vec::new();
        // "Stage" is API Gateway's word (`megamode serve --stage`); the copy's setting was named
        // for it before.
        let (copy_app_name, copy_app) = renamed(
            get,
            ("MEGAMODE_COPY_APP", "copy_app"),
            ("MEGAMODE_STAGE", "stage"),
            "\"stage\" names API Gateway's stage",
            &mut notes,
        );
        Ok(Config {
            app_root,
            command: get("MEGAMODE_COMMAND"),
            log_prefix,
            tmp_dir: get("MEGAMODE_TMP").map_or_else(crate::tmp_dir::default_dir, PathBuf::from),
            pass_through_path,
            readiness_path,
            boot_timeout: seconds(get("MEGAMODE_BOOT_TIMEOUT"), "MEGAMODE_BOOT_TIMEOUT", 30.0)?,
            base_path,
            bundle: match get("MEGAMODE_BUNDLE") {
                Some(value) => Some(bundle_path(&value)?),
                None => get("LAMBDA_TASK_ROOT")
                    .map(|root| PathBuf::from(root).join("megamode").join("bundle.json"))
                    .filter(|manifest| manifest.is_file()),
            },
            copy_app: match copy_app.map(|t| t.trim().to_ascii_lowercase()) {
                None => CopyApp::Auto,
                Some(t) if t == "auto" => CopyApp::Auto,
                Some(t) if t == "always" => CopyApp::Always,
                Some(t) if t == "never" => CopyApp::Never,
                Some(t) => {
                    return Err(Error::config(format!(
                        "{copy_app_name} must be auto, always or never, got {t:?}"
                    )))
                }
            },
            transport: match get("MEGAMODE_TRANSPORT").map(|t| t.trim().to_ascii_lowercase()) {
                None => None,
                Some(t) if t == "tcp" => Some(Transport::Tcp),
                Some(t) if t == "unix" => Some(Transport::Unix),
                Some(t) => {
                    return Err(Error::config(format!(
                        "MEGAMODE_TRANSPORT must be tcp or unix, got {t:?}"
                    )))
                }
            },
            compress: compress(get("MEGAMODE_COMPRESS"))?,
            error_statuses: Statuses::parse(
                "MEGAMODE_ERROR_STATUS",
                get("MEGAMODE_ERROR_STATUS"),
                &[],
            )?,
            readiness_statuses: Statuses::parse(
                "MEGAMODE_READINESS_STATUS",
                get("MEGAMODE_READINESS_STATUS"),
                &[(200, 399)],
            )?,
            tasks_allowed: tasks_allowed(get("MEGAMODE_COMMANDS_ALLOWED"))?,
            log_format: LogFormat::from_lambda(get("AWS_LAMBDA_LOG_FORMAT").as_deref()),
            child_env: Vec::new(),
            invoke_mode: match get("MEGAMODE_INVOKE_MODE").map(|m| m.trim().to_ascii_lowercase()) {
                None => InvokeMode::Buffered,
                Some(m) if m == "buffered" => InvokeMode::Buffered,
                Some(m) if m == "response_stream" => InvokeMode::ResponseStream,
                Some(m) => {
                    return Err(Error::config(format!(
                        "MEGAMODE_INVOKE_MODE must be buffered or response_stream, got {m:?}"
                    )))
                }
            },
            init_waits: matches!(
                get("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref(),
                Some("provisioned-concurrency" | "snap-start")
            ),
            snap_start: get("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref() == Some("snap-start"),
            hook_timeout: seconds(get("MEGAMODE_HOOK_TIMEOUT"), "MEGAMODE_HOOK_TIMEOUT", 60.0)?,
            prime: prime_paths(get("MEGAMODE_PRIME"))?,
            ruby: None,
            notes,
        })
    }
}

/// `MEGAMODE_PRIME`: paths separated by commas (blanks around them and empty entries ignored), each
/// a path the app can be asked for, starting with `/` (a query string may follow). A character
/// that is not ASCII is percent-encoded (its UTF-8 bytes), as a client's request would carry it:
/// `/café` is asked as `/caf%C3%A9`, which the app decodes as it does for a client, rather than
/// refused for what the person meant plainly. A `#fragment` is refused: a client never sends one,
/// so the app would be asked something no client asks.
pub fn prime_paths(value: Option<String>) -> Result<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            if entry.contains('#') {
                return Err(Error::config(format!(
                    "MEGAMODE_PRIME: {entry:?} has a #fragment, which a client never sends to a \
                     server: take it out of that entry in {value:?} (or write %23 for a '#' that \
                     is part of the path)"
                )));
            }
            let path = encode_non_ascii(entry);
            let usable = path.starts_with('/')
                && !path.starts_with("//")
                && path.parse::<http::uri::PathAndQuery>().is_ok();
            if usable {
                Ok(path)
            } else {
                Err(Error::config(format!(
                    "MEGAMODE_PRIME must list paths starting with '/', separated by commas (like \
                     /up,/posts), but {entry:?} is not one: fix that entry in {value:?}"
                )))
            }
        })
        .collect()
}

/// `text` with each byte of a character that is not ASCII written `%XX`, as clients send them.
fn encode_non_ascii(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            encoded.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    encoded
}

/// The setting `new` (its variable and its `Megamode.configure` key), or, when that is not set,
/// `old`, the name it had, with a note saying to use `new` (`why`: why it was renamed): the
/// variable read, and its value. The new name wins when both are set, wherever each was given.
fn renamed(
    get: impl Fn(&str) -> Option<String>,
    new: (&'static str, &str),
    old: (&'static str, &str),
    why: &str,
    notes: &mut Vec<String>,
) -> (&'static str, Option<String>) {
    if let Some(value) = get(new.0) {
        return (new.0, Some(value));
    }
    let Some(value) = get(old.0) else {
        return (new.0, None);
    };
    notes.push(format!(
        "{} is deprecated: use {} (in Megamode.configure, {} instead of {}), with the same values ({why})",
        old.0, new.0, new.1, old.1
    ));
    (old.0, Some(value))
}

fn default_app_root(task_root: Option<String>) -> Result<PathBuf> {
    if let Some(app) = task_root.map(|root| PathBuf::from(root).join("app")) {
        if app.is_dir() {
            return Ok(app);
        }
    }
    std::env::current_dir().map_err(|e| {
        Error::config(format!(
            "cannot read the current directory ({e}); set MEGAMODE_APP_ROOT to the app"
        ))
    })
}

/// A path, or a `file://` URL (other schemes are not supported yet).
fn bundle_path(value: &str) -> Result<PathBuf> {
    match value.split_once("://") {
        None => Ok(PathBuf::from(value)),
        Some(("file", path)) => Ok(PathBuf::from(path)),
        Some((scheme, _)) => Err(Error::config(format!(
            "MEGAMODE_BUNDLE {value:?}: only paths and file:// URLs are supported, not {scheme}://"
        ))),
    }
}

fn tasks_allowed(value: Option<String>) -> Result<Option<regex_lite::Regex>> {
    value
        .map(|pattern| {
            regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                Error::config(format!(
                    "MEGAMODE_COMMANDS_ALLOWED is not a regular expression ({e}): {pattern:?}"
                ))
            })
        })
        .transpose()
}

fn compress(value: Option<String>) -> Result<Compress> {
    let Some(value) = value else {
        return Ok(Compress::Auto);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Compress::Auto),
        "off" | "false" | "0" | "no" => Ok(Compress::Off),
        number => number.parse().map(Compress::Above).map_err(|_| {
            Error::config(format!(
                "MEGAMODE_COMPRESS must be auto, off or a size in bytes, got {value:?}"
            ))
        }),
    }
}

/// A positive, finite number of seconds; one beyond any clock (`1e300`) is clamped to
/// `NO_DEADLINE` rather than overflow a `Duration`.
fn seconds(value: Option<String>, name: &str, default: f64) -> Result<Duration> {
    let Some(value) = value else {
        return Ok(Duration::from_secs_f64(default));
    };
    match value.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Ok(Duration::try_from_secs_f64(secs)
            .unwrap_or(NO_DEADLINE)
            .min(NO_DEADLINE)),
        _ => Err(Error::config(format!(
            "{name} must be a positive number of seconds, got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_serve_a_plain_app() {
        let c = config(&[("MEGAMODE_APP_ROOT", "/nonexistent")]).unwrap();
        assert_eq!(c.log_prefix, "Rack");
        assert_eq!(c.pass_through_path, "/events");
        assert_eq!(c.tmp_dir, crate::tmp_dir::default_dir());
        assert_eq!(c.boot_timeout, Duration::from_secs(30));
        assert_eq!(c.command, None);
        assert_eq!(c.base_path, None);
    }

    #[test]
    fn settings_override_defaults() {
        let c = config(&[
            ("MEGAMODE_APP_ROOT", "/srv/app"),
            ("MEGAMODE_COMMAND", "bin/server"),
            ("MEGAMODE_LOG_PREFIX", "Web"),
            ("MEGAMODE_BOOT_TIMEOUT", "2.5"),
            ("MEGAMODE_BASE_PATH", "api/v1/"),
        ])
        .unwrap();
        assert_eq!(c.command.as_deref(), Some("bin/server"));
        assert_eq!(c.log_prefix, "Web");
        assert_eq!(c.boot_timeout, Duration::from_millis(2500));
        assert_eq!(c.base_path.as_deref(), Some("/api/v1"));
    }

    #[test]
    fn copy_app_takes_its_old_name_stage_with_a_note_and_the_new_name_wins() {
        let copy = |pairs: &[(&str, &str)]| {
            let c = config(&[&[("MEGAMODE_APP_ROOT", "/x")], pairs].concat()).unwrap();
            (c.copy_app, c.notes)
        };
        assert_eq!(copy(&[]), (CopyApp::Auto, vec![]));
        assert_eq!(
            copy(&[("MEGAMODE_COPY_APP", "Never")]),
            (CopyApp::Never, vec![])
        );
        let (old, notes) = copy(&[("MEGAMODE_STAGE", "always")]);
        assert_eq!(old, CopyApp::Always);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "MEGAMODE_STAGE is deprecated: use MEGAMODE_COPY_APP (in Megamode.configure, \
                 copy_app instead of stage)"
            ),
            "{}",
            notes[0]
        );
        assert_eq!(
            copy(&[("MEGAMODE_COPY_APP", "never"), ("MEGAMODE_STAGE", "always")]),
            (CopyApp::Never, vec![]),
            "the new name wins, and the old one unused says nothing"
        );
        // An empty value is not set: the other name applies.
        assert_eq!(
            copy(&[("MEGAMODE_COPY_APP", ""), ("MEGAMODE_STAGE", "never")]).0,
            CopyApp::Never
        );
        // A bad value is named by the variable that holds it.
        for name in ["MEGAMODE_COPY_APP", "MEGAMODE_STAGE"] {
            let e = config(&[("MEGAMODE_APP_ROOT", "/x"), (name, "sometimes")]).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("{name} must be auto, always or never")),
                "{e}"
            );
        }
    }

    #[test]
    fn invoke_mode_is_buffered_unless_streaming_is_asked_for() {
        let mode =
            |value: &str| config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_INVOKE_MODE", value)]);
        assert_eq!(mode("").unwrap().invoke_mode, InvokeMode::Buffered);
        assert_eq!(mode("buffered").unwrap().invoke_mode, InvokeMode::Buffered);
        assert_eq!(
            mode(" RESPONSE_STREAM ").unwrap().invoke_mode,
            InvokeMode::ResponseStream
        );
        let error = mode("stream").unwrap_err();
        assert!(
            error.message.contains("MEGAMODE_INVOKE_MODE"),
            "{}",
            error.message
        );
    }

    #[test]
    fn prime_lists_paths_and_names_a_bad_entry() {
        let prime = |value: &str| prime_paths(Some(value.to_string()));
        assert_eq!(prime_paths(None).unwrap(), Vec::<String>::new());
        assert_eq!(
            prime(" /up , /posts?page=2,,").unwrap(),
            vec!["/up".to_string(), "/posts?page=2".to_string()]
        );
        assert_eq!(prime("/").unwrap(), vec!["/".to_string()]);
        // Not ASCII: encoded as a client's request carries it.
        assert_eq!(
            prime("/café?q=ü").unwrap(),
            vec!["/caf%C3%A9?q=%C3%BC".to_string()]
        );
        let error = prime("/up,/posts#top").unwrap_err();
        assert!(
            error.message.contains("\"/posts#top\" has a #fragment"),
            "{}",
            error.message
        );
        for (value, bad) in [
            ("/up,posts", "\"posts\""),
            ("up", "\"up\""),
            ("/up,https://example.com/", "\"https://example.com/\""),
            ("//example.com/up", "\"//example.com/up\""),
            ("/a b", "\"/a b\""),
        ] {
            let error = prime(value).unwrap_err();
            assert_eq!(error.kind, crate::ErrorKind::Config);
            assert!(
                error.message.starts_with("MEGAMODE_PRIME") && error.message.contains(bad),
                "{value}: {}",
                error.message
            );
        }
        // Read with the other settings: a bad entry fails the boot, an empty value primes nothing.
        let c = config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_PRIME", "/up")]).unwrap();
        assert_eq!(c.prime, vec!["/up".to_string()]);
        assert!(config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_PRIME", "up")]).is_err());
        let c = config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_PRIME", "")]).unwrap();
        assert!(c.prime.is_empty());
    }

    #[test]
    fn provisioned_concurrency_and_snap_start_make_the_init_wait() {
        let root = ("MEGAMODE_APP_ROOT", "/x");
        let kind = "AWS_LAMBDA_INITIALIZATION_TYPE";
        let c = |pairs: &[(&str, &str)]| {
            let c = config(&[&[root], pairs].concat()).unwrap();
            (c.init_waits, c.snap_start)
        };
        assert_eq!(c(&[]), (false, false));
        assert_eq!(c(&[(kind, "on-demand")]), (false, false));
        assert_eq!(c(&[(kind, "provisioned-concurrency")]), (true, false));
        assert_eq!(c(&[(kind, "snap-start")]), (true, true));
    }

    #[test]
    fn hook_timeout_defaults_to_a_minute() {
        let c = config(&[("MEGAMODE_APP_ROOT", "/x")]).unwrap();
        assert_eq!(c.hook_timeout, Duration::from_secs(60));
        let c = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_HOOK_TIMEOUT", "2.5"),
        ])
        .unwrap();
        assert_eq!(c.hook_timeout, Duration::from_millis(2500));
        let e = config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_HOOK_TIMEOUT", "0")]).unwrap_err();
        assert!(e.message.contains("MEGAMODE_HOOK_TIMEOUT"), "{e}");
    }

    #[test]
    fn compress_and_error_statuses() {
        let c = config(&[("MEGAMODE_APP_ROOT", "/x")]).unwrap();
        assert_eq!(c.compress, Compress::Auto);
        assert!(!c.is_error_status(500));
        let c = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_COMPRESS", "1024"),
            ("MEGAMODE_ERROR_STATUS", "500, 502-504"),
        ])
        .unwrap();
        assert_eq!(c.compress, Compress::Above(1024));
        assert_eq!(c.error_statuses, Statuses(vec![(500, 500), (502, 504)]));
        assert!(c.is_error_status(503) && c.is_error_status(500));
        assert!(!c.is_error_status(501) && !c.is_error_status(505));
        assert!(c.readiness_statuses.contains(204) && c.readiness_statuses.contains(302));
        assert!(!c.readiness_statuses.contains(404));
        let c = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_READINESS_STATUS", "200,404"),
        ])
        .unwrap();
        assert!(c.readiness_statuses.contains(404) && !c.readiness_statuses.contains(302));
        let c = config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_COMPRESS", "off")]).unwrap();
        assert_eq!(c.compress, Compress::Off);
        for (name, value) in [
            ("MEGAMODE_COMPRESS", "sometimes"),
            ("MEGAMODE_ERROR_STATUS", "5xx"),
            ("MEGAMODE_ERROR_STATUS", "504-502"),
            ("MEGAMODE_ERROR_STATUS", "700"),
            ("MEGAMODE_READINESS_STATUS", "ok"),
        ] {
            let err = config(&[("MEGAMODE_APP_ROOT", "/x"), (name, value)]).unwrap_err();
            assert!(err.message.contains(name), "{err}");
        }
    }

    #[test]
    fn bundle_is_a_path_or_a_file_url() {
        let c = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_BUNDLE", "file:///opt/b/bundle.json"),
        ])
        .unwrap();
        assert_eq!(c.bundle, Some(PathBuf::from("/opt/b/bundle.json")));
        let err =
            config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_BUNDLE", "s3://b/k")]).unwrap_err();
        assert!(err.message.contains("MEGAMODE_BUNDLE"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_COMMAND", "")]).unwrap();
        assert_eq!(c.command, None);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_BOOT_TIMEOUT", "soon"),
        ])
        .unwrap_err();
        assert!(err.message.contains("MEGAMODE_BOOT_TIMEOUT"), "{err}");
        let err = config(&[
            ("MEGAMODE_APP_ROOT", "/x"),
            ("MEGAMODE_PASS_THROUGH_PATH", "events"),
        ])
        .unwrap_err();
        assert!(err.message.contains("MEGAMODE_PASS_THROUGH_PATH"), "{err}");
        for bad in ["inf", "NaN", "-1", "0"] {
            let err =
                config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_BOOT_TIMEOUT", bad)]).unwrap_err();
            assert!(
                err.message.contains("MEGAMODE_BOOT_TIMEOUT"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_boot_timeout_beyond_any_clock_is_clamped_not_a_panic() {
        for huge in ["1e300", "1e20", "1.7976931348623157e308"] {
            let c =
                config(&[("MEGAMODE_APP_ROOT", "/x"), ("MEGAMODE_BOOT_TIMEOUT", huge)]).unwrap();
            assert_eq!(c.boot_timeout, NO_DEADLINE, "{huge}");
        }
    }

    #[test]
    fn the_log_prefix_follows_the_apps_kind() {
        let dir = std::env::temp_dir().join(format!("megamode-prefix-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let root = dir.to_str().unwrap();
        assert_eq!(
            config(&[("MEGAMODE_APP_ROOT", root)]).unwrap().log_prefix,
            "Rack"
        );
        std::fs::write(
            dir.join("config/application.rb"),
            "class App < ::Rails::Application\nend\n",
        )
        .unwrap();
        assert_eq!(
            config(&[("MEGAMODE_APP_ROOT", root)]).unwrap().log_prefix,
            "Rails"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lambda_task_root_app_is_the_default_root() {
        let dir = std::env::temp_dir().join(format!("megamode-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("app")).unwrap();
        let c = config(&[("LAMBDA_TASK_ROOT", dir.to_str().unwrap())]).unwrap();
        assert_eq!(c.app_root, dir.join("app"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
