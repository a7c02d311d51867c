//! The app's response -> the result the event's source reads.
//!
//! Shapes:
//! - REST API and HTTP API 1.0: `statusCode`, `multiValueHeaders` (every value, `Set-Cookie`
//!   included), `body`, `isBase64Encoded`. No single-value `headers`: API Gateway merges the two
//!   maps, and one map cannot disagree with itself. No `cookies`: a REST API rejects it as malformed.
//! - HTTP API 2.0 and Function URLs: `statusCode`, `headers` (repeated names comma-joined, without
//!   `Set-Cookie`, which a comma would corrupt), `cookies` (every `Set-Cookie`, always present
//!   because AWS's own response types require it), `body`, `isBase64Encoded`.
//! - ALB: `statusCode`, `statusDescription` ("200 OK"; the bare code for a status with no
//!   registered reason), then `multiValueHeaders` when the target group has multi-value headers on
//!   (the event said so), else `headers`. Single-value mode can carry one `Set-Cookie` only: the last
//!   one is kept, matching ALB's own last-wins rule for repeated request headers.
//!
//! Header names are lower-case; hop-by-hop headers are dropped. Body encoding: see `body`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use serde_json::{Map, Value};

use super::request::hop_by_hop;
use super::{body, Source};

/// What [`render`] and [`error_response`] return: the handler's result for the event's source.
pub type Rendered = Value;

/// The app's response in the shape `source` expects.
pub fn render(source: Source, head: &http::response::Parts, body: &[u8]) -> Rendered {
    let (body, is_base64) = body::response_body(&head.headers, body);
    let headers = forwarded(&head.headers);
    let mut out = Map::new();
    out.insert("statusCode".into(), head.status.as_u16().into());
    match source {
        Source::RestApi | Source::HttpApiV1 => {
            out.insert("multiValueHeaders".into(), multi_value_map(&headers));
        }
        Source::HttpApiV2 | Source::FunctionUrl => {
            let mut single = Map::new();
            let mut cookies = Vec::new();
            for (name, values) in &headers {
                if *name == header::SET_COOKIE {
                    cookies.extend(values.iter().cloned().map(Value::String));
                } else {
                    single.insert(name.as_str().into(), values.join(", ").into());
                }
            }
            out.insert("headers".into(), Value::Object(single));
            out.insert("cookies".into(), Value::Array(cookies));
        }
        Source::Alb { multi_value } => {
            let description = match head.status.canonical_reason() {
                Some(reason) => format!("{} {reason}", head.status.as_u16()),
                None => head.status.as_u16().to_string(),
            };
            out.insert("statusDescription".into(), description.into());
            if multi_value {
                out.insert("multiValueHeaders".into(), multi_value_map(&headers));
            } else {
                let mut single = Map::new();
                for (name, values) in &headers {
                    let value = if *name == header::SET_COOKIE {
                        values.last().cloned().unwrap_or_default()
                    } else {
                        values.join(", ")
                    };
                    single.insert(name.as_str().into(), value.into());
                }
                out.insert("headers".into(), Value::Object(single));
            }
        }
    }
    out.insert("body".into(), body.into());
    out.insert("isBase64Encoded".into(), is_base64.into());
    Value::Object(out)
}

/// A response megamode makes itself (502 when the app is down, 504 on a deadline):
/// `{"error": <reason phrase>, "message": message}` as `application/json`, in the source's shape.
pub fn error_response(source: Source, status: StatusCode, message: &str) -> Rendered {
    let (head, body) = error_parts(status, message);
    render(source, &head, &body)
}

/// The head and body of a response megamode makes itself, before it takes a source's shape (a
/// streamed response sends them as they are).
pub fn error_parts(status: StatusCode, message: &str) -> (http::response::Parts, bytes::Bytes) {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = serde_json::json!({ "error": reason, "message": message }).to_string();
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (head, ()) = response.into_parts();
    (head, bytes::Bytes::from(body))
}

/// Each header name once, in first-seen order, with its values as text; hop-by-hop names removed.
fn forwarded(headers: &HeaderMap) -> Vec<(HeaderName, Vec<String>)> {
    let skip = hop_by_hop(headers);
    headers
        .keys()
        .filter(|name| !skip.contains(name))
        .map(|name| {
            let values = headers.get_all(name).iter().map(text).collect();
            (name.clone(), values)
        })
        .collect()
}

/// A header value as a JSON string. Bytes past ASCII that are not UTF-8 are read as ISO-8859-1,
/// HTTP's historical charset for header text, rather than dropped.
fn text(value: &HeaderValue) -> String {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => text.to_owned(),
        Err(_) => value.as_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

fn multi_value_map(headers: &[(HeaderName, Vec<String>)]) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(name, values)| {
            let values = values.iter().cloned().map(Value::String).collect();
            (name.as_str().to_owned(), Value::Array(values))
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests;
