//! One Lambda environment's worth of megamode: the app's server, the connection to it, and the
//! per-request path (classify, translate, proxy, respond) that both callers share.
//!
//! Every call blocks the calling thread on a tokio runtime of its own; the Ruby binding makes that
//! call with the GVL released. The runtime, the server and the connection belong to the process that
//! made them: after a `fork` the child starts afresh instead of touching its parent's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::clock::iso8601;
use crate::config::{Config, Stage, Statuses, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, EventKind, Source};
use crate::fit;
use crate::invocation::Invocation;
use crate::listen::Target;
use crate::logs::LogSink;
use crate::proxy::{Collect, Discard, Proxy, UpTo};
use crate::supervisor::{self, Health, Launch, Restarts, Server};

/// Kept back from the invocation's remaining time, so that a request the app does not finish in time
/// still gets a 504 back to Lambda before Lambda ends the invocation.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// A dying server closes its sockets a moment before its exit can be reaped: how long a failed
/// request waits to tell a crash from a mere connection error.
const CRASH_NOTICE: Duration = Duration::from_millis(50);
/// Timeouts in a row after which the server counts as hung and is replaced.
const HUNG_AFTER: u32 = 2;
/// How often an unhealthy readiness path is asked again.
const READINESS_RETRY: Duration = Duration::from_millis(10);
/// The longest an invocation waits for the server's output of that request to reach the log.
const LOG_DRAIN: Duration = Duration::from_millis(20);
/// The most an answer to a pass-through event may be: it becomes the invocation's result, which
/// Lambda takes up to 6 MB.
const PASS_THROUGH_LIMIT: usize = 6 * 1024 * 1024;

/// Lets another thread stop a call that is waiting (Ruby's unblock function, on Thread#raise or
/// Ctrl-C).
///
/// A caller can be woken for nothing (Ruby also wakes a blocked thread to run a signal handler), so a
/// `confirm` hook, when given, decides whether a wake-up really stops the call; when it does not, the
/// call goes on waiting for the same request, which is never sent twice.
#[derive(Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    notify: Notify,
    confirm: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl Cancel {
    pub fn with_confirm(confirm: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel {
            confirm: Some(Box::new(confirm)),
            ..Cancel::default()
        }
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            // Created before the flag is read, so a `cancel` in between still wakes it.
            let notified = self.notify.notified();
            if self.cancelled.swap(false, Ordering::SeqCst)
                && self.confirm.as_ref().is_none_or(|c| c())
            {
                return;
            }
            notified.await;
        }
    }
}

/// What the engine can tell about its server, for tests and diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub socket: Option<String>,
    pub ready: bool,
    pub connections_opened: u64,
    pub boot_ms: Option<u64>,
}

pub struct Engine {
    config: Config,
    owner_pid: u32,
    logs: LogSink,
    runtime: Option<Runtime>,
    server: Option<Server>,
    proxy: Option<Proxy>,
    ready: bool,
    boot_ms: Option<u64>,
    connections_before: u64,
    restarts: Restarts,
    /// Requests in a row that the app did not answer in time.
    timeouts: u32,
    /// How long staging took for the current server (0 when it was staged already).
    stage_ms: Option<u64>,
    /// How long unpacking the gem bundle took.
    lazy_ms: Option<u64>,
    /// Whether the cold start's breakdown has been logged (once, after the first response).
    cold_start_logged: bool,
    /// Whether the ALB single-value cookie warning has been logged (once per environment).
    alb_cookies_warned: bool,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let logs = LogSink::new(libc::STDOUT_FILENO, config.log_format);
        Engine {
            config,
            owner_pid: std::process::id(),
            logs,
            runtime: None,
            server: None,
            proxy: None,
            ready: false,
            boot_ms: None,
            connections_before: 0,
            restarts: Restarts::default(),
            timeouts: 0,
            stage_ms: None,
            lazy_ms: None,
            cold_start_logged: false,
            alb_cookies_warned: false,
        }
    }

    /// Where the log lines go; stdout unless told otherwise.
    pub fn with_log_fd(mut self, fd: std::os::fd::RawFd) -> Engine {
        self.logs = LogSink::new(fd, self.config.log_format);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the server without waiting for it (idempotent), so that its boot overlaps Lambda's
    /// init phase.
    pub fn boot(&mut self) -> Result<()> {
        self.forget_if_forked();
        if self.server.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// Handles one event: the response in the shape of its source, the prewarm answer, or the app's
    /// answer to a pass-through event.
    pub fn handle(
        &mut self,
        event: &Value,
        invocation: &Invocation,
        cancel: &Cancel,
    ) -> Result<Value> {
        self.forget_if_forked();
        let kind = events::classify(event)?;
        self.logs.set_request_id(Some(&invocation.request_id));
        let runtime = self.take_runtime()?;
        let result = runtime.block_on(async {
            tokio::select! {
                result = self.dispatch(kind, event, invocation) => result,
                _ = cancel.cancelled() => Err(Error::new(ErrorKind::Interrupted, "interrupted while waiting for the app")),
            }
        });
        self.runtime = Some(runtime);
        if matches!(&result, Err(e) if e.kind == ErrorKind::Interrupted) {
            // A request may have been cut off half way: its connection cannot be reused.
            if let Some(proxy) = self.proxy.as_mut() {
                proxy.reset();
            }
        }
        if let Some(server) = &self.server {
            server.logs().drain(LOG_DRAIN);
        }
        result
    }

    /// Waits until the server is ready (starting it if needed); used by `Megamode.boot`'s callers
    /// that want to block, and by prewarm.
    pub fn wait_ready(&mut self, cancel: &Cancel) -> Result<()> {
        self.forget_if_forked();
        let runtime = self.take_runtime()?;
        let result = runtime.block_on(async {
            tokio::select! {
                result = self.ensure_ready() => result,
                _ = cancel.cancelled() => Err(Error::new(ErrorKind::Interrupted, "interrupted while waiting for the app")),
            }
        });
        self.runtime = Some(runtime);
        result
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

    /// Stops the server and everything it started. Safe to call twice, and a no-op in a forked child.
    pub fn shutdown(&mut self) {
        self.forget_if_forked();
        self.proxy = None;
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
        self.ready = false;
    }

    async fn dispatch(
        &mut self,
        kind: EventKind,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value> {
        match kind {
            EventKind::Prewarm => {
                self.ensure_ready().await?;
                Ok(json!({"prewarmed_at": iso8601(SystemTime::now()), "boot_ms": self.boot_ms}))
            }
            EventKind::Http(source) => self.http(source, event, invocation).await,
            EventKind::Command => {
                let command = crate::command::requested(event)?;
                crate::command::check(command, self.config.commands_allowed.as_ref())?;
                // Where the server runs (the staged copy), with the server's environment (the gem
                // bundle's variables included): `bin/rails db:migrate` must find the gems and
                // migrate the database the server uses.
                let (dir, env) = match &self.server {
                    Some(server) => (server.launch().dir.clone(), server.launch().env.clone()),
                    None => self.server_site()?,
                };
                let limit = invocation.remaining().saturating_sub(DEADLINE_MARGIN);
                self.logs.line(
                    "megamode",
                    &format!("running the command event {command:?} in {}", dir.display()),
                );
                let result = crate::command::run(command, &dir, &env, limit)?;
                self.logs.line(
                    "megamode",
                    &format!(
                        "the command {command:?} ended: status {}, signal {}",
                        result["status"], result["signal"]
                    ),
                );
                Ok(result)
            }
            EventKind::Other => {
                self.ensure_ready().await?;
                self.pass_through(event, invocation).await
            }
        }
    }

    /// An HTTP event: the app's answer in the source's shape, or megamode's own 4xx, 502 or 504.
    async fn http(
        &mut self,
        source: Source,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value> {
        let options = events::Options {
            base_path: self.config.base_path.as_deref(),
            invocation,
        };
        let request = match events::translate(event, source, &options) {
            Ok(request) => request,
            Err(e) => match e.kind.refusal_status() {
                Some(status) => return self.own_response(source, status, e),
                None => return Err(e),
            },
        };
        if let Some(events::Notice(notice)) = request.extensions().get() {
            self.logs.line("megamode", notice);
        }
        if request.method() == Method::CONNECT {
            let error = Error::bad_request(
                "CONNECT asks for a tunnel, which cannot pass through a Lambda invocation: \
                 megamode did not send it to the app",
            );
            return self.own_response(source, StatusCode::NOT_IMPLEMENTED, error);
        }
        let accepts_gzip = fit::accepts_gzip(request.headers());
        // Kept for error messages only: cheap clones (the URI shares its bytes), no formatting.
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let target = || format!("{method} {}", uri.path());
        self.ensure_ready().await?;
        let mut body = fit::Collector::new(source, accepts_gzip, self.config.compress)
            .answering(&method)
            .failing_on(&self.config.error_statuses);
        let forwarded = self.forward(request, &mut body, invocation).await;
        if let Some(status) = body.failed() {
            if forwarded.is_ok() || matches!(&forwarded, Err(e) if e.kind == ErrorKind::Oversize) {
                self.restarts.succeeded();
                return Err(Error::new(
                    ErrorKind::App,
                    format!(
                        "the app answered {status} to {}, which MEGAMODE_ERROR_STATUS makes a handler error: {}",
                        target(),
                        excerpt(&body.finish().bytes)
                    ),
                ));
            }
        }
        let head = match forwarded {
            Ok(head) => {
                self.restarts.succeeded();
                self.log_cold_start();
                head
            }
            Err(e) if e.kind == ErrorKind::Timeout => {
                return self.own_response(source, StatusCode::GATEWAY_TIMEOUT, e);
            }
            Err(e) if e.kind == ErrorKind::Oversize => {
                let error = Error::proxy(format!("{}: {}", target(), e.message));
                return self.own_response(source, StatusCode::BAD_GATEWAY, error);
            }
            Err(e) => return self.own_response(source, StatusCode::BAD_GATEWAY, e),
        };
        let body = body.finish();
        if source == (Source::Alb { multi_value: false }) {
            self.warn_alb_cookies(&head.headers);
        }
        match fit::fit(source, head, body, accepts_gzip, self.config.compress) {
            Ok(rendered) => Ok(rendered),
            Err(oversize) => {
                let error = Error::proxy(format!("{}: {}", target(), oversize.message(source)));
                self.own_response(source, StatusCode::BAD_GATEWAY, error)
            }
        }
    }

    /// An ALB target group without multi-value headers passes one value per header name, so of
    /// several Set-Cookie headers only the last reaches the client: said once per environment.
    fn warn_alb_cookies(&mut self, headers: &http::HeaderMap) {
        if self.alb_cookies_warned || headers.get_all(header::SET_COOKIE).iter().nth(1).is_none() {
            return;
        }
        self.alb_cookies_warned = true;
        self.logs.line(
            "megamode",
            "the app set several cookies, but this ALB target group has multi-value headers off, \
             so only the last Set-Cookie reaches the client: turn on multi-value headers for the \
             target group (said once)",
        );
    }

    /// Once per server: how long its cold start took, in one line.
    fn log_cold_start(&mut self) {
        if self.cold_start_logged {
            return;
        }
        self.cold_start_logged = true;
        if let (Some(server), Some(boot_ms)) = (&self.server, self.boot_ms) {
            self.logs.line(
                "megamode",
                &format!(
                    "cold start: stage {} ms, lazy-load {} ms, spawn to ready {boot_ms} ms, first response {} ms after spawn",
                    self.stage_ms.unwrap_or(0),
                    self.lazy_ms.unwrap_or(0),
                    server.spawned_at().elapsed().as_millis()
                ),
            );
        }
    }

    /// A response megamode answers itself, with a log line saying why; or, when
    /// `MEGAMODE_ERROR_STATUS` lists its status, the error itself.
    fn own_response(&self, source: Source, status: StatusCode, error: Error) -> Result<Value> {
        if self.config.is_error_status(status.as_u16()) {
            return Err(error);
        }
        self.logs
            .line("megamode", &format!("{status}: {}", error.message));
        Ok(events::error_response(source, status, &error.message))
    }

    /// Sends a request within the invocation's deadline; its body goes to `collect`.
    async fn forward(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
        invocation: &Invocation,
    ) -> Result<http::response::Parts> {
        let remaining = invocation.remaining();
        let budget = if remaining > DEADLINE_MARGIN * 2 {
            remaining - DEADLINE_MARGIN
        } else {
            remaining / 2
        };
        let proxy = self
            .proxy
            .as_mut()
            .ok_or_else(|| Error::proxy("the app's server is not running"))?;
        match tokio::time::timeout(budget, proxy.send(request, collect)).await {
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
                    Some(status) => Error::proxy(format!(
                        "the app's server {} while handling the request",
                        supervisor::describe(status)
                    )),
                    None => e,
                })
            }
            Err(_) => {
                // The connection has a request in flight that will never be read: drop it.
                proxy.reset();
                self.timeouts += 1;
                if self.timeouts >= HUNG_AFTER {
                    self.restart_hung();
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

    /// Events that are not HTTP go to the app as JSON; its JSON answer is the handler's result.
    async fn pass_through(&mut self, event: &Value, invocation: &Invocation) -> Result<Value> {
        let path = self.config.pass_through_path.clone();
        let body = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        let request = Request::post(path.as_str())
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .header("x-request-id", invocation.request_id.as_str())
            .header("x-amzn-lambda-context", invocation.lambda_context_json())
            .body(body)
            .map_err(|e| {
                Error::config(format!(
                    "MEGAMODE_PASS_THROUGH_PATH {path:?} is not a usable path: {e}"
                ))
            })?;
        let mut answer = UpTo::new(PASS_THROUGH_LIMIT);
        let status = self.forward(request, &mut answer, invocation).await?.status;
        let body = answer.into_body();
        if !status.is_success() {
            return Err(Error::new(
                ErrorKind::App,
                format!(
                    "the app answered {status} to the event POSTed to {path}: {}",
                    excerpt(&body)
                ),
            ));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
    }

    /// Starts the server when there is none (or it died), then waits until it accepts connections.
    async fn ensure_ready(&mut self) -> Result<()> {
        if self.ready {
            let exited = self.server.as_mut().and_then(Server::exited);
            match exited {
                None => return Ok(()),
                // It crashed between requests: a new one is started below.
                Some(_) => self.note_crash(),
            }
        }
        if self.server.is_none() {
            let pause = self.restarts.next_start(std::time::Instant::now())?;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if let Err(e) = self.spawn() {
                self.restarts.failed(&e.message);
                return Err(e);
            }
        }
        let limit = self.config.boot_timeout;
        let server = self
            .server
            .as_mut()
            .ok_or_else(|| Error::boot("the app's server is not running"))?;
        let ready = async {
            let stream = server.wait_ready(limit).await?;
            let mut proxy = Proxy::new(server.target().clone());
            proxy.adopt(stream).await?;
            if let Some(path) = &self.config.readiness_path {
                wait_healthy(
                    server,
                    &mut proxy,
                    path,
                    &self.config.readiness_statuses,
                    limit,
                )
                .await?;
            }
            Ok::<_, Error>(proxy)
        };
        let proxy = match ready.await {
            Ok(proxy) => proxy,
            Err(e) => {
                // The next event tries again with a new server rather than repeating this error.
                self.restarts.failed(&e.message);
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
        let now = std::time::Instant::now();
        let ready_at = server.ready_at().map_or(now, |at| at.min(now));
        self.boot_ms = Some(
            ready_at
                .saturating_duration_since(server.spawned_at())
                .as_millis() as u64,
        );
        self.proxy = Some(proxy);
        self.ready = true;
        Ok(())
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
            self.restarts.failed(&report.message);
            self.logs
                .line("megamode", &format!("{report}; it will be started again"));
            self.connections_before += self.proxy.as_ref().map_or(0, Proxy::connections_opened);
            self.proxy = None;
            self.server = None;
            self.ready = false;
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let (dir, env) = self.server_site()?;
        // A Unix socket where the server can use one (see BENCHMARKS.md for why it is the default):
        // puma by default; a custom command that names $MEGAMODE_SOCKET.
        let unix = match (self.config.transport, &self.config.command) {
            (Some(transport), _) => transport == Transport::Unix,
            (None, Some(command)) => command.contains("MEGAMODE_SOCKET"),
            (None, None) => supervisor::default_is_puma(&dir),
        };
        let command = match &self.config.command {
            Some(command) => command.clone(),
            None => supervisor::default_command(&dir, unix)?,
        };
        let target = if unix {
            Target::socket_in(&self.config.tmp_dir)?
        } else {
            Target::free_port()?
        };
        let launch = Launch {
            command,
            env,
            dir,
            target,
            log_prefix: self.config.log_prefix.clone(),
            logs: self.logs.clone(),
            health: self.config.readiness_path.as_ref().map(|path| Health {
                path: path.clone(),
                statuses: self.config.readiness_statuses.clone(),
            }),
            boot_timeout: self.config.boot_timeout,
        };
        self.server = Some(Server::spawn(launch)?);
        self.ready = false;
        self.cold_start_logged = false;
        Ok(())
    }

    /// Where the server runs and with what environment: the app's directory or staged copy, and
    /// `child_env` plus the gem bundle's variables (staging and unpacking as needed). Command
    /// events run there too, with the same environment.
    fn server_site(&mut self) -> Result<(std::path::PathBuf, Vec<(String, String)>)> {
        let dir = self.app_dir()?;
        let mut env = self.child_env()?;
        env.extend(self.unpack_bundle(&dir)?);
        Ok((dir, env))
    }

    /// Where the server runs from: the app itself, or its staged copy under `MEGAMODE_TMP`.
    fn app_dir(&mut self) -> Result<std::path::PathBuf> {
        let app = &self.config.app_root;
        let stage = match self.config.stage {
            Stage::Always => true,
            Stage::Never => false,
            Stage::Auto => !crate::stage::is_writable(app),
        };
        if !stage {
            return Ok(app.clone());
        }
        let staged = crate::stage::stage(app, &self.config.tmp_dir)?;
        self.stage_ms = Some(staged.elapsed.as_millis() as u64);
        if staged.copied {
            self.logs.line(
                "megamode",
                &format!(
                    "staged the app into {} in {} ms",
                    staged.root.display(),
                    staged.elapsed.as_millis()
                ),
            );
        }
        Ok(staged.root)
    }

    /// Unpacks the gem bundle, when there is one, and returns the variables that point bundler and
    /// RubyGems at it.
    fn unpack_bundle(&mut self, app_dir: &std::path::Path) -> Result<Vec<(String, String)>> {
        let Some(manifest) = &self.config.bundle else {
            return Ok(Vec::new());
        };
        let unpacked = crate::lazy::unpack(manifest, &self.config.tmp_dir)?;
        self.lazy_ms = Some(unpacked.elapsed.as_millis() as u64);
        if unpacked.unpacked {
            self.logs.line(
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
        Ok(env)
    }

    /// The server's environment on top of the handler's: production by default, logs to stdout, a
    /// writable HOME and TMPDIR (Lambda's HOME may be unset or read-only).
    fn child_env(&self) -> Result<Vec<(String, String)>> {
        let tmp = &self.config.tmp_dir;
        let home = tmp.join("home");
        let tmpdir = tmp.join("tmp");
        for dir in [&home, &tmpdir] {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::boot(format!(
                    "cannot create {} ({e}); set MEGAMODE_TMP to a writable directory",
                    dir.display()
                ))
            })?;
        }
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
        env.extend(self.config.child_env.iter().cloned());
        Ok(env)
    }

    fn take_runtime(&mut self) -> Result<Runtime> {
        match self.runtime.take() {
            Some(runtime) => Ok(runtime),
            None => new_runtime()
                .map_err(|e| Error::boot(format!("cannot start megamode's I/O runtime: {e}"))),
        }
    }

    /// After a fork, the runtime, the server and the connection are the parent's: leave them alone
    /// (no drop, which would stop the parent's server) and start afresh.
    fn forget_if_forked(&mut self) {
        let pid = std::process::id();
        if pid == self.owner_pid {
            return;
        }
        self.owner_pid = pid;
        std::mem::forget(self.runtime.take());
        std::mem::forget(self.proxy.take());
        std::mem::forget(self.server.take());
        self.ready = false;
        self.connections_before = 0;
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// With `MEGAMODE_READINESS_PATH`, a server that listens is ready once that path answers with one of
/// the healthy statuses (`MEGAMODE_READINESS_STATUS`, by default a success or a redirect) (apps that listen before they can serve, such as a Rails app still eager
/// loading in a forked worker).
async fn wait_healthy(
    server: &mut Server,
    proxy: &mut Proxy,
    path: &str,
    healthy: &Statuses,
    limit: Duration,
) -> Result<()> {
    let deadline = server.spawned_at() + limit;
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
        if std::time::Instant::now() >= deadline {
            server.stop();
            return Err(Error::boot(format!(
                "the app's server listens, but {path} (MEGAMODE_READINESS_PATH) was not healthy within {:.1} s: it {answer}",
                limit.as_secs_f64()
            )));
        }
        tokio::time::sleep(READINESS_RETRY).await;
    }
}

/// The runtime every blocking call runs on: the calling thread alone, with I/O and timers. Lambda
/// serves one request at a time, so worker threads would only add hand-offs.
pub(crate) fn new_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    new_runtime().expect("a runtime").block_on(future)
}

fn home_is_writable() -> bool {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return false;
    };
    let path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(home.as_os_str()));
    // SAFETY: access(2) on a NUL-terminated path.
    path.is_ok_and(|p| unsafe { libc::access(p.as_ptr(), libc::W_OK) } == 0)
}

/// The start of a body, for an error message.
fn excerpt(body: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&body[..body.len().min(fit::EXCERPT)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_the_confirm_hook_rejects_does_not_cancel() {
        let rejected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&rejected);
        let cancel = Cancel::with_confirm(move || seen.fetch_add(1, Ordering::SeqCst) > 0);
        cancel.cancel();
        let runtime = new_runtime().unwrap();
        let outcome = runtime.block_on(async {
            tokio::select! {
                _ = cancel.cancelled() => "cancelled",
                _ = tokio::time::sleep(Duration::from_millis(50)) => "still waiting",
            }
        });
        assert_eq!(outcome, "still waiting");
        cancel.cancel();
        runtime.block_on(cancel.cancelled());
        assert_eq!(rejected.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cancel_before_waiting_still_cancels() {
        let cancel = Cancel::default();
        cancel.cancel();
        block_on(cancel.cancelled());
    }
}
