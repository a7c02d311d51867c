//! The Lambda context, from Ruby to the core: the one place the Ruby handler's context object
//! becomes an `Invocation`. It answers `aws_request_id` and `get_remaining_time_in_millis`, and
//! may answer the function's identity (`invoked_function_arn`, `function_name`, ...), which is read
//! with the core's `Function::read`, as the native loop reads the environment; the trace id is
//! Lambda's `_X_AMZN_TRACE_ID`, as its Ruby runtime sets it for each invocation.

use magnus::value::{LazyId, ReprValue};
use magnus::{Error, RString, Value};
use megamode_core::invocation::{remaining_from_millis, Field};
use megamode_core::{Function, Invocation};

use crate::ffi::core_error;

static AWS_REQUEST_ID: LazyId = LazyId::new("aws_request_id");
static GET_REMAINING_TIME_IN_MILLIS: LazyId = LazyId::new("get_remaining_time_in_millis");
static TO_F: LazyId = LazyId::new("to_f");

/// What a context that does not say is taken to have left.
const DEFAULT_REMAINING_MS: f64 = 30_000.0;

/// The invocation `context` describes.
pub fn invocation(context: Value) -> Result<Invocation, Error> {
    let request_id = text(context.funcall(*AWS_REQUEST_ID, ())?)?;
    // Any float the context answers (its `to_f`): infinite or huge is no deadline, NaN an
    // EventError.
    let remaining_ms = match context.check_funcall::<_, _, Value>(*GET_REMAINING_TIME_IN_MILLIS, ())
    {
        Some(answer) => answer?.funcall(*TO_F, ())?,
        None => DEFAULT_REMAINING_MS,
    };
    let remaining = remaining_from_millis(remaining_ms).map_err(core_error)?;
    let mut failure = None;
    let function = Function::read(|field| match optional_text(context, field) {
        Ok(value) => value,
        Err(error) => {
            failure.get_or_insert(error);
            None
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    let mut invocation = Invocation::new(request_id, remaining);
    invocation.trace_id = std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|t| !t.is_empty());
    invocation.function = function;
    Ok(invocation)
}

/// The field's method's answer as text (its `to_s`), when the context has the method and it
/// answers something other than nil.
fn optional_text(context: Value, field: Field) -> Result<Option<String>, Error> {
    match context.check_funcall::<_, _, Value>(field.context_method(), ()) {
        None => Ok(None),
        Some(answer) => {
            let answer = answer?;
            if answer.is_nil() {
                Ok(None)
            } else {
                text(answer).map(Some)
            }
        }
    }
}

fn text(value: Value) -> Result<String, Error> {
    let string: RString = value.to_r_string()?;
    string.to_string()
}
