//! Lambda events <-> HTTP: which source sent an event, the request it describes, and the response
//! shape that source expects back.
//!
//! Detection rule, first match wins:
//! 1. not a JSON object: an `EventError`;
//! 2. `megamode` present: a command event; `_prewarm` present, or `source` is the serverless
//!    warmup plugin's: a prewarm;
//! 3. `requestContext.elb` present: ALB (multi-value mode when `multiValueHeaders` or
//!    `multiValueQueryStringParameters` is present);
//! 4. `version` "2.0", or `requestContext.http` present: HTTP API payload 2.0, or a Function URL
//!    when `requestContext.domainName` is a `.lambda-url.` host;
//! 5. `version` "1.0": HTTP API payload 1.0;
//! 6. `httpMethod` present: REST API;
//! 7. anything else is not HTTP and goes to the pass-through path.

mod body;
mod request;
mod response;

use serde_json::{Map, Value};

pub use body::is_text;
pub use request::{translate, Options};
pub use response::{error_response, render, Rendered};

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
    /// `{"megamode": {"command": ...}}`: a command to run in the app's directory.
    Command,
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
        return Ok(EventKind::Command);
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

/// `event.a.b.c` as a string, when every step is there.
pub(crate) fn str_at<'a>(event: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut map = event;
    for key in parents {
        map = map.get(*key)?.as_object()?;
    }
    map.get(*last)?.as_str()
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
            EventKind::Command
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
    fn non_objects_are_event_errors() {
        for v in [json!([1]), json!("x"), json!(null), json!(3)] {
            let err = classify(&v).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Event);
            assert!(err.message.contains("JSON object"), "{err}");
        }
    }
}
