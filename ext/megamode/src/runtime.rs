//! The native loop's side in Ruby (`Megamode::Runtime`): how its errors are named to Lambda, and
//! the Ruby handler of events that are not HTTP, called with the GVL taken back.

use magnus::error::ErrorType;
use magnus::value::BoxValue;
use magnus::{kwargs, prelude::*, Error, Ruby, Value};
use megamode_core::runtime::Answer;
use megamode_core::{ErrorKind, Invocation};
use serde_json::Value as Json;

use crate::convert::{from_json, to_json};
use crate::ffi::{class_name, with_gvl, BASE_CLASS};

pub struct Host {
    /// The callable given to `Megamode::Runtime.start(events:)`, if any. Boxed, it is a
    /// registered address the GC marks (and so neither frees nor moves what it holds) for as long
    /// as the loop runs, whatever becomes of the caller's reference to it.
    events: Option<BoxValue<Value>>,
}

impl Host {
    /// With the GVL held (`events` is a Ruby object); so must the Host be dropped.
    pub fn new(events: Option<Value>) -> Host {
        Host {
            events: events.map(BoxValue::new),
        }
    }
}

impl megamode_core::runtime::Host for Host {
    fn error_type(&self, kind: ErrorKind) -> &'static str {
        class_name(kind)
    }

    fn other_event(&mut self, event: &Json, invocation: &Invocation) -> Option<Answer> {
        let events = **self.events.as_ref()?;
        Some(
            with_gvl(|| call(events, event, invocation)).unwrap_or_else(|| {
                failed("megamode panicked while calling the Ruby handler".into())
            }),
        )
    }
}

/// Calls `events.call(event:, context:)` as Lambda's Ruby runtime calls a handler: the result, or
/// the exception it raised as Lambda's error (its class and message). Runs with the GVL held.
fn call(events: Value, event: &Json, invocation: &Invocation) -> Answer {
    let Ok(ruby) = Ruby::get() else {
        return failed("the Ruby handler cannot be called from this thread".into());
    };
    let answer = set_trace_id(&ruby, invocation)
        .and_then(|()| crate::context::context(&ruby, invocation))
        .and_then(|context| {
            events.funcall::<_, _, Value>(
                "call",
                (kwargs!("event" => from_json(&ruby, event), "context" => context),),
            )
        });
    match answer {
        Ok(result) => match to_json(result) {
            Ok(result) => Answer::Result(result),
            Err(error) => failed(format!("the Ruby handler failed: {error}")),
        },
        Err(error) => raised(&ruby, error),
    }
}

/// Like Lambda's Ruby runtime, the invocation's X-Ray trace header in `_X_AMZN_TRACE_ID` for the
/// handler (the X-Ray SDKs read it there).
fn set_trace_id(ruby: &Ruby, invocation: &Invocation) -> Result<(), Error> {
    let Some(trace_id) = invocation.trace_id.as_deref() else {
        return Ok(());
    };
    let env: Value = ruby.class_object().const_get("ENV")?;
    env.funcall::<_, _, Value>("[]=", ("_X_AMZN_TRACE_ID", trace_id))
        .map(|_| ())
}

/// An exception the handler raised, as Lambda's error: a StandardError by its class's name and
/// its message, logged as Lambda's runtime logs it; anything else (an interrupt, `exit`) as a
/// failure of megamode's.
fn raised(ruby: &Ruby, error: Error) -> Answer {
    let exception = match error.error_type() {
        ErrorType::Exception(e) if error.is_kind_of(ruby.exception_standard_error()) => *e,
        _ => return failed(format!("the Ruby handler failed: {error}")),
    };
    let class = exception.class();
    let error_type = class
        .funcall::<_, _, Option<String>>("name", ())
        .ok()
        .flatten()
        .unwrap_or_default();
    let message = exception
        .funcall::<_, _, Value>("message", ())
        .and_then(|m| m.to_r_string())
        .and_then(|m| m.to_string())
        .unwrap_or_else(|_| error.to_string());
    let line = format!("megamode: {}: {message}", class.inspect());
    // The log line is a courtesy: a `warn` that fails takes nothing from the answer.
    let _ = ruby.module_kernel().funcall::<_, _, Value>("warn", (line,));
    Answer::Error {
        error_type,
        message,
    }
}

/// A failure of megamode's own around the handler, typed as `Megamode::Error`.
fn failed(message: String) -> Answer {
    Answer::Error {
        error_type: BASE_CLASS.into(),
        message,
    }
}
