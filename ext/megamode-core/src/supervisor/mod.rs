//! The app's server, supervised: start it (through `launch`), know when it is ready, restart it
//! when it died or hung, hold the connection to it, send each request within the invocation's
//! deadline, stop it.

pub mod cause;
pub mod launch;
pub mod server;
pub mod watchdog;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request};

use crate::config::{Config, Statuses};
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::{self, Outcome, Phase};
use crate::listen::Target;
use crate::logs::LogSink;
use crate::proxy::{Collect, Discard, Proxy};
use launch::{Launch, Site};

pub use server::{describe, Failure, Server};

/// Kept back from the invocation's remaining time, so that a request the app does not finish in time
/// still gets a 504 back to Lambda before Lambda ends the invocation.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// A dying server closes its sockets a moment before its exit can be reaped: how long a failed
/// request waits to tell a crash from a mere connection error.
const CRASH_NOTICE: Duration = Duration::from_millis(50);
/// Timeouts in a row after which the server counts as hung and is replaced.
const HUNG_AFTER: u32 = 2;
/// How often an unhealthy readiness path is asked again.
const READINESS_RETRY: Duration = Duration::from_millis(10);
/// The longest an invocation waits for the server's output of that request to reach the log.
const LOG_DRAIN: Duration = Duration::from_millis(20);
/// puma's last boot line (puma 5 and 6, single and cluster mode), printed just after it listens.
const PUMA_BOOTED: &str = "Use Ctrl-C to stop";
/// Without such a line, the boot's output has ended when the server was quiet this long ...
const BOOT_OUTPUT_QUIET: Duration = Duration::from_millis(50);
/// ... and the invocation that waited for the boot waits at most this long for it.
const BOOT_OUTPUT_LIMIT: Duration = Duration::from_millis(500);

/// What can be told about the server, for tests and diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub socket: Option<String>,
    pub ready: bool,
    pub connections_opened: u64,
    pub boot_ms: Option<u64>,
}

/// The server and the connection to it.
pub struct Supervisor {
    config: Arc<Config>,
    logs: LogSink,
    server: Option<Server>,
    proxy: Option<Proxy>,
    ready: bool,
    boot_ms: Option<u64>,
    connections_before: u64,
    restarts: Restarts,
    /// Requests in a row that the app did not answer in time.
    timeouts: u32,
    /// How long copying the app took for the current server (0 when it was copied already).
    copy_ms: Option<u64>,
    /// How long unpacking the gem bundle took.
    lazy_ms: Option<u64>,
    /// Whether the cold start's breakdown has been logged (once, after the first response).
    cold_start_logged: bool,
    /// The state of bootsnap's cache for the current server.
    bootsnap: Option<crate::bootsnap::Cache>,
    /// The server became ready during this call: the rest of its boot output is waited for before
    /// the call ends (`drain_logs`).
    boot_output_pending: bool,
}

impl Supervisor {
    pub fn new(config: Arc<Config>, logs: LogSink) -> Supervisor {
        Supervisor {
            config,
            logs,
            server: None,
            proxy: None,
            ready: false,
            boot_ms: None,
            connections_before: 0,
            restarts: Restarts::default(),
            timeouts: 0,
            copy_ms: None,
            lazy_ms: None,
            cold_start_logged: false,
            bootsnap: None,
            boot_output_pending: false,
        }
    }

    /// Starts the server unless it runs (without waiting for it).
    pub fn boot(&mut self) -> Result<()> {
        if self.server.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// How long the current server took from its spawn to ready.
    pub fn boot_ms(&self) -> Option<u64> {
        self.boot_ms
    }

    /// Where the server runs, and with what environment; prepared anew when there is no server.
    pub fn site(&mut self) -> Result<Site> {
        match &self.server {
            Some(server) => Ok(Site {
                dir: server.launch().dir.clone(),
                env: server.launch().env.clone(),
                copy_ms: None,
                lazy_ms: None,
                bootsnap: None,
                app: crate::app::App::new(&self.config.app_root),
            }),
            None => Site::prepare(&self.config, &self.logs),
        }
    }

    /// Starts the server when there is none (or it died), then waits until it accepts connections.
    pub async fn ensure_ready(&mut self) -> Result<()> {
        if self.ready {
            let exited = self.server.as_mut().and_then(Server::exited);
            match exited {
                None => return Ok(()),
                // It crashed between requests: a new one is started below.
                Some(_) => self.note_crash(),
            }
        }
        if self.server.is_none() {
            let pause = self.restarts.next_start(Instant::now())?;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if let Err(e) = self.spawn() {
                self.restarts.failed(&e.message, None);
                return Err(e);
            }
        }
        let limit = self.config.boot_timeout;
        let server = self
            .server
            .as_mut()
            .ok_or_else(|| Error::boot("the app's server is not running"))?;
        let config = &self.config;
        let ready = async {
            let stream = server.wait_ready(limit).await?;
            let mut proxy = Proxy::new(server.target().clone());
            proxy.adopt(stream).await?;
            if let Some(path) = &config.readiness_path {
                let deadline = server.spawned_at() + limit;
                let healthy = &config.readiness_statuses;
                let name = "MEGAMODE_BOOT_TIMEOUT";
                wait_healthy(server, &mut proxy, path, healthy, (deadline, limit, name)).await?;
            }
            Ok::<_, Error>(proxy)
        };
        let proxy = match ready.await {
            Ok(proxy) => proxy,
            Err(e) => {
                // The next event tries again with a new server rather than repeating this error.
                let failure = self.server.as_ref().and_then(Server::failure);
                match failure.filter(|f| f.message() == e.message) {
                    Some(failure) => self.restarts.failed_boot(failure),
                    None => self.restarts.failed(&e.message, None),
                }
                self.server = None;
                return Err(e);
            }
        };
        let server = self
            .server
            .as_mut()
            .ok_or_else(|| Error::boot("the app's server is not running"))?;
        // The server's own boot: when its watcher first saw it ready, not when an event first
        // asked (after Megamode.boot at init, that can be much later).
        let now = Instant::now();
        let ready_at = server.ready_at().map_or(now, |at| at.min(now));
        self.boot_ms = Some(
            ready_at
                .saturating_duration_since(server.spawned_at())
                .as_millis() as u64,
        );
        self.proxy = Some(proxy);
        self.ready = true;
        self.boot_output_pending = true;
        Ok(())
    }

    /// Sends a request within the invocation's `remaining` time (less `DEADLINE_MARGIN`); its body
    /// goes to `collect`. A server that dies meanwhile is forgotten (the next event starts a new
    /// one), and one that let requests time out `HUNG_AFTER` times in a row is killed.
    pub async fn send(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
        remaining: Duration,
    ) -> Result<http::response::Parts> {
        self.exchange(request, collect, remaining, true).await
    }

    /// As `send`, for a request of megamode's own (SnapStart's priming and lifecycle requests): its
    /// timeout does not count towards a hung server. A slow priming path is the app's right (a
    /// first request that loads much), and a server killed for it during the init would leave an
    /// unprimed one to be snapshotted, the log saying something else.
    pub async fn send_own(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
        remaining: Duration,
    ) -> Result<http::response::Parts> {
        self.exchange(request, collect, remaining, false).await
    }

    async fn exchange(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
        remaining: Duration,
        counted: bool,
    ) -> Result<http::response::Parts> {
        let budget = if remaining > DEADLINE_MARGIN * 2 {
            remaining - DEADLINE_MARGIN
        } else {
            remaining / 2
        };
        let proxy = self
            .proxy
            .as_mut()
            .ok_or_else(|| Error::upstream("the app's server is not running"))?;
        let mut collect = Heard {
            inner: collect,
            heard: false,
        };
        let sent = tokio::time::timeout(budget, proxy.send(request, &mut collect)).await;
        match sent {
            Ok(Ok(head)) => {
                self.timeouts = 0;
                Ok(head)
            }
            Ok(Err(e)) if e.kind == ErrorKind::Oversize => {
                // The app answered; megamode stopped reading (the proxy dropped the connection).
                self.timeouts = 0;
                Err(e)
            }
            Ok(Err(e)) => {
                // Said plainly when the server died; the details (its last lines) go to the log
                // only, not to the client.
                let died = match self.server.as_mut() {
                    Some(server) => server.exit_within(CRASH_NOTICE).await,
                    None => None,
                };
                self.note_crash();
                Err(match died {
                    Some(status) => Error::upstream(format!(
                        "the app's server {} while handling the request",
                        describe(status)
                    )),
                    None => e,
                })
            }
            Err(_) if collect.heard => {
                // The app answered and its body was still arriving (a long stream, a slow
                // download): the server is alive, so this does not count towards a hung one. The
                // connection is mid-body: drop it.
                proxy.reset();
                self.timeouts = 0;
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the app's response was still arriving at the invocation's deadline ({} ms left when the request was sent)",
                        remaining.as_millis()
                    ),
                ))
            }
            Err(_) => {
                // The connection has a request in flight that will never be read: drop it.
                proxy.reset();
                if counted {
                    self.timeouts += 1;
                    if self.timeouts >= HUNG_AFTER {
                        self.restart_hung();
                    }
                }
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the app did not answer within the invocation's time ({} ms left when the request was sent)",
                        remaining.as_millis()
                    ),
                ))
            }
        }
    }

    /// Asks the app to run `phase`'s SnapStart hooks (see `lifecycle`), within `limit`.
    pub async fn run_hooks(&mut self, phase: Phase, limit: Duration) -> Result<Outcome> {
        let token = self
            .server
            .as_ref()
            .map(|server| server.launch().lifecycle_token.clone())
            .ok_or_else(|| Error::upstream("the app's server is not running"))?;
        let request = lifecycle::request(phase, &token)?;
        let mut body = lifecycle::Message::default();
        // `send` keeps a margin back from an invocation's time; a phase has no invocation.
        let head = match self
            .send_own(request, &mut body, limit + DEADLINE_MARGIN)
            .await
        {
            Ok(head) => head,
            Err(e) if e.kind == ErrorKind::Timeout => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the app's {} hooks did not finish within {:.1} s (MEGAMODE_HOOK_TIMEOUT)",
                        phase.name(),
                        limit.as_secs_f64()
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        self.answered();
        if phase == Phase::BeforeSnapshot {
            // The cold start is the init's, which a snapshot ends: said now, its first response the
            // app's answer to this request, not at the first event after a restore, however much
            // later that comes (and on a clock that may not have counted the time between).
            self.log_cold_start();
        }
        Ok(lifecycle::outcome(
            phase,
            head.status,
            &head.headers,
            &body.into_body(),
        ))
    }

    /// After a restore: no connection from before the snapshot is used again (the server may have
    /// closed it while the environment was frozen, and the monotonic clock that ages it may have
    /// jumped), and the server must accept a new one within `limit`; with
    /// `MEGAMODE_READINESS_PATH`, that path must then answer healthy, as at the boot, within the
    /// same `limit` (what the app opened before the snapshot may not have survived it).
    pub async fn answer_again(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        self.accept_again(deadline, limit).await?;
        let Some(path) = self.config.readiness_path.clone() else {
            return Ok(());
        };
        let healthy = self.config.readiness_statuses.clone();
        let (Some(server), Some(proxy)) = (self.server.as_mut(), self.proxy.as_mut()) else {
            return Err(Error::boot("the app's server is not running"));
        };
        let within = (deadline, limit, "MEGAMODE_HOOK_TIMEOUT");
        wait_healthy(server, proxy, &path, &healthy, within)
            .await
            .map_err(|e| Error::new(e.kind, format!("after the restore, {}", e.message)))
    }

    /// After a restore: a new connection to the server, made before `deadline`.
    async fn accept_again(&mut self, deadline: Instant, limit: Duration) -> Result<()> {
        self.reset_connection();
        loop {
            let server = self
                .server
                .as_mut()
                .ok_or_else(|| Error::boot("the app's server is not running"))?;
            if let Some(status) = server.exited() {
                let error = server.died(status);
                self.note_crash();
                return Err(error);
            }
            let target = server.target().clone();
            match target.connect().await {
                Ok(stream) => {
                    let proxy = self.proxy.get_or_insert_with(|| Proxy::new(target.clone()));
                    return proxy.adopt(stream).await;
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::boot(format!(
                        "after the restore, the app's server at {target} did not accept a \
                         connection within {:.1} s: {e}",
                        limit.as_secs_f64()
                    )))
                }
                Err(_) => tokio::time::sleep(READINESS_RETRY).await,
            }
        }
    }

    /// The app answered a request: whatever failed before is over.
    pub fn answered(&mut self) {
        self.restarts.succeeded();
    }

    /// Once per server: how long its cold start took, in one line.
    pub fn log_cold_start(&mut self) {
        if self.cold_start_logged {
            return;
        }
        self.cold_start_logged = true;
        if let (Some(server), Some(boot_ms)) = (&self.server, self.boot_ms) {
            let first_ms = server.spawned_at().elapsed().as_millis();
            // What bootsnap did with the package's cache, counted where the server ran, not taken
            // from the record: a walk of the cache's directory, once per server, on the first
            // response's path (a few milliseconds for the 1,200 entries of a scaffold app).
            let bootsnap = match &self.bootsnap {
                Some(crate::bootsnap::Cache::Shipped) => {
                    match crate::bootsnap::written(&server.launch().dir) {
                        Some(written) => {
                            format!(" ({}, {written})", crate::bootsnap::Cache::Shipped)
                        }
                        None => format!(
                            " ({}, gone from {} after booting)",
                            crate::bootsnap::Cache::Shipped,
                            crate::bootsnap::CACHE
                        ),
                    }
                }
                Some(other) => format!(" ({other})"),
                None => String::new(),
            };
            self.logs.line(
                "megamode",
                &format!(
                    "cold start: copy {} ms, lazy-load {} ms, spawn to ready {boot_ms} ms{}, first response {} ms after spawn",
                    self.copy_ms.unwrap_or(0),
                    self.lazy_ms.unwrap_or(0),
                    bootsnap,
                    first_ms
                ),
            );
        }
    }

    /// Forgets the connection: a request may have been cut off half way.
    pub fn reset_connection(&mut self) {
        if let Some(proxy) = self.proxy.as_mut() {
            proxy.reset();
        }
    }

    /// Waits a moment for the server's output of the last request to reach the log; after the
    /// call that saw the server become ready, for the rest of its boot output too.
    pub fn drain_logs(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        if std::mem::take(&mut self.boot_output_pending) {
            let marker = server
                .launch()
                .command
                .contains("puma")
                .then_some(PUMA_BOOTED);
            server
                .logs()
                .settle(marker, BOOT_OUTPUT_QUIET, BOOT_OUTPUT_LIMIT);
        }
        server.logs().drain(LOG_DRAIN);
    }

    pub fn status(&self) -> Status {
        Status {
            pid: self.server.as_ref().map(Server::pid),
            port: self.server.as_ref().and_then(|s| match s.target() {
                Target::Tcp(addr) => Some(addr.port()),
                Target::Unix(_) => None,
            }),
            socket: self.server.as_ref().and_then(|s| match s.target() {
                Target::Unix(path) => Some(path.display().to_string()),
                Target::Tcp(_) => None,
            }),
            ready: self.ready,
            connections_opened: self.connections_before
                + self.proxy.as_ref().map_or(0, Proxy::connections_opened),
            boot_ms: self.boot_ms,
        }
    }

    /// Stops the server and everything it started. Safe to call twice.
    pub fn shutdown(&mut self) {
        self.proxy = None;
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
        self.ready = false;
    }

    /// After a fork, the server and the connection are the parent's: leave them alone (no drop,
    /// which would stop the parent's server); the next event starts afresh.
    pub fn forget(&mut self) {
        std::mem::forget(self.proxy.take());
        std::mem::forget(self.server.take());
        self.ready = false;
        self.connections_before = 0;
    }

    /// A server that let requests time out `HUNG_AFTER` times in a row is stuck (a deadlock, every
    /// thread busy forever): it is killed, and the next event starts a new one.
    fn restart_hung(&mut self) {
        if let Some(mut server) = self.server.take() {
            self.logs.line(
                "megamode",
                &format!(
                    "the app's server (pid {}) did not answer {} requests in a row: killing it; the next event starts a new one",
                    server.pid(),
                    self.timeouts
                ),
            );
            server.kill();
        }
        self.connections_before += self.proxy.as_ref().map_or(0, Proxy::connections_opened);
        self.proxy = None;
        self.ready = false;
        self.timeouts = 0;
    }

    /// Forgets a server that has exited, so that the next event starts a new one.
    fn note_crash(&mut self) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        if let Some(status) = server.exited() {
            let report = server.died(status);
            match server.failure() {
                Some(failure) => self.restarts.failed_boot(failure),
                None => self.restarts.failed(&report.message, None),
            }
            self.logs
                .line("megamode", &format!("{report}; it will be started again"));
            self.connections_before += self.proxy.as_ref().map_or(0, Proxy::connections_opened);
            self.proxy = None;
            self.server = None;
            self.ready = false;
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let site = Site::prepare(&self.config, &self.logs)?;
        self.copy_ms = site.copy_ms;
        self.lazy_ms = site.lazy_ms;
        self.bootsnap = site.bootsnap.clone();
        let launch = Launch::new(&self.config, &self.logs, site)?;
        self.server = Some(Server::spawn(launch)?);
        self.ready = false;
        self.cold_start_logged = false;
        Ok(())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// With `MEGAMODE_READINESS_PATH`, a server that listens is ready once that path answers with one
/// of the healthy statuses (`MEGAMODE_READINESS_STATUS`, by default a success or a redirect): apps
/// that listen before they can serve, such as a Rails app still eager loading in a forked worker.
/// Asked until `deadline`, the end of `limit` (the variable `limit_name`) from when it began: at
/// the boot, and again after a SnapStart restore.
async fn wait_healthy(
    server: &mut Server,
    proxy: &mut Proxy,
    path: &str,
    healthy: &Statuses,
    (deadline, limit, limit_name): (Instant, Duration, &str),
) -> Result<()> {
    loop {
        if let Some(status) = server.exited() {
            return Err(server.died(status));
        }
        let request = Request::get(path)
            .header(header::HOST, "localhost")
            .body(Bytes::new())
            .map_err(|e| {
                Error::config(format!(
                    "MEGAMODE_READINESS_PATH {path:?} is not a usable path: {e}"
                ))
            })?;
        let answer = match proxy.send(request, &mut Discard).await {
            Ok(head) if healthy.contains(head.status.as_u16()) => return Ok(()),
            Ok(head) => format!("answered {}", head.status),
            Err(e) => format!("could not be asked ({})", e.message),
        };
        if Instant::now() >= deadline {
            server.stop();
            return Err(Error::boot(format!(
                "the app's server listens, but {path} (MEGAMODE_READINESS_PATH) was not healthy within {:.1} s ({limit_name}): it {answer}",
                limit.as_secs_f64()
            )));
        }
        tokio::time::sleep(READINESS_RETRY).await;
    }
}

/// Failures in a row after which restarts stop until `COOL_DOWN` has passed.
const MAX_FAILURES: u32 = 5;
const COOL_DOWN: Duration = Duration::from_secs(30);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// When to start a server again after it failed (exited during boot, never became ready, or died
/// while serving): after a pause that doubles with each failure in a row, and, after
/// `MAX_FAILURES`, not before a cool-down, with an error that says why, instead of a hot loop.
#[derive(Debug, Default)]
pub struct Restarts {
    failures: u32,
    /// When the last failure was, what happened, and the cause the app gave, which the error that
    /// refuses a start leads with.
    last: Option<(Instant, String, Option<String>)>,
}

impl Restarts {
    pub fn failed(&mut self, why: &str, cause: Option<&str>) {
        self.failures += 1;
        self.last = Some((Instant::now(), why.to_string(), cause.map(str::to_string)));
    }

    pub fn failed_boot(&mut self, failure: &Failure) {
        self.failed(&failure.context, failure.cause.as_deref());
    }

    /// The app served a request: whatever failed before is over.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.last = None;
    }

    /// How long to wait before the next start, or the error that refuses it for now.
    pub fn next_start(&self, now: Instant) -> Result<Duration> {
        let Some((at, why, cause)) = &self.last else {
            return Ok(Duration::ZERO);
        };
        let since = now.saturating_duration_since(*at);
        if self.failures >= MAX_FAILURES && since < COOL_DOWN {
            return Err(Error::boot(
                Failure {
                    cause: cause.clone(),
                    context: format!(
                        "the app's server failed {} times in a row, so megamode waits {} s before \
                         starting it again, {:.0} s to go; the last failure: {why}",
                        self.failures,
                        COOL_DOWN.as_secs(),
                        (COOL_DOWN - since).as_secs_f64().ceil()
                    ),
                }
                .message(),
            ));
        }
        let pause = Duration::from_millis(100)
            .saturating_mul(1 << (self.failures.saturating_sub(1)).min(16))
            .min(MAX_PAUSE);
        Ok(pause.saturating_sub(since))
    }
}

/// The live processes of `groups` once there are none, or when `within` has passed: killed
/// processes take a moment to die, and linger as zombies (not counted) until reaped.
/// A collector that notes whether the response's head arrived, so that a deadline reached while
/// the body is still coming is told apart from a server that never answered.
struct Heard<'a, C: Collect> {
    inner: &'a mut C,
    heard: bool,
}

impl<C: Collect> Collect for Heard<'_, C> {
    fn ready(&mut self) -> impl std::future::Future<Output = Result<()>> {
        self.inner.ready()
    }

    fn head(&mut self, head: &http::response::Parts) -> Result<()> {
        self.heard = true;
        self.inner.head(head)
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.chunk(chunk)
    }
}

#[cfg(test)]
pub(crate) fn survivors(groups: &[libc::pid_t], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let live: Vec<i32> = groups.iter().flat_map(|&g| live_members(g)).collect();
        if live.is_empty() || Instant::now() >= deadline {
            return live;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
pub(crate) fn live_members(pgid: libc::pid_t) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name's closing parenthesis: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            pids.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_pause_longer_after_each_failure_then_stop_with_the_reason() {
        let mut restarts = Restarts::default();
        let now = Instant::now();
        assert_eq!(restarts.next_start(now).unwrap(), Duration::ZERO);
        let mut pauses = Vec::new();
        for i in 0..MAX_FAILURES - 1 {
            restarts.failed(&format!("exit {i}"), None);
            let at = restarts.last.as_ref().unwrap().0;
            pauses.push(restarts.next_start(at).unwrap());
        }
        assert_eq!(pauses, [100, 200, 400, 800].map(Duration::from_millis));
        restarts.failed(
            "exited with status 1 while booting",
            Some("LoadError: cannot load such file -- rails"),
        );
        let at = restarts.last.as_ref().unwrap().0;
        let err = restarts
            .next_start(at + Duration::from_secs(1))
            .unwrap_err();
        // The app's cause first, on this refusal too.
        assert!(
            err.message
                .starts_with("LoadError: cannot load such file -- rails\n(the app's server failed 5 times in a row"),
            "{err}"
        );
        assert!(
            err.message
                .contains("the last failure: exited with status 1"),
            "{err}"
        );
        // After the cool-down, one more try, after the longest pause at most.
        assert!(restarts.next_start(at + COOL_DOWN).unwrap() <= MAX_PAUSE);
        restarts.succeeded();
        assert_eq!(restarts.next_start(at).unwrap(), Duration::ZERO);
    }
}
