//! The Lambda context, between Ruby and the core: the one place a context object becomes an
//! `Invocation`, and an `Invocation` a context object (`Megamode::Context`, for the native loop's
//! Ruby handler).
//!
//! A context answers `aws_request_id` and `get_remaining_time_in_millis`, and may answer the
//! function's identity (`invoked_function_arn`, `function_name`, ...), which is read with the
//! core's `Function::read`, as the native loop reads the environment. The trace id is the
//! context's `trace_id` (a `Megamode::Context`'s); a context without that method, Lambda's own
//! Ruby runtime's, has it in `_X_AMZN_TRACE_ID`, which that runtime sets for each invocation. A
//! context that lacks `aws_request_id`, or whose methods raise or answer what cannot be read, is an
//! EventError naming the method and what a context must answer (not the `NoMethodError` of the
//! call).

use magnus::error::ErrorType;
use magnus::value::{LazyId, ReprValue};
use magnus::{Error, IntoValue, Module, RModule, RString, Ruby, Value};
use megamode_core::invocation::{remaining_from_millis, Field};
use megamode_core::{ErrorKind, Function, Invocation};

use crate::convert::from_json;
use crate::ffi::{core_error, megamode_error};

static TO_F: LazyId = LazyId::new("to_f");

const AWS_REQUEST_ID: &str = "aws_request_id";
const GET_REMAINING_TIME_IN_MILLIS: &str = "get_remaining_time_in_millis";
const TRACE_ID: &str = "trace_id";

/// The method of Lambda's context object (and `Megamode::Context.new`'s keyword) for a part of the
/// function's identity: the core knows the parts, the binding their Ruby names.
fn method(field: Field) -> &'static str {
    match field {
        Field::Arn => "invoked_function_arn",
        Field::Name => "function_name",
        Field::Version => "function_version",
        Field::MemoryLimitInMb => "memory_limit_in_mb",
        Field::LogGroupName => "log_group_name",
        Field::LogStreamName => "log_stream_name",
    }
}

/// What the errors about a context say it must be.
const WHAT_A_CONTEXT_ANSWERS: &str = "the handler's context must answer aws_request_id (a \
     string) and get_remaining_time_in_millis (a number), as Lambda's context object does: pass \
     Megamode.handler the context Lambda gives the handler (locally, a Megamode::Context)";

/// What a context that does not say is taken to have left.
const DEFAULT_REMAINING_MS: f64 = 30_000.0;

/// The invocation `context` describes.
pub fn invocation(context: Value) -> Result<Invocation, Error> {
    let request_id = match context.check_funcall::<_, _, Value>(AWS_REQUEST_ID, ()) {
        Some(answer) => text(
            answer.map_err(|e| raised(AWS_REQUEST_ID, e))?,
            AWS_REQUEST_ID,
        )?,
        None => {
            return Err(context_error(format!(
                "the context ({}) has no {AWS_REQUEST_ID} method",
                describe(context)
            )))
        }
    };
    // Any float the context answers (its `to_f`): infinite or huge is no deadline, NaN an
    // EventError.
    let remaining_ms = match context.check_funcall::<_, _, Value>(GET_REMAINING_TIME_IN_MILLIS, ())
    {
        Some(answer) => {
            let answer = answer.map_err(|e| raised(GET_REMAINING_TIME_IN_MILLIS, e))?;
            match answer.check_funcall::<_, _, f64>(*TO_F, ()) {
                Some(ms) => ms.map_err(|e| raised(GET_REMAINING_TIME_IN_MILLIS, e))?,
                None => {
                    return Err(context_error(format!(
                        "the context's {GET_REMAINING_TIME_IN_MILLIS} answered {}, which is not a number",
                        describe(answer)
                    )))
                }
            }
        }
        None => DEFAULT_REMAINING_MS,
    };
    let remaining = remaining_from_millis(remaining_ms).map_err(core_error)?;
    let mut failure = None;
    let function = Function::read(|field| match optional_text(context, method(field)) {
        Ok(value) => value,
        Err(error) => {
            failure.get_or_insert(error);
            None
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    let trace_id = if context.respond_to(TRACE_ID, false)? {
        optional_text(context, TRACE_ID)?
    } else {
        std::env::var("_X_AMZN_TRACE_ID").ok()
    };
    let mut invocation = Invocation::new(request_id, remaining);
    invocation.trace_id = trace_id.filter(|t| !t.is_empty());
    invocation.function = function;
    Ok(invocation)
}

/// The `Megamode::Context` of `invocation`, for the native loop's Ruby handler: every field the
/// Runtime API's headers and Lambda's environment gave, by the name of its method.
pub fn context(ruby: &Ruby, invocation: &Invocation) -> Result<Value, Error> {
    let fields = ruby.hash_new();
    let set = |method: &str, value: Value| fields.aset(ruby.to_symbol(method), value);
    set(
        AWS_REQUEST_ID,
        invocation.request_id.as_str().into_value_with(ruby),
    )?;
    set("deadline_ms", invocation.deadline_ms.into_value_with(ruby))?;
    let function = &invocation.function;
    let memory = function.memory_limit_in_mb.map(|mb| mb.to_string());
    for (field, value) in [
        (Field::Arn, function.arn.as_deref()),
        (Field::Name, function.name.as_deref()),
        (Field::Version, function.version.as_deref()),
        (Field::MemoryLimitInMb, memory.as_deref()),
        (Field::LogGroupName, function.log_group_name.as_deref()),
        (Field::LogStreamName, function.log_stream_name.as_deref()),
    ] {
        set(method(field), value.into_value_with(ruby))?;
    }
    for (method, value) in [
        ("identity", &invocation.identity),
        ("client_context", &invocation.client_context),
    ] {
        set(
            method,
            value
                .as_ref()
                .map(|v| from_json(ruby, v))
                .into_value_with(ruby),
        )?;
    }
    set(
        "tenant_id",
        invocation.tenant_id.as_deref().into_value_with(ruby),
    )?;
    set(
        TRACE_ID,
        invocation.trace_id.as_deref().into_value_with(ruby),
    )?;
    let class: Value = ruby
        .class_object()
        .const_get::<_, RModule>("Megamode")?
        .const_get("Context")?;
    class.funcall("new", (magnus::KwArgs(fields),))
}

/// The answer of the context's `method` as text (its `to_s`), when the context has the method and
/// it answers something other than nil.
fn optional_text(context: Value, method: &str) -> Result<Option<String>, Error> {
    match context.check_funcall::<_, _, Value>(method, ()) {
        None => Ok(None),
        Some(answer) => {
            let answer = answer.map_err(|e| raised(method, e))?;
            if answer.is_nil() {
                Ok(None)
            } else {
                text(answer, method).map(Some)
            }
        }
    }
}

/// The answer of the context's `method` as UTF-8 text (its `to_s`).
fn text(value: Value, method: &str) -> Result<String, Error> {
    let string: RString = value.to_r_string().map_err(|e| raised(method, e))?;
    string.to_string().map_err(|e| raised(method, e))
}

/// An error from calling the context's `method` (or reading its answer) as an EventError naming
/// both. What is not a StandardError (an interrupt, `exit`, a `throw`) goes on as it is.
fn raised(method: &str, error: Error) -> Error {
    let ruby = Ruby::get().expect("binding calls run on a Ruby thread");
    if !error.is_kind_of(ruby.exception_standard_error()) {
        return error;
    }
    let shown = match error.error_type() {
        ErrorType::Exception(e) => format!("{}: {e}", e.class().inspect()),
        _ => error.to_string(),
    };
    context_error(format!("the context's {method} failed ({shown})"))
}

fn context_error(cause: String) -> Error {
    megamode_error(
        ErrorKind::Event,
        &format!("{cause}: {WHAT_A_CONTEXT_ANSWERS}"),
    )
}

/// A value for an error message: `nil`, or `a Object`.
fn describe(value: Value) -> String {
    if value.is_nil() {
        "nil".to_string()
    } else {
        format!("a {}", value.class().inspect())
    }
}
