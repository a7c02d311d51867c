//! The native way to run on Lambda (the binding starts it): this loop polls the Runtime API
//! itself and handles every event in Rust (translation, proxy, response), with no Ruby per
//! request, so the Ruby runtime client's own cost per invocation (a new connection to the Runtime
//! API for every event) is gone. Everything else is the Ruby handler's path: the same `Engine`,
//! on the same I/O runtime.

pub mod api;

use std::future::Future;

use serde_json::Value;
use tokio::runtime::Runtime;

use crate::cancel::Cancel;
use crate::config::InvokeMode;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, EventKind};
use crate::invocation::{Function, Invocation};
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
    let io = engine.io_runtime()?;
    engine.driven_by_native_loop();
    if let Err(error) = engine.init(cancel) {
        let error_type = host.error_type(error.kind);
        talk(&io, cancel, api.init_error(error_type, &error.message))?;
        return Err(error);
    }
    let function = Function::from_env();
    let streaming = engine.invoke_mode() == InvokeMode::ResponseStream;
    loop {
        let next = talk(&io, cancel, api.next())?;
        let invocation = invocation(&next, &function);
        let event = match serde_json::from_slice::<Value>(&next.body) {
            Ok(event) => event,
            Err(e) => {
                let error = Error::event(format!("the event is not JSON: {e}"));
                fail(&io, engine, api, cancel, host, &next, &error)?;
                continue;
            }
        };
        match events::classify(&event) {
            Ok(EventKind::Other) => {
                if let Some(answer) = host.other_event(&event, &invocation) {
                    let posted = match answer {
                        Answer::Result(result) => {
                            respond(&io, engine, api, cancel, host, &next, &result)?;
                            continue;
                        }
                        Answer::Error {
                            error_type,
                            message,
                        } => talk(
                            &io,
                            cancel,
                            api.invocation_error(&next, &error_type, &message),
                        )?,
                    };
                    note_late(engine, &next, posted);
                    continue;
                }
            }
            Ok(EventKind::Http(source)) if streaming => {
                if stream::can_stream(source) {
                    stream(
                        engine,
                        api,
                        cancel,
                        host,
                        &next,
                        &event,
                        &invocation,
                        source,
                    )?;
                    continue;
                }
                engine.buffering_because(&format!(
                    "this event comes from an {}, which cannot stream",
                    source.name()
                ));
            }
            _ => {}
        }
        match engine.handle(&event, &invocation, cancel) {
            Ok(result) => respond(&io, engine, api, cancel, host, &next, &result)?,
            Err(error) if error.kind == ErrorKind::Interrupted => return Err(error),
            Err(error) => fail(&io, engine, api, cancel, host, &next, &error)?,
        }
    }
}

/// An HTTP response streamed to Lambda as the app sends it; when the engine fails before the
/// first byte, the invocation's error instead.
#[allow(clippy::too_many_arguments)]
fn stream(
    engine: &mut Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &mut dyn Host,
    next: &Next,
    event: &Value,
    invocation: &Invocation,
    source: events::Source,
) -> Result<()> {
    let io = engine.io_runtime()?;
    let (tx, rx) = stream::channel();
    let (handled, posted) = {
        let host: &dyn Host = host;
        let error_type = |kind| host.error_type(kind);
        let sink = Sink::new(tx, &error_type);
        engine.handle_streamed(
            source,
            event,
            invocation,
            cancel,
            sink,
            api.respond_streamed(next, rx),
        )?
    };
    let posted = match posted {
        // Lambda cut the stream off itself; the client has what came before. The loop goes on.
        Err(error) if error.kind == ErrorKind::Oversize => {
            engine.note(&error.message);
            return Ok(());
        }
        // The streamed POST broke (its body is gone with it, so it cannot be sent again): said,
        // and the invocation's error posted in its place, so that one failed request does not end
        // the loop and cost the next event a cold start. Only when that fails too does the loop end.
        Err(error) if error.kind != ErrorKind::Interrupted => {
            engine.note(&format!(
                "the streamed response could not be posted: {}",
                error.message
            ));
            return fail(&io, engine, api, cancel, host, next, &error);
        }
        other => other?,
    };
    match (posted, handled) {
        (Some(posted), _) => {
            note_late(engine, next, posted);
            Ok(())
        }
        (None, Err(error)) => fail(&io, engine, api, cancel, host, next, &error),
        (None, Ok(())) => {
            let error = Error::upstream("megamode streamed nothing for this response");
            fail(&io, engine, api, cancel, host, next, &error)
        }
    }
}

/// Lambda's 410 to a response or an error: the invocation had ended before it came. Said, and the
/// loop goes on.
fn note_late(engine: &Engine, next: &Next, posted: Posted) {
    if posted == Posted::Late {
        engine.note(&format!(
            "Lambda answered 410 Gone to the result of invocation {}: it had already ended (its \
             time was up), so the client did not get this result",
            next.request_id
        ));
    }
}

/// The invocation `next` describes, for the function `function` (read once from the environment).
fn invocation(next: &Next, function: &Function) -> Invocation {
    let mut invocation = Invocation::new(next.request_id.clone(), next.remaining());
    invocation.trace_id = next.trace_id.clone();
    invocation.tenant_id = next.tenant_id.clone();
    invocation.function = Function {
        arn: next.function_arn.clone(),
        ..function.clone()
    };
    invocation
}

/// Runs a Runtime API call on the engine's runtime, until it ends or the caller cancels.
fn talk<T>(io: &Runtime, cancel: &Cancel, call: impl Future<Output = Result<T>>) -> Result<T> {
    io.block_on(cancel.unless_cancelled("talking to the Runtime API", call))
}

fn respond(
    io: &Runtime,
    engine: &Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &dyn Host,
    next: &Next,
    result: &Value,
) -> Result<()> {
    let body = serde_json::to_vec(result)
        .map_err(|e| Error::upstream(format!("cannot write the result as JSON: {e}")))?;
    match talk(io, cancel, api.respond(next, body)) {
        Ok(posted) => {
            note_late(engine, next, posted);
            Ok(())
        }
        // Lambda refused it: the invocation's error says why.
        Err(error) if error.kind == ErrorKind::Oversize => {
            fail(io, engine, api, cancel, host, next, &error)
        }
        Err(other) => Err(other),
    }
}

fn fail(
    io: &Runtime,
    engine: &Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &dyn Host,
    next: &Next,
    error: &Error,
) -> Result<()> {
    let error_type = host.error_type(error.kind);
    let posted = talk(
        io,
        cancel,
        api.invocation_error(next, error_type, &error.message),
    )?;
    note_late(engine, next, posted);
    Ok(())
}
