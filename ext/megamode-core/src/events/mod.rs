//! Lambda events <-> HTTP: which source sent an event, the request it describes, and the response
//! shape that source expects back.
//!
//! Detection rule, first match wins:
//! 1. not a JSON object: an `Event` error;
//! 2. `megamode` present: a command event, which asks for a task; `_prewarm` present, or `source` is the serverless
//!    warmup plugin's: a prewarm;
//! 3. `requestContext.elb` present: ALB (multi-value mode when `multiValueHeaders` or
//!    `multiValueQueryStringParameters` is present);
//! 4. `version` "2.0", or `requestContext.http` present: HTTP API payload 2.0, or a Function URL
//!    when `requestContext.domainName` is a `.lambda-url.` host;
//! 5. `version` "1.0": HTTP API payload 1.0;
//! 6. `httpMethod` present: REST API;
//! 7. anything else is not HTTP and goes to the pass-through path.

mod body;
pub mod fit;
mod request;
mod response;

use serde_json::{Map, Value};

pub use body::is_text;
pub use request::{translate, Notice, Options};
pub use response::{error_parts, error_response, render, Rendered};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    RestApi,
    HttpApiV1,
    HttpApiV2,
    FunctionUrl,
    Alb { multi_value: bool },
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::RestApi => "API Gateway REST API",
            Source::HttpApiV1 => "API Gateway HTTP API (payload 1.0)",
            Source::HttpApiV2 => "API Gateway HTTP API (payload 2.0)",
            Source::FunctionUrl => "Lambda Function URL",
            Source::Alb { .. } => "Application Load Balancer",
        }
    }

    /// The largest response the source passes on: 6 MB for synchronous invokes, 1 MB behind ALB.
    pub fn response_limit(self) -> usize {
        match self {
            Source::Alb { .. } => 1024 * 1024,
            _ => 6 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Http(Source),
    Prewarm,
    /// A command event, `{"megamode": {"command": ...}}`: a task to run in the app's directory.
    Task,
    /// SQS, S3, EventBridge, ...: forwarded as JSON to the pass-through path.
    Other,
}

/// The serverless-plugin-warmup marker.
const WARMUP_PLUGIN_SOURCE: &str = "serverless-plugin-warmup";

pub fn classify(event: &Value) -> Result<EventKind> {
    let Some(event) = event.as_object() else {
        return Err(Error::event(format!(
            "the event must be a JSON object (a Hash), got {}",
            json_type(event)
        )));
    };
    if event.contains_key("megamode") {
        return Ok(EventKind::Task);
    }
    if event.contains_key("_prewarm")
        || event.get("source").and_then(Value::as_str) == Some(WARMUP_PLUGIN_SOURCE)
    {
        return Ok(EventKind::Prewarm);
    }
    let context = event.get("requestContext").and_then(Value::as_object);
    let in_context = |key: &str| context.is_some_and(|c| c.get(key).is_some_and(|v| !v.is_null()));
    let version = event.get("version").and_then(Value::as_str);
    let source = if in_context("elb") {
        Source::Alb {
            multi_value: event.contains_key("multiValueHeaders")
                || event.contains_key("multiValueQueryStringParameters"),
        }
    } else if version == Some("2.0") || in_context("http") {
        let domain = context
            .and_then(|c| c.get("domainName"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if domain.contains(".lambda-url.") {
            Source::FunctionUrl
        } else {
            Source::HttpApiV2
        }
    } else if version == Some("1.0") {
        Source::HttpApiV1
    } else if event.contains_key("httpMethod") {
        Source::RestApi
    } else {
        return Ok(EventKind::Other);
    };
    Ok(EventKind::Http(source))
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `event.a.b.c`: `None` when a step is absent or null (AWS sends nulls for what a request does not
/// have); an `Event` error naming the field when a step that must be an object is something else.
pub(crate) fn value_at<'a>(
    event: &'a Map<String, Value>,
    path: &[&str],
) -> Result<Option<&'a Value>> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut map = event;
    for (depth, key) in parents.iter().enumerate() {
        match map.get(*key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(inner)) => map = inner,
            Some(other) => return Err(wrong_type(&path[..=depth].join("."), "an object", other)),
        }
    }
    Ok(map.get(*last).filter(|v| !v.is_null()))
}

/// `event.a.b.c` as a string: `None` when absent or null, an `Event` error naming the field when it
/// is another type (`rawPath: 123` is a mistake to report, not a request for `/`).
pub(crate) fn str_at<'a>(event: &'a Map<String, Value>, path: &[&str]) -> Result<Option<&'a str>> {
    match value_at(event, path)? {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(&path.join("."), "a string", other)),
    }
}

/// `event.a.b.c` as an object: `None` when absent or null, an `Event` error naming the field when
/// it is another type.
pub(crate) fn object_at<'a>(
    event: &'a Map<String, Value>,
    path: &[&str],
) -> Result<Option<&'a Map<String, Value>>> {
    match value_at(event, path)? {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(wrong_type(&path.join("."), "an object", other)),
    }
}

/// "rawPath must be a string, got 123": the field, what it must be, and what it is.
pub(crate) fn wrong_type(field: &str, expected: &str, got: &Value) -> Error {
    let got = match got {
        Value::Null | Value::Bool(_) | Value::Number(_) => got.to_string(),
        Value::String(text) => {
            let mut end = text.len().min(60);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let ellipsis = if end < text.len() { "..." } else { "" };
            format!("{:?}{ellipsis}", &text[..end])
        }
        Value::Array(_) | Value::Object(_) => json_type(got).to_owned(),
    };
    Error::event(format!("{field} must be {expected}, got {got}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> EventKind {
        classify(&v).unwrap()
    }

    #[test]
    fn detects_each_source() {
        assert_eq!(
            kind(json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}}})),
            EventKind::Http(Source::HttpApiV2)
        );
        assert_eq!(
            kind(
                json!({"version": "2.0", "requestContext": {"domainName": "x.lambda-url.us-east-1.on.aws", "http": {}}})
            ),
            EventKind::Http(Source::FunctionUrl)
        );
        assert_eq!(
            kind(json!({"version": "1.0", "httpMethod": "GET", "requestContext": {}})),
            EventKind::Http(Source::HttpApiV1)
        );
        assert_eq!(
            kind(json!({"httpMethod": "GET", "resource": "/{proxy+}", "requestContext": {}})),
            EventKind::Http(Source::RestApi)
        );
        assert_eq!(
            kind(
                json!({"httpMethod": "GET", "headers": {}, "requestContext": {"elb": {"targetGroupArn": "arn"}}})
            ),
            EventKind::Http(Source::Alb { multi_value: false })
        );
        assert_eq!(
            kind(
                json!({"httpMethod": "GET", "multiValueHeaders": {}, "requestContext": {"elb": {}}})
            ),
            EventKind::Http(Source::Alb { multi_value: true })
        );
    }

    #[test]
    fn prewarm_and_other_events() {
        assert_eq!(kind(json!({"_prewarm": true})), EventKind::Prewarm);
        assert_eq!(
            kind(json!({"megamode": {"command": "ls"}})),
            EventKind::Task
        );
        assert_eq!(
            kind(json!({"source": "serverless-plugin-warmup"})),
            EventKind::Prewarm
        );
        assert_eq!(
            kind(json!({"Records": [{"eventSource": "aws:sqs"}]})),
            EventKind::Other
        );
        assert_eq!(kind(json!({})), EventKind::Other);
    }

    #[test]
    fn typed_fields_name_the_field_and_the_value() {
        let event = json!({
            "rawPath": 123,
            "path": "/x",
            "nothing": null,
            "requestContext": {"http": "GET", "stage": false, "domainName": null},
            "long": ["x"],
            "text": "a".repeat(100),
        });
        let event = event.as_object().unwrap();
        let err = str_at(event, &["rawPath"]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Event);
        assert_eq!(err.message, "rawPath must be a string, got 123");
        assert_eq!(str_at(event, &["path"]).unwrap(), Some("/x"));
        assert_eq!(str_at(event, &["nothing"]).unwrap(), None);
        assert_eq!(str_at(event, &["absent"]).unwrap(), None);
        assert_eq!(str_at(event, &["nothing", "below"]).unwrap(), None);
        assert_eq!(
            str_at(event, &["requestContext", "domainName"]).unwrap(),
            None
        );
        assert_eq!(
            str_at(event, &["requestContext", "stage"])
                .unwrap_err()
                .message,
            "requestContext.stage must be a string, got false"
        );
        assert_eq!(
            str_at(event, &["requestContext", "http", "method"])
                .unwrap_err()
                .message,
            "requestContext.http must be an object, got \"GET\""
        );
        assert_eq!(
            object_at(event, &["long"]).unwrap_err().message,
            "long must be an object, got an array"
        );
        let err = str_at(event, &["text", "x"]).unwrap_err();
        assert!(err
            .message
            .ends_with(&format!("got \"{}\"...", "a".repeat(60))));
    }

    #[test]
    fn non_objects_are_event_errors() {
        for v in [json!([1]), json!("x"), json!(null), json!(3)] {
            let err = classify(&v).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Event);
            assert!(err.message.contains("JSON object"), "{err}");
        }
    }
}
