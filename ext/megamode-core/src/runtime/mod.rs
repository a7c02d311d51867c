//! The native way to run on Lambda (the binding starts it): this loop polls the Runtime API
//! itself and handles every event in Rust (translation, proxy, response), with no Ruby per
//! request, so the Ruby runtime client's own cost per invocation (a new connection to the Runtime
//! API for every event) is gone. Everything else is the Ruby handler's path: the same `Engine`,
//! on the same I/O runtime.

pub mod api;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::runtime::Runtime;

use crate::cancel::Cancel;
use crate::config::InvokeMode;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, EventKind};
use crate::invocation::{Function, Invocation};
use crate::snapstart::{self, Failure};
use crate::stream::{self, Sink};
use api::{Next, Posted, RuntimeApi};

/// What a handler of events that are not HTTP (SQS, S3, EventBridge, ...) answers: the result, or
/// an error as Lambda's error shape names it.
pub enum Answer {
    Result(Value),
    Error { error_type: String, message: String },
}

/// What the loop's caller decides.
pub trait Host {
    /// The `errorType` Lambda's error shape gives an error of this kind.
    fn error_type(&self, kind: ErrorKind) -> &'static str;

    /// Handles an event that is not HTTP, or declines (`None`): then it goes to the app's
    /// pass-through path, as with the Ruby handler.
    fn other_event(&mut self, event: &Value, invocation: &Invocation) -> Option<Answer>;
}

/// Boots the app (reporting a failure as Lambda's init error), then serves invocations until
/// cancelled. Returns only with the reason it stopped.
pub fn run(
    engine: &mut Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &mut dyn Host,
) -> Result<()> {
    let mut native = Loop::new(engine, api, cancel, host)?;
    native.init()?;
    loop {
        let next = native.next()?;
        native.route(&next)?;
    }
}

/// What every step of the loop works with, for the whole time it runs: the engine and the I/O
/// runtime it shares with the Runtime API client, the client, the caller's cancellation and its
/// `Host`. The invocation at hand (`Next`) is each step's argument.
struct Loop<'a> {
    io: Arc<Runtime>,
    engine: &'a mut Engine,
    api: &'a mut RuntimeApi,
    cancel: &'a Cancel,
    host: &'a mut dyn Host,
    /// The function, read once from Lambda's environment; each invocation adds its own ARN.
    function: Function,
    /// `MEGAMODE_INVOKE_MODE=response_stream`.
    streaming: bool,
}

impl<'a> Loop<'a> {
    fn new(
        engine: &'a mut Engine,
        api: &'a mut RuntimeApi,
        cancel: &'a Cancel,
        host: &'a mut dyn Host,
    ) -> Result<Loop<'a>> {
        let io = engine.io_runtime()?;
        engine.driven_by_native_loop();
        let streaming = engine.invoke_mode() == InvokeMode::ResponseStream;
        Ok(Loop {
            io,
            engine,
            api,
            cancel,
            host,
            function: Function::from_env(),
            streaming,
        })
    }

    /// Lambda's init phase: the app boots; a failure is posted as the init error, and ends the
    /// loop. With SnapStart, the init is the cycle that ends in a restored environment
    /// (`snapstart`), the same the Ruby handler's path runs.
    fn init(&mut self) -> Result<()> {
        if !self.engine.snap_start() {
            return match self.engine.init(self.cancel) {
                Ok(()) => Ok(()),
                Err(error) => self.init_failed(error),
            };
        }
        let cycled = {
            let host: &dyn Host = &*self.host;
            let error_type = |kind| host.error_type(kind);
            snapstart::cycle(self.engine, self.api, self.cancel, &error_type)
        };
        match cycled {
            Ok(()) => Ok(()),
            Err(Failure::Init(error)) => self.init_failed(error),
            // Posted on restore/error already: the loop ends, and with it the environment.
            Err(Failure::Restore(error) | Failure::Ended(error)) => Err(error),
        }
    }

    /// Posts `error` as the init error, and ends the loop with it.
    fn init_failed(&mut self, error: Error) -> Result<()> {
        let error_type = self.host.error_type(error.kind);
        self.talk(|api| api.init_error(error_type, &error.message))?;
        Err(error)
    }

    /// Waits for the next invocation.
    fn next(&mut self) -> Result<Next> {
        self.talk(|api| api.next())
    }

    /// Classifies the invocation's event, once, and sends it where it goes: the `Host`'s handler
    /// of events that are not HTTP, the streamed path, or the engine; then posts what came of it.
    fn route(&mut self, next: &Next) -> Result<()> {
        let event = match serde_json::from_slice::<Value>(&next.body) {
            Ok(event) => event,
            Err(e) => return self.fail(next, &Error::event(format!("the event is not JSON: {e}"))),
        };
        let kind = match events::classify(&event) {
            Ok(kind) => kind,
            Err(error) => return self.fail(next, &error),
        };
        let invocation = invocation(next, &self.function);
        match kind {
            EventKind::Other => {
                if let Some(answer) = self.host.other_event(&event, &invocation) {
                    return self.answer(next, answer);
                }
            }
            EventKind::Http(source) if self.streaming => {
                if stream::can_stream(source) {
                    return self.stream(next, &event, &invocation, source);
                }
                self.engine.buffering_because(&format!(
                    "this event comes from an {}, which cannot stream",
                    source.name()
                ));
            }
            _ => {}
        }
        match self
            .engine
            .handle_classified(kind, &event, &invocation, self.cancel)
        {
            Ok(result) => self.respond(next, &result),
            Err(error) if error.kind == ErrorKind::Interrupted => Err(error),
            Err(error) => self.fail(next, &error),
        }
    }

    /// What the `Host`'s handler answered, posted as the invocation's result or error.
    fn answer(&mut self, next: &Next, answer: Answer) -> Result<()> {
        match answer {
            Answer::Result(result) => self.respond(next, &result),
            Answer::Error {
                error_type,
                message,
            } => {
                let posted = self.talk(|api| api.invocation_error(next, &error_type, &message))?;
                self.note_late(next, posted);
                Ok(())
            }
        }
    }

    /// An HTTP response streamed to Lambda as the app sends it; when the engine fails before the
    /// first byte, the invocation's error instead.
    fn stream(
        &mut self,
        next: &Next,
        event: &Value,
        invocation: &Invocation,
        source: events::Source,
    ) -> Result<()> {
        let (tx, rx) = stream::channel();
        let (handled, posted) = {
            let host: &dyn Host = &*self.host;
            let error_type = |kind| host.error_type(kind);
            let sink = Sink::new(tx, &error_type);
            self.engine.handle_streamed(
                source,
                event,
                invocation,
                self.cancel,
                sink,
                self.api.respond_streamed(next, rx),
            )?
        };
        let posted = match posted {
            // Lambda cut the stream off itself; the client has what came before. The loop goes on.
            Err(error) if error.kind == ErrorKind::Oversize => {
                self.engine.note(&error.message);
                return Ok(());
            }
            // The streamed POST broke (its body is gone with it, so it cannot be sent again): said,
            // and the invocation's error posted in its place, so that one failed request does not
            // end the loop and cost the next event a cold start. Only when that fails too does the
            // loop end.
            Err(error) if error.kind != ErrorKind::Interrupted => {
                self.engine.note(&format!(
                    "the streamed response could not be posted: {}",
                    error.message
                ));
                return self.fail(next, &error);
            }
            other => other?,
        };
        match (posted, handled) {
            (Some(posted), _) => {
                self.note_late(next, posted);
                Ok(())
            }
            (None, Err(error)) => self.fail(next, &error),
            (None, Ok(())) => {
                let error = Error::upstream("megamode streamed nothing for this response");
                self.fail(next, &error)
            }
        }
    }

    /// Posts the invocation's result; one Lambda refuses as too large becomes its error.
    fn respond(&mut self, next: &Next, result: &Value) -> Result<()> {
        let body = serde_json::to_vec(result)
            .map_err(|e| Error::upstream(format!("cannot write the result as JSON: {e}")))?;
        match self.talk(|api| api.respond(next, body)) {
            Ok(posted) => {
                self.note_late(next, posted);
                Ok(())
            }
            // Lambda refused it: the invocation's error says why.
            Err(error) if error.kind == ErrorKind::Oversize => self.fail(next, &error),
            Err(other) => Err(other),
        }
    }

    /// Posts `error` as the invocation's error, typed by the `Host`.
    fn fail(&mut self, next: &Next, error: &Error) -> Result<()> {
        let error_type = self.host.error_type(error.kind);
        let posted = self.talk(|api| api.invocation_error(next, error_type, &error.message))?;
        self.note_late(next, posted);
        Ok(())
    }

    /// Lambda's 410 to a response or an error: the invocation had ended before it came. Said, and
    /// the loop goes on.
    fn note_late(&self, next: &Next, posted: Posted) {
        if posted == Posted::Late {
            self.engine.note(&format!(
                "Lambda answered 410 Gone to the result of invocation {}: it had already ended \
                 (its time was up), so the client did not get this result",
                next.request_id
            ));
        }
    }

    /// Runs a Runtime API call on the engine's runtime, until it ends or the caller cancels.
    fn talk<'c, T, F>(&'c mut self, call: impl FnOnce(&'c mut RuntimeApi) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + 'c,
    {
        let Loop {
            io, api, cancel, ..
        } = self;
        io.block_on(cancel.unless_cancelled("talking to the Runtime API", call(api)))
    }
}

/// The invocation `next` describes, for the function `function` (read once from the environment).
fn invocation(next: &Next, function: &Function) -> Invocation {
    let mut invocation = Invocation::new(next.request_id.clone(), next.remaining());
    invocation.trace_id = next.trace_id.clone();
    invocation.tenant_id = next.tenant_id.clone();
    invocation.identity = next.identity.clone();
    invocation.client_context = next.client_context.clone();
    invocation.function = Function {
        arn: next.function_arn.clone(),
        ..function.clone()
    };
    invocation
}
