//! SnapStart's two phases as megamode asks the app to run its hooks in them: before the snapshot
//! (connections that will not survive it closed) and after a restore (what must be unique per
//! environment made again). The app's server runs the hooks itself, in its own processes, when
//! megamode asks over its usual connection:
//!
//! `POST /` with `X-Megamode-Lifecycle: before-snapshot` (or `after-restore`) and
//! `X-Megamode-Lifecycle-Token: <token>`, where the token is `MEGAMODE_LIFECYCLE_TOKEN` in the
//! server's environment (new for every server megamode starts). megamode's adapter answers `204` with
//! `X-Megamode-Lifecycle-Done: <phase>` when every hook ran, or `500` with
//! `X-Megamode-Lifecycle-Failed: <hook>` and the exception (`Class: message`) as its body. Any other
//! answer comes from an app without the adapter: it runs no hooks. A client cannot send these
//! requests: both headers are megamode's own (`events::request`'s `OWNED`), removed from every
//! event, and the token is known only to megamode and the server.

use bytes::Bytes;
use http::response::Parts;
use http::{header, HeaderMap, Method, Request, StatusCode};

use crate::error::{Error, Result};
use crate::proxy::Collect;

/// The variable that gives the server its token.
pub const TOKEN_VARIABLE: &str = "MEGAMODE_LIFECYCLE_TOKEN";
pub const PHASE_HEADER: &str = "x-megamode-lifecycle";
pub const TOKEN_HEADER: &str = "x-megamode-lifecycle-token";
pub const DONE_HEADER: &str = "x-megamode-lifecycle-done";
pub const FAILED_HEADER: &str = "x-megamode-lifecycle-failed";
/// The most of a failed hook's message that is kept (an exception's message, perhaps a backtrace);
/// the rest is read and dropped.
pub const MESSAGE_LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    BeforeSnapshot,
    AfterRestore,
}

impl Phase {
    /// The phase's name in the header, and in the log.
    pub fn name(self) -> &'static str {
        match self {
            Phase::BeforeSnapshot => "before-snapshot",
            Phase::AfterRestore => "after-restore",
        }
    }
}

/// What came of asking the app to run a phase's hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every hook ran.
    Ran,
    /// The hook `hook` raised `message`.
    Failed { hook: String, message: String },
    /// The app answered without megamode's adapter (its status): it runs no hooks.
    NoHooks(StatusCode),
}

/// A new token: 32 hex characters from the system's random source, for one server.
pub fn token() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: writes at most the rest of `bytes`, which it owns.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::boot(format!(
                "cannot make the server's {TOKEN_VARIABLE}: getrandom failed: {e}"
            )));
        }
        filled += n as usize;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The request that asks the app to run `phase`'s hooks.
pub fn request(phase: Phase, token: &str) -> Result<Request<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri("/")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_LENGTH, "0")
        .header(PHASE_HEADER, phase.name())
        .header(TOKEN_HEADER, token)
        .body(Bytes::new())
        .map_err(|e| Error::upstream(format!("cannot build the {} request: {e}", phase.name())))
}

/// The body of the app's answer to a phase's request: its first `MESSAGE_LIMIT` bytes, the rest
/// read and dropped (said at the end), so that a hook whose message is long (a backtrace, an
/// exception that holds a whole response) still fails its phase by name, not as an oversized answer.
#[derive(Default)]
pub struct Message {
    body: Vec<u8>,
    dropped: usize,
}

impl Message {
    pub fn into_body(self) -> Vec<u8> {
        let mut body = self.body;
        if self.dropped > 0 {
            body.extend_from_slice(format!(" ... ({} bytes more)", self.dropped).as_bytes());
        }
        body
    }
}

impl Collect for Message {
    fn head(&mut self, _: &Parts) -> Result<()> {
        Ok(())
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        let room = MESSAGE_LIMIT
            .saturating_sub(self.body.len())
            .min(chunk.len());
        self.body.extend_from_slice(&chunk[..room]);
        self.dropped += chunk.len() - room;
        Ok(())
    }
}

/// What the app's answer to `phase`'s request says.
pub fn outcome(phase: Phase, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
    };
    if let Some(hook) = text(FAILED_HEADER) {
        let message = String::from_utf8_lossy(body).trim().to_string();
        return Outcome::Failed {
            hook: if hook.is_empty() {
                "(unnamed)".into()
            } else {
                hook
            },
            message: if message.is_empty() {
                format!("the app answered {status} and said nothing more")
            } else {
                message
            },
        };
    }
    match text(DONE_HEADER) {
        Some(done) if done == phase.name() && status.is_success() => Outcome::Ran,
        _ => Outcome::NoHooks(status),
    }
}

/// The log line for an app that runs no megamode hooks (said once per phase).
pub fn no_hooks_note(phase: Phase, status: StatusCode) -> String {
    format!(
        "SnapStart {}: the app runs no megamode hooks (it answered megamode's request with {status}, \
         not megamode's adapter): for Rails, add the megamode gem (megamode/rails); for another Rack \
         app, require \"megamode/rack/lifecycle\" and put `use Megamode::Rack::Lifecycle` first in \
         its config.ru, then register hooks with Megamode.before_snapshot and Megamode.after_restore",
        phase.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn tokens_are_32_hex_characters_and_new_each_time() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_request_names_the_phase_and_carries_the_token() {
        let req = request(Phase::AfterRestore, "abc").unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/");
        assert_eq!(req.headers()[PHASE_HEADER], "after-restore");
        assert_eq!(req.headers()[TOKEN_HEADER], "abc");
        assert!(req.body().is_empty());
    }

    #[test]
    fn a_long_message_is_kept_in_part_and_names_its_hook() {
        let mut message = Message::default();
        message
            .chunk(Bytes::from(vec![b'm'; MESSAGE_LIMIT - 1]))
            .unwrap();
        message.chunk(Bytes::from_static(b"xyz")).unwrap();
        message.chunk(Bytes::from(vec![b'z'; 100_000])).unwrap();
        let body = message.into_body();
        assert!(body.starts_with(&[b'm'; 100]));
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.ends_with("mx ... (100002 bytes more)"),
            "{}",
            &text[text.len() - 40..]
        );
        let failed = headers(&[(FAILED_HEADER, "huge")]);
        let outcome = outcome(
            Phase::AfterRestore,
            StatusCode::INTERNAL_SERVER_ERROR,
            &failed,
            &body,
        );
        assert!(matches!(outcome, Outcome::Failed { hook, .. } if hook == "huge"));
    }

    #[test]
    fn the_adapters_answers_and_any_other() {
        let phase = Phase::BeforeSnapshot;
        let done = headers(&[(DONE_HEADER, "before-snapshot")]);
        assert_eq!(
            outcome(phase, StatusCode::NO_CONTENT, &done, b""),
            Outcome::Ran
        );
        // Done for another phase is not this one's.
        let other = headers(&[(DONE_HEADER, "after-restore")]);
        assert_eq!(
            outcome(phase, StatusCode::NO_CONTENT, &other, b""),
            Outcome::NoHooks(StatusCode::NO_CONTENT)
        );
        let failed = headers(&[(FAILED_HEADER, "close_pools")]);
        assert_eq!(
            outcome(
                phase,
                StatusCode::INTERNAL_SERVER_ERROR,
                &failed,
                b"RuntimeError: boom\n"
            ),
            Outcome::Failed {
                hook: "close_pools".into(),
                message: "RuntimeError: boom".into()
            }
        );
        // A plain app: its own page, whatever the status.
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert_eq!(
                outcome(phase, status, &HeaderMap::new(), b"<html>"),
                Outcome::NoHooks(status)
            );
        }
        let note = no_hooks_note(phase, StatusCode::OK);
        // The middleware that answers megamode's request (Megamode::Rack::Prefix does not).
        assert!(
            note.contains("no megamode hooks") && note.contains("use Megamode::Rack::Lifecycle")
        );
    }
}
