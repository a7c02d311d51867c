//! The per-event path: one event in, the handler's result out. It classifies the event, and for
//! an HTTP event translates it, sends it to the app through the supervisor, and fits the answer to
//! the event's source; prewarm, task (command) and pass-through events have their own short paths.
//! Both callers share it: the Ruby handler and the native Runtime API loop.
//!
//! Every call blocks the calling thread on the I/O runtime (`io`); the Ruby binding makes that call
//! with the GVL released. The runtime, the server and the connection belong to the process that
//! made them: after a `fork` the child starts afresh instead of touching its parent's.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::response::Parts;
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use crate::cancel::Cancel;
use crate::clock::iso8601;
use crate::config::{Compress, Config, InvokeMode, Statuses};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, fit, EventKind, Source};
use crate::invocation::Invocation;
use crate::io::Io;
use crate::lifecycle::{Outcome, Phase};
use crate::logs::LogSink;
use crate::proxy::{Collect, UpTo};
use crate::stream::Sink;
use crate::supervisor::{Status, Supervisor, DEADLINE_MARGIN};

/// The most an answer to a pass-through event may be: it becomes the invocation's result, which
/// Lambda takes up to 6 MB.
const PASS_THROUGH_LIMIT: usize = 6 * 1024 * 1024;

pub struct Engine {
    config: Arc<Config>,
    owner_pid: u32,
    logs: LogSink,
    io: Io,
    upstream: Supervisor,
    /// Whether the ALB single-value cookie warning has been logged (once per environment).
    alb_cookies_warned: bool,
    /// Whether the native loop drives this engine (it streams); else the Ruby handler does.
    native_loop: bool,
    /// Whether the log has said why a response in streaming mode was buffered (once).
    buffering_said: bool,
    /// Whether SnapStart's cycle has asked for the restore: it runs once per environment.
    restore_asked: bool,
}

/// An HTTP event's request, or the status megamode answers it with itself, and why.
type Prepared = std::result::Result<Request<Bytes>, (StatusCode, Error)>;

impl Engine {
    pub fn new(config: Config) -> Engine {
        let logs = LogSink::new(libc::STDOUT_FILENO, config.log_format);
        // Said once, as the environment starts: what reading the settings found (an old name).
        for note in &config.notes {
            logs.line("megamode", note);
        }
        let config = Arc::new(config);
        Engine {
            upstream: Supervisor::new(Arc::clone(&config), logs.clone()),
            config,
            owner_pid: std::process::id(),
            logs,
            io: Io::default(),
            alb_cookies_warned: false,
            native_loop: false,
            buffering_said: false,
            restore_asked: false,
        }
    }

    /// How the native loop is to send HTTP responses (`MEGAMODE_INVOKE_MODE`).
    pub fn invoke_mode(&self) -> InvokeMode {
        self.config.invoke_mode
    }

    /// The native loop drives this engine: streaming is its to do.
    pub fn driven_by_native_loop(&mut self) {
        self.native_loop = true;
    }

    /// A `megamode: ` line in the log.
    pub fn note(&self, line: &str) {
        self.logs.line("megamode", line);
    }

    /// In streaming mode, says once why a response is buffered instead (`why`).
    pub fn buffering_because(&mut self, why: &str) {
        if self.config.invoke_mode != InvokeMode::ResponseStream || self.buffering_said {
            return;
        }
        self.buffering_said = true;
        self.note(&format!(
            "MEGAMODE_INVOKE_MODE is response_stream, but {why}, so responses are buffered (said once)"
        ));
    }

    /// Starts the server without waiting for it (idempotent), so that its boot overlaps Lambda's
    /// init phase.
    pub fn boot(&mut self) -> Result<()> {
        self.forget_if_forked();
        self.upstream.boot()
    }

    /// What the init phase does: starts the server, and, for provisioned concurrency (see
    /// `Config::init_waits`), waits until it is ready.
    pub fn init(&mut self, cancel: &Cancel) -> Result<()> {
        self.boot()?;
        if self.config.init_waits {
            self.wait_ready(cancel)?;
        }
        Ok(())
    }

    /// Handles one event: the response in the shape of its source, the prewarm answer, the task's
    /// outcome, or the app's answer to a pass-through event.
    pub fn handle(
        &mut self,
        event: &Value,
        invocation: &Invocation,
        cancel: &Cancel,
    ) -> Result<Value> {
        self.handle_classified(events::classify(event)?, event, invocation, cancel)
    }

    /// [`Engine::handle`] for an event its caller has already classified as `kind` (the native
    /// loop, which routes on the kind first), so that each event is classified once.
    pub fn handle_classified(
        &mut self,
        kind: EventKind,
        event: &Value,
        invocation: &Invocation,
        cancel: &Cancel,
    ) -> Result<Value> {
        self.forget_if_forked();
        self.logs.set_request_id(Some(&invocation.request_id));
        if !self.native_loop && matches!(kind, EventKind::Http(_)) {
            self.buffering_because(
                "the Ruby handler is in use (Lambda's Ruby runtime client cannot stream; \
                 streaming needs the native loop, AWS_LAMBDA_EXEC_WRAPPER=/var/task/megamode/runtime)",
            );
        }
        let io = self.io.runtime()?;
        let result = io.block_on(cancel.unless_cancelled(
            "waiting for the app",
            self.dispatch(kind, event, invocation),
        ));
        if matches!(&result, Err(e) if e.kind == ErrorKind::Interrupted) {
            self.upstream.reset_connection();
        }
        self.upstream.drain_logs();
        result
    }

    /// Handles an HTTP event from a source that streams, sending its response through `sink` as it
    /// arrives, while `beside` (the Runtime API's POST, reading the sink's other end) runs alongside.
    /// `Ok(())` from the first part means the whole response went through the sink (a failure after
    /// its first byte included, as trailers); an error means nothing did, and is the invocation's.
    /// The outer error is an interruption only.
    pub fn handle_streamed<T>(
        &mut self,
        source: Source,
        event: &Value,
        invocation: &Invocation,
        cancel: &Cancel,
        mut sink: Sink<'_>,
        beside: impl Future<Output = T>,
    ) -> Result<(Result<()>, T)> {
        self.forget_if_forked();
        self.logs.set_request_id(Some(&invocation.request_id));
        let io = self.io.runtime()?;
        let streamed = async {
            let result = self.forward(source, event, invocation, &mut sink).await;
            // The end of the channel: the POST's body ends with it.
            drop(sink);
            result
        };
        let result = io.block_on(cancel.unless_cancelled("waiting for the app", async {
            Ok(tokio::join!(streamed, beside))
        }));
        if result.is_err() {
            self.upstream.reset_connection();
        }
        self.upstream.drain_logs();
        result
    }

    /// Waits until the server is ready (starting it if needed); used by `Megamode.boot`'s callers
    /// that want to block.
    pub fn wait_ready(&mut self, cancel: &Cancel) -> Result<()> {
        self.forget_if_forked();
        let io = self.io.runtime()?;
        let ready = io
            .block_on(cancel.unless_cancelled("waiting for the app", self.upstream.ensure_ready()));
        // What the server prints as it boots belongs to the phase that waited for it (init).
        self.upstream.drain_logs();
        ready
    }

    /// Whether Lambda initializes this environment for SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE`
    /// is `snap-start`): the native loop then speaks the Runtime API's restore lifecycle.
    pub fn snap_start(&self) -> bool {
        self.config.snap_start
    }

    /// SnapStart's cycle (`snapstart::cycle`) is asking for the restore, which it does once.
    pub fn restore_asking(&mut self) {
        self.restore_asked = true;
    }

    /// Whether SnapStart's cycle has asked for the restore already.
    pub fn restore_asked(&self) -> bool {
        self.restore_asked
    }

    /// Asks the app's server to run `phase`'s SnapStart hooks, within `MEGAMODE_HOOK_TIMEOUT`.
    pub fn run_hooks(&mut self, phase: Phase, cancel: &Cancel) -> Result<Outcome> {
        self.forget_if_forked();
        let io = self.io.runtime()?;
        let limit = self.config.hook_timeout;
        let upstream = &mut self.upstream;
        let result = io.block_on(
            cancel.unless_cancelled("waiting for the app's hooks", async {
                upstream.ensure_ready().await?;
                upstream.run_hooks(phase, limit).await
            }),
        );
        if result.is_err() {
            self.upstream.reset_connection();
        }
        self.upstream.drain_logs();
        result
    }

    /// The paths to ask the app for before a SnapStart snapshot (`MEGAMODE_PRIME`).
    pub fn prime_paths(&self) -> &[String] {
        &self.config.prime
    }

    /// Sends the app a request of megamode's own (SnapStart's priming), on the path events take,
    /// within `MEGAMODE_HOOK_TIMEOUT`: its status. The body is read and dropped.
    pub fn send_own(&mut self, request: Request<Bytes>, cancel: &Cancel) -> Result<StatusCode> {
        self.forget_if_forked();
        let io = self.io.runtime()?;
        let limit = self.config.hook_timeout;
        let upstream = &mut self.upstream;
        let result = io.block_on(cancel.unless_cancelled("waiting for the app", async {
            upstream.ensure_ready().await?;
            let mut body = Dropped::default();
            // `send` keeps a margin back from an invocation's time; this request has none.
            // Not counted towards a hung server: see `Supervisor::send_own`.
            let head = match upstream.send_own(request, &mut body, limit + DEADLINE_MARGIN).await {
                Ok(head) => head,
                // Said as what it is here: no invocation's deadline, but MEGAMODE_HOOK_TIMEOUT.
                Err(e) if e.kind == ErrorKind::Timeout => {
                    let what = match body.status {
                        Some(status) => format!(
                            "it answered {status}, and its body was still arriving after \
                             MEGAMODE_HOOK_TIMEOUT ({:.1} s): a response that streams or never ends",
                            limit.as_secs_f64()
                        ),
                        None => format!(
                            "it did not answer within MEGAMODE_HOOK_TIMEOUT ({:.1} s): the app's \
                             server may still be working on it (megamode's own requests do not \
                             count towards a hung server, so it is not restarted for this)",
                            limit.as_secs_f64()
                        ),
                    };
                    return Err(Error::new(ErrorKind::Timeout, what));
                }
                Err(e) => return Err(e),
            };
            upstream.answered();
            Ok(head.status)
        }));
        if result.is_err() {
            self.upstream.reset_connection();
        }
        self.upstream.drain_logs();
        result
    }

    /// Closes the kept-alive connection to the app: it would not survive a snapshot.
    pub fn close_connection(&mut self) {
        self.upstream.reset_connection();
    }

    /// After a restore: the server must accept a new connection (within `MEGAMODE_HOOK_TIMEOUT`);
    /// none from before the snapshot is used again.
    pub fn answer_again(&mut self, cancel: &Cancel) -> Result<()> {
        self.forget_if_forked();
        let io = self.io.runtime()?;
        let limit = self.config.hook_timeout;
        let result = io.block_on(cancel.unless_cancelled(
            "waiting for the app after the restore",
            self.upstream.answer_again(limit),
        ));
        self.upstream.drain_logs();
        result
    }

    /// The I/O runtime this engine runs on, for a caller that talks to the network around it (the
    /// native loop's Runtime API client), so that one runtime serves both.
    pub fn io_runtime(&mut self) -> Result<Arc<Runtime>> {
        self.forget_if_forked();
        self.io.runtime()
    }

    pub fn status(&self) -> Status {
        self.upstream.status()
    }

    /// Stops the server and everything it started. Safe to call twice, and a no-op in a forked child.
    pub fn shutdown(&mut self) {
        self.forget_if_forked();
        self.upstream.shutdown();
    }

    async fn dispatch(
        &mut self,
        kind: EventKind,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Value> {
        match kind {
            EventKind::Prewarm => {
                self.upstream.ensure_ready().await?;
                let boot_ms = self.upstream.boot_ms();
                Ok(json!({"prewarmed_at": iso8601(SystemTime::now()), "boot_ms": boot_ms}))
            }
            EventKind::Http(source) => {
                let mut buffered = Buffered::new(source, self.config.compress);
                self.forward(source, event, invocation, &mut buffered).await
            }
            EventKind::Task => self.task(event, invocation),
            EventKind::Other => {
                self.upstream.ensure_ready().await?;
                self.pass_through(event, invocation).await
            }
        }
    }

    /// An HTTP event: the app's answer through `finisher` (fitted to the source's shape, or
    /// streamed as it arrives), or megamode's own 4xx, 502 or 504. The one path both kinds of
    /// response take: translate, wait for the server, send, and map what went wrong to a status.
    async fn forward<F: Finish>(
        &mut self,
        source: Source,
        event: &Value,
        invocation: &Invocation,
        finisher: &mut F,
    ) -> Result<F::Output> {
        let request = match self.prepare(source, event, invocation)? {
            Ok(request) => request,
            Err((status, error)) => return self.own(finisher, status, error).await,
        };
        // Kept for error messages only: cheap clones (the URI shares its bytes), no formatting.
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let target = || format!("{method} {}", uri.path());
        self.upstream.ensure_ready().await?;
        finisher.expect(&request, &self.config.error_statuses);
        let forwarded = self
            .upstream
            .send(request, finisher, invocation.remaining())
            .await;
        if let Some((status, excerpt_bytes)) = finisher.failing() {
            if forwarded.is_ok() || matches!(&forwarded, Err(e) if e.kind == ErrorKind::Oversize) {
                self.upstream.answered();
                return Err(failing_status(status, &target(), &excerpt_bytes));
            }
        }
        let head = match forwarded {
            Ok(head) => {
                self.upstream.answered();
                self.upstream.log_cold_start();
                head
            }
            Err(e) => {
                let e = match finisher.broke_off(self, e, &target).await {
                    Ok(ended) => return Ok(ended),
                    Err(e) => e,
                };
                let status = match e.kind {
                    ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let e = match e.kind {
                    ErrorKind::Oversize => Error::upstream(format!("{}: {}", target(), e.message)),
                    _ => e,
                };
                return self.own(finisher, status, e).await;
            }
        };
        finisher.answered(self, head, &target).await
    }

    /// The request an HTTP event describes, or the status megamode answers it with itself.
    fn prepare(&self, source: Source, event: &Value, invocation: &Invocation) -> Result<Prepared> {
        let options = events::Options {
            base_path: self.config.base_path.as_deref(),
            invocation,
        };
        let request = match events::translate(event, source, &options) {
            Ok(request) => request,
            Err(e) => match e.kind.refusal_status() {
                Some(status) => return Ok(Err((status, e))),
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
            return Ok(Err((StatusCode::NOT_IMPLEMENTED, error)));
        }
        Ok(Ok(request))
    }

    /// A command event: the task it asks for runs where the server runs (the app's copy), with the
    /// server's environment (the gem bundle's variables included), within the invocation's time.
    fn task(&mut self, event: &Value, invocation: &Invocation) -> Result<Value> {
        let task = crate::task::requested(event)?;
        crate::task::check(task, self.config.tasks_allowed.as_ref())?;
        let site = self.upstream.site()?;
        let limit = invocation.remaining().saturating_sub(DEADLINE_MARGIN);
        self.logs.line(
            "megamode",
            &format!(
                "running the command event {task:?} in {}",
                site.dir.display()
            ),
        );
        let result = crate::task::run(task, &site.dir, &site.env, limit)?;
        self.logs.line(
            "megamode",
            &format!(
                "the command {task:?} ended: status {}, signal {}",
                result["status"], result["signal"]
            ),
        );
        Ok(result)
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

    /// A response megamode answers itself, through `finisher`, with a log line saying why; or,
    /// when `MEGAMODE_ERROR_STATUS` lists its status, the error itself.
    async fn own<F: Finish>(
        &self,
        finisher: &mut F,
        status: StatusCode,
        error: Error,
    ) -> Result<F::Output> {
        if self.config.is_error_status(status.as_u16()) {
            return Err(error);
        }
        self.logs
            .line("megamode", &format!("{status}: {}", error.message));
        finisher.own(status, &error.message).await
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
        let status = self
            .upstream
            .send(request, &mut answer, invocation.remaining())
            .await?
            .status;
        let body = answer.into_body();
        if !status.is_success() {
            // A 404 is nearly always a path the app has no route for, not an error of the event's.
            let hint = if status == StatusCode::NOT_FOUND {
                format!(" (the app has no route for POST {path}: add one, or set MEGAMODE_PASS_THROUGH_PATH to the path that takes events)")
            } else {
                String::new()
            };
            return Err(Error::new(
                ErrorKind::App,
                format!(
                    "the app answered {status} to the event POSTed to {path}{hint}: {}",
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

    /// After a fork, the runtime, the server and the connection are the parent's: leave them alone
    /// and start afresh.
    fn forget_if_forked(&mut self) {
        let pid = std::process::id();
        if pid == self.owner_pid {
            return;
        }
        self.owner_pid = pid;
        self.io.forget();
        self.upstream.forget();
    }
}

/// What takes the app's answer to an HTTP event and makes the event's result of it, for
/// [`Engine::forward`]: [`Buffered`] reads it whole and fits it to the source's shape, a streaming
/// [`Sink`] passes it on as it arrives.
trait Finish: Collect {
    /// The event's result: the response in its source's shape, or nothing once streamed.
    type Output;
    /// Before sending: the request (a HEAD's answer has no body) and the statuses that fail the
    /// invocation (`MEGAMODE_ERROR_STATUS`).
    fn expect(&mut self, request: &Request<Bytes>, failing_on: &Statuses);
    /// The status of an answer that fails the invocation, and the start of its body.
    fn failing(&mut self) -> Option<(StatusCode, Bytes)>;
    /// The app answered: its whole answer, as the event's result.
    async fn answered(
        &mut self,
        engine: &mut Engine,
        head: Parts,
        target: &dyn Fn() -> String,
    ) -> Result<Self::Output>;
    /// Sending failed with `error`: the error back when megamode is to answer itself (nothing of
    /// the app's answer went out), or the result when part of it went out already and `error`
    /// ended it.
    async fn broke_off(
        &mut self,
        _engine: &mut Engine,
        error: Error,
        _target: &dyn Fn() -> String,
    ) -> std::result::Result<Self::Output, Error> {
        Err(error)
    }
    /// megamode's own answer (a 4xx, 502, 504) with `message`, as the event's result.
    async fn own(&mut self, status: StatusCode, message: &str) -> Result<Self::Output>;
}

/// The app's answer read whole, then fitted to the source's shape (gzipped when that is what
/// makes it fit and the client takes it).
struct Buffered {
    source: Source,
    compress: Compress,
    accepts_gzip: bool,
    body: fit::Collector,
}

impl Buffered {
    fn new(source: Source, compress: Compress) -> Buffered {
        Buffered {
            source,
            compress,
            accepts_gzip: false,
            // Made again by `expect`, once the request says whether the client takes gzip.
            body: fit::Collector::new(source, false, compress),
        }
    }

    /// The body read so far, leaving an empty collector in its place.
    fn take(&mut self) -> fit::Body {
        let empty = fit::Collector::new(self.source, self.accepts_gzip, self.compress);
        std::mem::replace(&mut self.body, empty).finish()
    }
}

impl Collect for Buffered {
    fn head(&mut self, head: &Parts) -> Result<()> {
        self.body.head(head)
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        self.body.chunk(chunk)
    }
}

impl Finish for Buffered {
    type Output = Value;

    fn expect(&mut self, request: &Request<Bytes>, failing_on: &Statuses) {
        self.accepts_gzip = fit::accepts_gzip(request.headers());
        self.body = fit::Collector::new(self.source, self.accepts_gzip, self.compress)
            .answering(request.method())
            .failing_on(failing_on);
    }

    fn failing(&mut self) -> Option<(StatusCode, Bytes)> {
        let status = self.body.failed()?;
        Some((status, self.take().bytes))
    }

    async fn answered(
        &mut self,
        engine: &mut Engine,
        head: Parts,
        target: &dyn Fn() -> String,
    ) -> Result<Value> {
        let body = self.take();
        let source = self.source;
        if source == (Source::Alb { multi_value: false }) {
            engine.warn_alb_cookies(&head.headers);
        }
        match fit::fit(source, head, body, self.accepts_gzip, self.compress) {
            Ok(rendered) => Ok(rendered),
            Err(oversize) => {
                let error = Error::upstream(format!("{}: {}", target(), oversize.message(source)));
                engine.own(self, StatusCode::BAD_GATEWAY, error).await
            }
        }
    }

    async fn own(&mut self, status: StatusCode, message: &str) -> Result<Value> {
        Ok(events::error_response(self.source, status, message))
    }
}

impl Finish for Sink<'_> {
    type Output = ();

    fn expect(&mut self, request: &Request<Bytes>, failing_on: &Statuses) {
        self.answering(request.method());
        self.failing_on(failing_on);
    }

    fn failing(&mut self) -> Option<(StatusCode, Bytes)> {
        self.failed()
            .map(|(status, excerpt)| (status, Bytes::copy_from_slice(excerpt)))
    }

    async fn answered(
        &mut self,
        _engine: &mut Engine,
        _head: Parts,
        _target: &dyn Fn() -> String,
    ) -> Result<()> {
        Ok(())
    }

    /// After the first byte the status is fixed: the stream ends with the error in its trailers,
    /// and a log line.
    async fn broke_off(
        &mut self,
        engine: &mut Engine,
        error: Error,
        target: &dyn Fn() -> String,
    ) -> std::result::Result<(), Error> {
        if !self.started() {
            return Err(error);
        }
        if error.kind == ErrorKind::Oversize {
            engine.upstream.answered();
        }
        engine.logs.line(
            "megamode",
            &format!(
                "the streamed response to {} broke off after {} bytes of its body: {}; \
                 Lambda gets the error in the response's trailers",
                target(),
                self.sent(),
                error.message
            ),
        );
        self.fail(&error).await;
        Ok(())
    }

    async fn own(&mut self, status: StatusCode, message: &str) -> Result<()> {
        let (head, body) = events::error_parts(status, message);
        self.whole(&head, body).await
    }
}

/// A body read and dropped: megamode's own requests want only the status, kept here once it came.
#[derive(Default)]
struct Dropped {
    status: Option<StatusCode>,
}

impl Collect for Dropped {
    fn head(&mut self, head: &Parts) -> Result<()> {
        self.status = Some(head.status);
        Ok(())
    }

    fn chunk(&mut self, _: Bytes) -> Result<()> {
        Ok(())
    }
}

/// The handler error for an answer whose status `MEGAMODE_ERROR_STATUS` lists.
fn failing_status(status: StatusCode, target: &str, body: &[u8]) -> Error {
    Error::new(
        ErrorKind::App,
        format!(
            "the app answered {status} to {target}, which MEGAMODE_ERROR_STATUS makes a handler error: {}",
            excerpt(body)
        ),
    )
}

/// The start of a body, for an error message; of an HTML page (Rails' 404 and 500 pages are a
/// couple of KB of markup), its title, which says what it is in one line.
fn excerpt(body: &[u8]) -> std::borrow::Cow<'_, str> {
    let text = String::from_utf8_lossy(&body[..body.len().min(fit::EXCERPT)]);
    match html_title(&text) {
        Some(title) => std::borrow::Cow::Owned(format!("an HTML page titled {title:?}")),
        None => text,
    }
}

/// The `<title>` of an HTML page, whitespace collapsed; None for anything else.
fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if !(lower.trim_start().starts_with("<!doctype html")
        || lower.trim_start().starts_with("<html"))
    {
        return None;
    }
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = text
        .get(open_end..close)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_html_error_page_is_named_by_its_title() {
        let page = b"<!DOCTYPE html>\n<html>\n<head>\n  <title>The page you were looking for\n doesn't exist (404)</title>\n<style>body { color: red }</style></head><body>...</body></html>";
        assert_eq!(
            super::excerpt(page),
            "an HTML page titled \"The page you were looking for doesn't exist (404)\""
        );
        assert_eq!(
            super::excerpt(b"{\"error\":\"nope\"}"),
            "{\"error\":\"nope\"}"
        );
        assert_eq!(
            super::excerpt(b"<html><body>no title</body></html>"),
            "<html><body>no title</body></html>"
        );
    }
}
