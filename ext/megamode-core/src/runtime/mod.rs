//! The native way to run on Lambda (`Megamode::Runtime.start`): this loop polls the Runtime API
//! itself and handles every event in Rust (translation, proxy, response), with no Ruby per
//! request, so the Ruby runtime client's own cost per invocation (a new connection to the Runtime
//! API for every event) is gone. Everything else is the Ruby handler's path: the same `Engine`.

use serde_json::Value;

use crate::engine::{Cancel, Engine};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{self, EventKind};
use crate::invocation::Invocation;
use crate::runtime_api::{Next, RuntimeApi};

/// The parts of the context Lambda gives through the environment rather than per invocation.
#[derive(Clone, Debug, Default)]
pub struct Function {
    pub name: Option<String>,
    pub version: Option<String>,
    pub memory_limit_in_mb: Option<u32>,
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
}

impl Function {
    pub fn from_env() -> Function {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Function {
            name: var("AWS_LAMBDA_FUNCTION_NAME"),
            version: var("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_limit_in_mb: var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.parse().ok()),
            log_group_name: var("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name: var("AWS_LAMBDA_LOG_STREAM_NAME"),
        }
    }

    fn invocation(&self, next: &Next) -> Invocation {
        let mut invocation = Invocation::new(next.request_id.clone(), next.remaining());
        invocation.trace_id = next.trace_id.clone();
        invocation.function_arn = next.function_arn.clone();
        invocation.function_name = self.name.clone();
        invocation.function_version = self.version.clone();
        invocation.memory_limit_in_mb = self.memory_limit_in_mb;
        invocation.log_group_name = self.log_group_name.clone();
        invocation.log_stream_name = self.log_stream_name.clone();
        invocation
    }
}

/// What a handler of events that are not HTTP (SQS, S3, EventBridge, ...) answers: the result, or
/// an error as Lambda's error shape names it.
pub enum Answer {
    Result(Value),
    Error { error_type: String, message: String },
}

/// A handler for events that are not HTTP, given the event and its invocation. Without one, such
/// events go to the app's pass-through path, as with the Ruby handler.
pub type OtherEvents<'a> = &'a mut dyn FnMut(&Value, &Invocation) -> Answer;

/// Boots the app (reporting a failure as Lambda's init error), then serves invocations until
/// cancelled. Returns only with the reason it stopped.
pub fn run(
    engine: &mut Engine,
    api: &mut RuntimeApi,
    cancel: &Cancel,
    mut other: Option<OtherEvents>,
) -> Result<()> {
    if let Err(error) = engine.boot() {
        api.init_error(&error, cancel)?;
        return Err(error);
    }
    let function = Function::from_env();
    loop {
        let next = api.next(cancel)?;
        let invocation = function.invocation(&next);
        let event = match serde_json::from_slice::<Value>(&next.body) {
            Ok(event) => event,
            Err(e) => {
                let error = Error::event(format!("the event is not JSON: {e}"));
                api.invocation_error(&next.request_id, &error, cancel)?;
                continue;
            }
        };
        if let (Some(handler), Ok(EventKind::Other)) = (other.as_mut(), events::classify(&event)) {
            match handler(&event, &invocation) {
                Answer::Result(result) => respond(api, &next, &result, cancel)?,
                Answer::Error {
                    error_type,
                    message,
                } => api.typed_error(&next.request_id, &error_type, &message, cancel)?,
            }
            continue;
        }
        let outcome = engine.handle(&event, &invocation, cancel);
        match outcome {
            Ok(result) => respond(api, &next, &result, cancel)?,
            Err(error) if error.kind == ErrorKind::Interrupted => return Err(error),
            Err(error) => api.invocation_error(&next.request_id, &error, cancel)?,
        }
    }
}

fn respond(api: &mut RuntimeApi, next: &Next, result: &Value, cancel: &Cancel) -> Result<()> {
    let body = serde_json::to_vec(result)
        .map_err(|e| Error::proxy(format!("cannot write the result as JSON: {e}")))?;
    api.respond(&next.request_id, body, cancel)
}
