//! The native loop's side in Ruby (`Megamode::Runtime`): how its errors are named to Lambda, and
//! the Ruby handler of events that are not HTTP, called with the GVL taken back.

use magnus::{prelude::*, RModule, Ruby, Value};
use megamode_core::runtime::Answer;
use megamode_core::{ErrorKind, Invocation};
use serde_json::Value as Json;

use crate::convert::{from_json, to_json};
use crate::ffi::{class_name, with_gvl, BASE_CLASS};

pub struct Host {
    /// Whether `Megamode::Runtime.start` was given a handler for events that are not HTTP.
    pub ruby_events: bool,
}

impl megamode_core::runtime::Host for Host {
    fn error_type(&self, kind: ErrorKind) -> &'static str {
        class_name(kind)
    }

    fn other_event(&mut self, event: &Json, invocation: &Invocation) -> Option<Answer> {
        if !self.ruby_events {
            return None;
        }
        Some(
            with_gvl(|| dispatch_to_ruby(event, invocation)).unwrap_or_else(|| Answer::Error {
                error_type: BASE_CLASS.into(),
                message: "megamode panicked while calling the Ruby handler".into(),
            }),
        )
    }
}

/// Calls `Megamode::Runtime.dispatch(event, request_id, deadline_ms, function_arn, trace_id)`, which
/// answers `{"result" => ...}` or `{"errorType" => ..., "errorMessage" => ...}`. Runs with the GVL
/// held.
fn dispatch_to_ruby(event: &Json, invocation: &Invocation) -> Answer {
    let failed = |message: String| Answer::Error {
        error_type: BASE_CLASS.into(),
        message,
    };
    let Ok(ruby) = Ruby::get() else {
        return failed("the Ruby handler cannot be called from this thread".into());
    };
    let runtime = ruby
        .class_object()
        .const_get::<_, RModule>("Megamode")
        .and_then(|m| m.const_get::<_, RModule>("Runtime"));
    let answer = runtime.and_then(|runtime| {
        runtime.funcall::<_, _, Value>(
            "dispatch",
            (
                from_json(&ruby, event),
                invocation.request_id.as_str(),
                invocation.deadline_ms,
                invocation.function.arn.as_deref(),
                invocation.trace_id.as_deref(),
            ),
        )
    });
    match answer.and_then(to_json) {
        Ok(mut answer) => match answer.get_mut("result").map(Json::take) {
            Some(result) => Answer::Result(result),
            None => Answer::Error {
                error_type: text(&answer, "errorType"),
                message: text(&answer, "errorMessage"),
            },
        },
        Err(error) => failed(format!("the Ruby handler failed: {error}")),
    }
}

fn text(answer: &Json, key: &str) -> String {
    answer
        .get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}
