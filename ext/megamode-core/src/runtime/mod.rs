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
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, EventKind};
use crate::invocation::{Function, Invocation};
use api::{Next, RuntimeApi};

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
    if let Err(error) = engine.init(cancel) {
        let error_type = host.error_type(error.kind);
        talk(&io, cancel, api.init_error(error_type, &error.message))?;
        return Err(error);
    }
    let function = Function::from_env();
    loop {
        let next = talk(&io, cancel, api.next())?;
        let invocation = invocation(&next, &function);
        let event = match serde_json::from_slice::<Value>(&next.body) {
            Ok(event) => event,
            Err(e) => {
                let error = Error::event(format!("the event is not JSON: {e}"));
                fail(&io, api, cancel, host, &next, &error)?;
                continue;
            }
        };
        if let Ok(EventKind::Other) = events::classify(&event) {
            if let Some(answer) = host.other_event(&event, &invocation) {
                match answer {
                    Answer::Result(result) => respond(&io, api, cancel, host, &next, &result)?,
                    Answer::Error {
                        error_type,
                        message,
                    } => talk(
                        &io,
                        cancel,
                        api.invocation_error(&next.request_id, &error_type, &message),
                    )?,
                }
                continue;
            }
        }
        match engine.handle(&event, &invocation, cancel) {
            Ok(result) => respond(&io, api, cancel, host, &next, &result)?,
            Err(error) if error.kind == ErrorKind::Interrupted => return Err(error),
            Err(error) => fail(&io, api, cancel, host, &next, &error)?,
        }
    }
}

/// The invocation `next` describes, for the function `function` (read once from the environment).
fn invocation(next: &Next, function: &Function) -> Invocation {
    let mut invocation = Invocation::new(next.request_id.clone(), next.remaining());
    invocation.trace_id = next.trace_id.clone();
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
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &dyn Host,
    next: &Next,
    result: &Value,
) -> Result<()> {
    let body = serde_json::to_vec(result)
        .map_err(|e| Error::upstream(format!("cannot write the result as JSON: {e}")))?;
    match talk(io, cancel, api.respond(&next.request_id, body)) {
        // Lambda refused it: the invocation's error says why.
        Err(error) if error.kind == ErrorKind::Oversize => {
            fail(io, api, cancel, host, next, &error)
        }
        other => other,
    }
}

fn fail(
    io: &Runtime,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    host: &dyn Host,
    next: &Next,
    error: &Error,
) -> Result<()> {
    let error_type = host.error_type(error.kind);
    talk(
        io,
        cancel,
        api.invocation_error(&next.request_id, error_type, &error.message),
    )
}
