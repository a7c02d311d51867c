//! SnapStart's cycle, from the end of init to a restored environment: the one both ways of running
//! use. The native loop runs it in its init; with Lambda's Ruby runtime client, the package's
//! handler.rb runs it while the client loads it (`Megamode.snap_start`), since that client leaves
//! the lifecycle to the image.
//!
//! In order: the server ready (a snapshot of a half-booted app is useless), the paths of
//! `MEGAMODE_PRIME` asked for (what the app loads lazily is then in the snapshot), the app's
//! before-snapshot hooks, megamode's connection to the app closed (it would not survive the
//! snapshot), the Runtime API's restore call, which returns in an environment restored from the
//! snapshot; there the server must answer on a new connection (and `MEGAMODE_READINESS_PATH`, when
//! set, answer healthy again: the boot's check) and the app's after-restore hooks run.
//! A failure before the restore call is the init's, for the caller to report (the native loop posts
//! it; Lambda's Ruby runtime client posts what handler.rb raises); one after it is posted here on
//! the restore error call, as only this side knows the restore happened.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request};

use crate::cancel::Cancel;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::{self, Outcome, Phase};
use crate::runtime::api::RuntimeApi;

/// What ended the cycle early.
#[derive(Debug)]
pub enum Failure {
    /// The init failed (the server not ready, a before-snapshot hook): nothing posted yet; the
    /// caller reports it as the init error.
    Init(Error),
    /// After the restore (the server not answering again, an after-restore hook): posted on the
    /// restore error call already. Lambda discards the environment: the caller ends it.
    Restore(Error),
    /// The Runtime API failed, or the caller was interrupted: nothing to post.
    Ended(Error),
}

impl Failure {
    pub fn error(&self) -> &Error {
        match self {
            Failure::Init(error) | Failure::Restore(error) | Failure::Ended(error) => error,
        }
    }
}

/// Runs the cycle on `engine`, talking to Lambda through `api`, until `cancel`; `error_type` names
/// an error's kind in Lambda's error shape (the caller's names: `Megamode::AppError`, ...).
pub fn cycle(
    engine: &mut Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    error_type: &dyn Fn(ErrorKind) -> &'static str,
) -> std::result::Result<(), Failure> {
    // Only where Lambda snapshots, and once: asked again, in an environment restored already, the
    // before-snapshot hooks would close what the app has just opened, for no snapshot.
    if !engine.snap_start() {
        return Err(Failure::Init(Error::config(
            "SnapStart's cycle runs only in an init for SnapStart \
             (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): this one is not, so there is no snapshot \
             to prepare; call Megamode.snap_start only then (handler.rb does)",
        )));
    }
    if engine.restore_asked() {
        return Err(Failure::Init(Error::config(
            "SnapStart's cycle has run in this environment already (it runs once, in the init): \
             call Megamode.snap_start once",
        )));
    }
    engine
        .boot()
        .and_then(|()| engine.wait_ready(cancel))
        .map_err(|error| {
            if error.kind == ErrorKind::Interrupted {
                return Failure::Ended(error);
            }
            Failure::Init(Error::new(
                error.kind,
                format!(
                    "SnapStart: the app's server was not ready by the end of init: {}",
                    error.message
                ),
            ))
        })?;
    prime(engine, cancel).map_err(before_restore)?;
    let started = Instant::now();
    hooks(engine, Phase::BeforeSnapshot, cancel).map_err(before_restore)?;
    engine.close_connection();
    engine.note(&format!(
        "SnapStart: before-snapshot {} ms; init done, waiting for the snapshot and a restore",
        started.elapsed().as_millis()
    ));
    let io = engine.io_runtime().map_err(Failure::Ended)?;
    engine.restore_asking();
    // Wall time: the monotonic clock may not count the time the snapshot waited.
    let asked = SystemTime::now();
    io.block_on(cancel.unless_cancelled("talking to the Runtime API", api.restore_next()))
        .map_err(Failure::Ended)?;
    let waited = SystemTime::now()
        .duration_since(asked)
        .unwrap_or_default()
        .as_millis();
    let started = Instant::now();
    let restored = engine
        .answer_again(cancel)
        .and_then(|()| hooks(engine, Phase::AfterRestore, cancel));
    if let Err(error) = restored {
        if error.kind == ErrorKind::Interrupted {
            return Err(Failure::Ended(error));
        }
        engine.note(&format!("SnapStart: the restore failed: {}", error.message));
        let posted = io.block_on(cancel.unless_cancelled(
            "talking to the Runtime API",
            api.restore_error(error_type(error.kind), &error.message),
        ));
        return Err(match posted {
            Ok(()) => Failure::Restore(error),
            Err(post) => Failure::Ended(post),
        });
    }
    engine.note(&format!(
        "SnapStart: restored after a {waited} ms wait; after-restore {} ms",
        started.elapsed().as_millis()
    ));
    Ok(())
}

/// A step before the restore call failed: the init's failure, or the end of the cycle when the
/// caller interrupted it.
fn before_restore(error: Error) -> Failure {
    match error.kind {
        ErrorKind::Interrupted => Failure::Ended(error),
        _ => Failure::Init(error),
    }
}

/// Asks the app for each path of `MEGAMODE_PRIME`, one line each in the log. A path that fails
/// (a 4xx or 5xx, no answer) is a warning: the snapshot is still worth having. Only an interruption ends
/// the cycle.
fn prime(engine: &mut Engine, cancel: &Cancel) -> Result<()> {
    for path in engine.prime_paths().to_vec() {
        let started = Instant::now();
        let request = prime_request(&path)?;
        let answered = engine.send_own(request, cancel);
        let ms = started.elapsed().as_millis();
        match answered {
            Ok(status) if status.is_server_error() => engine.note(&format!(
                "SnapStart: warning: priming GET {path} answered {status} in {ms} ms: the snapshot \
                 is taken without what that request would have loaded. See the app's log above for \
                 the error, and fix it or take {path} out of MEGAMODE_PRIME"
            )),
            // It primed nothing useful: a typo in the path, a host or scheme the app refuses.
            Ok(status) if status.is_client_error() => engine.note(&format!(
                "SnapStart: warning: priming GET {path} answered {status} in {ms} ms: the app \
                 refused it, so it primed little (a mistyped path, or a host the app does not \
                 admit: megamode asks for Host: localhost over HTTPS). Give MEGAMODE_PRIME a path \
                 the app answers with a success, or take {path} out"
            )),
            Ok(status) => engine.note(&format!(
                "SnapStart: primed GET {path}: {status} in {ms} ms"
            )),
            Err(error) if error.kind == ErrorKind::Interrupted => return Err(error),
            Err(error) => {
                let why = error.message;
                engine.note(&format!(
                    "SnapStart: warning: priming GET {path} failed after {ms} ms: {why}. The \
                     snapshot is taken without what that request would have loaded: check that the \
                     app answers {path}, or take it out of MEGAMODE_PRIME"
                ));
            }
        }
    }
    Ok(())
}

/// A priming request for `path`: a GET as a client's would reach the app through megamode, over
/// HTTPS (so that an app that forces SSL, as Rails' `force_ssl` does, answers it rather than
/// redirecting), for a host the app admits (megamode's Rails adapter admits localhost).
pub fn prime_request(path: &str) -> Result<Request<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, "localhost")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .header(header::USER_AGENT, "megamode (SnapStart priming)")
        .header(header::ACCEPT, "*/*")
        .header(header::CONTENT_LENGTH, "0")
        .body(Bytes::new())
        .map_err(|e| {
            Error::config(format!(
                "MEGAMODE_PRIME: {path:?} is not a usable path: {e}"
            ))
        })
}

/// Asks the app to run `phase`'s hooks: an error when one failed; an app without megamode's
/// adapter is said in the log, and the phase goes on.
fn hooks(engine: &mut Engine, phase: Phase, cancel: &Cancel) -> Result<()> {
    match engine.run_hooks(phase, cancel)? {
        Outcome::Ran => Ok(()),
        Outcome::NoHooks(status) => {
            engine.note(&lifecycle::no_hooks_note(phase, status));
            Ok(())
        }
        Outcome::Failed { hook, message } => Err(Error::new(
            ErrorKind::App,
            format!(
                "SnapStart: the app's {} hook {hook} failed: {message}",
                phase.name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_priming_request_is_a_clients_get_over_https() {
        let request = prime_request("/posts?page=2").unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/posts?page=2");
        assert_eq!(request.headers()[header::HOST], "localhost");
        assert_eq!(request.headers()["x-forwarded-proto"], "https");
        assert!(request.body().is_empty());
    }
}
