//! An HTTP event -> the request the app receives.
//!
//! Path. Sources differ in what they send: REST APIs, Function URLs and ALB pass the path as the
//! client encoded it; HTTP APIs (payload 1.0 `path` and 2.0 `rawPath`) pass it percent-decoded.
//! The event does not say which, so one rule serves all: a byte is percent-encoded only when it can
//! never stand literally in a URI path (controls, space, non-ASCII, `"#<>?\^`{|}`, and a `%` not
//! followed by two hex digits). An encoded path passes byte for byte and is never double-encoded;
//! a decoded one becomes valid again. What cannot be recovered is a decoded `%41` that the client
//! sent as `%2541`: it reaches the app as `%41`.
//!
//! Prefix (`X-Forwarded-Prefix`). REST: what `requestContext.path` has in front of `path` (a request
//! for the bare stage, `/dev`, has path `/`, so all of `/dev` is the prefix). HTTP 1.0: the same,
//! and, when that finds none, the named-stage rule of 2.0, because HTTP APIs leave a named stage in
//! `path` as they do in `rawPath`. HTTP 2.0: a named stage (not `$default`) leading `rawPath` as a
//! whole segment. Function URLs and ALB: none. Then `MEGAMODE_BASE_PATH`, as whole segments, moves
//! from the front of the path to the end of the prefix.
//!
//! Query. HTTP 2.0 and Function URLs: `rawQueryString` as sent. REST and HTTP 1.0: rebuilt from
//! the parameters, which API Gateway has decoded, so keys and values are percent-encoded (all but
//! `A-Za-z0-9-._~`; `+` becomes `%2B`, space `%20`). ALB: rebuilt from the parameters as received,
//! because ALB does not decode them. An empty value gives `key=`, a JSON null `key` alone. Either
//! way the bytes that can never stand in a query (controls, space, non-ASCII, `"#<>\^`{|}`) are
//! percent-encoded so that the request line stays valid; a bare `%` stands, as the client sent it.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::{body, json_type, str_at, Source};
use crate::error::{Error, Result};
use crate::invocation::Invocation;

pub struct Options<'a> {
    /// `MEGAMODE_BASE_PATH`, normalised to `/x/y` (no trailing slash).
    pub base_path: Option<&'a str>,
    pub invocation: &'a Invocation,
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, not the message; the
/// loopback connection to the app is a different one.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Headers only megamode may set: a client's copy would let it forge what the app trusts.
const OWNED: [&str; 4] = [
    "x-forwarded-prefix",
    "x-amzn-request-context",
    "x-amzn-lambda-context",
    "x-request-start",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
const X_AMZN_REQUEST_CONTEXT: HeaderName = HeaderName::from_static("x-amzn-request-context");
const X_AMZN_LAMBDA_CONTEXT: HeaderName = HeaderName::from_static("x-amzn-lambda-context");

/// Everything but RFC 3986's unreserved characters, for values API Gateway has decoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The request the event describes. `event` must be an object already classified as `Http(source)`.
pub fn translate(event: &Value, source: Source, opts: &Options) -> Result<Request<Bytes>> {
    let Some(event) = event.as_object() else {
        return Err(Error::event(format!(
            "the {} event must be a JSON object, got {}",
            source.name(),
            json_type(event)
        )));
    };
    let method = method(event, source)?;
    let body = body::request_body(event)?;
    let (prefix, path) = split_path(event, source, opts.base_path);
    let query = query(event, source);
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let uri: Uri = target.parse().map_err(|err| {
        Error::event(format!(
            "the {} event's path and query do not make a valid request URI ({err}): {}",
            source.name(),
            truncate(&target, 200)
        ))
    })?;

    let mut headers = event_headers(event)?;
    if let Some(cookie) = v2_cookies(event) {
        headers.insert(header::COOKIE, cookie);
    }
    set_defaults(&mut headers, event, source);
    set_owned(&mut headers, event, &prefix, opts.invocation);
    if !body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }

    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

fn method(event: &Map<String, Value>, source: Source) -> Result<Method> {
    let (found, field) = match source {
        Source::HttpApiV2 | Source::FunctionUrl => (
            str_at(event, &["requestContext", "http", "method"]),
            "requestContext.http.method",
        ),
        Source::RestApi | Source::HttpApiV1 | Source::Alb { .. } => {
            (str_at(event, &["httpMethod"]), "httpMethod")
        }
    };
    let Some(name) = found.filter(|m| !m.is_empty()) else {
        return Err(Error::event(format!(
            "the {} event has no {field}",
            source.name()
        )));
    };
    // Methods are case-sensitive, but every gateway sends them upper-case; a hand-written `get`
    // means GET, not an extension method no app routes.
    Method::from_bytes(name.to_ascii_uppercase().as_bytes()).map_err(|_| {
        Error::event(format!(
            "the {} event has an invalid {field}: {name:?}",
            source.name()
        ))
    })
}

/// (prefix, path), both ready for the request: percent-encoded where needed, path never empty.
fn split_path(
    event: &Map<String, Value>,
    source: Source,
    base_path: Option<&str>,
) -> (String, String) {
    let field = match source {
        Source::HttpApiV2 | Source::FunctionUrl => "rawPath",
        Source::RestApi | Source::HttpApiV1 | Source::Alb { .. } => "path",
    };
    let raw = str_at(event, &[field]).unwrap_or("");
    let path: Cow<str> = if raw.starts_with('/') {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(format!("/{raw}"))
    };
    let context_path = str_at(event, &["requestContext", "path"]);
    let stage = str_at(event, &["requestContext", "stage"]);
    let (prefix, rest) = match source {
        Source::RestApi => context_prefix(context_path, &path),
        Source::HttpApiV1 => match context_prefix(context_path, &path) {
            ("", _) => stage_prefix(stage, &path),
            found => found,
        },
        Source::HttpApiV2 => stage_prefix(stage, &path),
        Source::FunctionUrl | Source::Alb { .. } => ("", &*path),
    };
    let (base, rest) = match base_path.map(|b| b.trim_end_matches('/')) {
        Some(base) if base.starts_with('/') => match strip_segments(rest, base) {
            Some(after) => (base, after),
            None => ("", rest),
        },
        _ => ("", rest),
    };
    let mut full_prefix = escape(prefix, Part::Path);
    full_prefix.push_str(&escape(base, Part::Path));
    let rest = if rest.is_empty() { "/" } else { rest };
    (full_prefix, escape(rest, Part::Path))
}

/// What `requestContext.path` has in front of `path`, without a trailing slash.
fn context_prefix<'a>(context_path: Option<&'a str>, path: &'a str) -> (&'a str, &'a str) {
    let Some(full) = context_path else {
        return ("", path);
    };
    let prefix = if full.len() > path.len() && full.ends_with(path) {
        &full[..full.len() - path.len()]
    } else if path == "/" {
        full
    } else {
        ""
    };
    let prefix = prefix.trim_end_matches('/');
    if prefix.starts_with('/') {
        (prefix, path)
    } else {
        ("", path)
    }
}

/// A named stage leading the path as a whole segment.
fn stage_prefix<'a>(stage: Option<&str>, path: &'a str) -> (&'a str, &'a str) {
    match stage {
        Some(stage) if !stage.is_empty() && stage != "$default" => {
            match path
                .strip_prefix('/')
                .and_then(|p| strip_segments(p, stage))
            {
                Some(rest) => (&path[..1 + stage.len()], rest),
                None => ("", path),
            }
        }
        _ => ("", path),
    }
}

/// `path` without `lead`, when `lead` is all of its first segments ("/dev" leads "/dev/x", not
/// "/devices").
fn strip_segments<'a>(path: &'a str, lead: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(lead)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[derive(Clone, Copy)]
enum Part {
    Path,
    Query,
}

/// Percent-encodes the bytes that can never stand literally in that part of a URI, and nothing
/// else, so an already encoded string is returned unchanged.
fn escape(text: &str, part: Part) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &b) in bytes.iter().enumerate() {
        let literal = match b {
            b'%' => match part {
                // A decoded path's `%` came from `%25`; in a query the client's bytes stand.
                Part::Path => {
                    bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                }
                Part::Query => true,
            },
            b'?' => matches!(part, Part::Query),
            b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => false,
            0x21..=0x7e => true,
            _ => false,
        };
        if literal {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
    out
}

fn query(event: &Map<String, Value>, source: Source) -> String {
    match source {
        Source::HttpApiV2 | Source::FunctionUrl => escape(
            str_at(event, &["rawQueryString"]).unwrap_or(""),
            Part::Query,
        ),
        Source::RestApi | Source::HttpApiV1 => {
            parameters(event, |s| utf8_percent_encode(s, COMPONENT).to_string())
        }
        Source::Alb { .. } => parameters(event, |s| escape(s, Part::Query)),
    }
}

/// `multiValueQueryStringParameters` when it has any, else `queryStringParameters`, in the
/// event's order, each key and value passed through `encode`.
fn parameters(event: &Map<String, Value>, encode: impl Fn(&str) -> String) -> String {
    let non_empty = |key: &str| {
        event
            .get(key)
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
    };
    let Some(params) =
        non_empty("multiValueQueryStringParameters").or_else(|| non_empty("queryStringParameters"))
    else {
        return String::new();
    };
    let mut out = String::new();
    let mut push = |key: &str, value: Option<Cow<str>>| {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode(key));
        if let Some(value) = value {
            out.push('=');
            out.push_str(&encode(&value));
        }
    };
    for (key, value) in params {
        match value {
            Value::Array(values) => {
                for value in values {
                    push(key, scalar(value));
                }
            }
            value => push(key, scalar(value)),
        }
    }
    out
}

/// A JSON scalar as text; null is "no value".
fn scalar(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// `headers` and `multiValueHeaders` merged (the multi-value list wins a name both have), with
/// hop-by-hop and megamode-owned headers dropped, and repeated `Cookie` headers joined into one
/// (RFC 6265 allows only one, and Rack splits a repeated header on commas, not semicolons).
///
/// A name or value HTTP does not allow (CR, LF, NUL, ...) is a `BadRequest`: forwarding it could
/// split the request in two, and dropping it silently would hide what the client sent.
fn event_headers(event: &Map<String, Value>) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    let mut from_multi: Vec<HeaderName> = Vec::new();
    if let Some(multi) = event.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            let name = header_name(name)?;
            let values = match values {
                Value::Array(values) => values.iter().collect(),
                value => vec![value],
            };
            for value in values {
                if let Some(value) = header_value(&name, value)? {
                    headers.append(&name, value);
                }
            }
            from_multi.push(name);
        }
    }
    if let Some(single) = event.get("headers").and_then(Value::as_object) {
        for (name, value) in single {
            let name = header_name(name)?;
            if from_multi.contains(&name) {
                continue;
            }
            if let Some(value) = header_value(&name, value)? {
                headers.append(name, value);
            }
        }
    }
    remove_hop_by_hop(&mut headers);
    for name in OWNED {
        headers.remove(name);
    }
    // Ours is computed from the decoded body.
    headers.remove(header::CONTENT_LENGTH);
    // The whole body is already here: an app answering `100 Continue` would only add a round trip.
    headers.remove(header::EXPECT);
    join_cookies(&mut headers);
    Ok(headers)
}

fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::bad_request(format!(
            "the request header name {:?} is not allowed in HTTP",
            truncate(name, 100)
        ))
    })
}

/// The value as a header value; `None` for a JSON value that is not text (an object, an array).
fn header_value(name: &HeaderName, value: &Value) -> Result<Option<HeaderValue>> {
    let Some(text) = scalar(value) else {
        return Ok(None);
    };
    HeaderValue::from_bytes(text.as_bytes())
        .map(Some)
        .map_err(|_| {
            Error::bad_request(format!(
                "the request header {name} has a value with a character HTTP does not allow \
             (CR, LF, NUL or another control character): {:?}",
                truncate(&text, 100)
            ))
        })
}

/// The names that must not cross to the next hop: the fixed list plus any the `Connection`
/// header lists.
pub(super) fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                names.push(name);
            }
        }
    }
    names
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in hop_by_hop(headers) {
        headers.remove(name);
    }
}

fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Payload 2.0 moves cookies out of the headers into a `cookies` array.
fn v2_cookies(event: &Map<String, Value>) -> Option<HeaderValue> {
    let cookies = event.get("cookies")?.as_array()?;
    let parts: Vec<&str> = cookies.iter().filter_map(Value::as_str).collect();
    if parts.is_empty() {
        return None;
    }
    HeaderValue::from_str(&parts.join("; ")).ok()
}

/// Host and X-Forwarded-* come from the gateway; these fill in what an event left out.
fn set_defaults(headers: &mut HeaderMap, event: &Map<String, Value>, source: Source) {
    let mut default = |name: HeaderName, value: Option<&str>| {
        if headers.contains_key(&name) {
            return;
        }
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    default(
        header::HOST,
        str_at(event, &["requestContext", "domainName"]),
    );
    default(X_FORWARDED_PROTO, Some("https"));
    default(X_FORWARDED_PORT, Some("443"));
    let source_ip = match source {
        Source::HttpApiV2 | Source::FunctionUrl => {
            str_at(event, &["requestContext", "http", "sourceIp"])
        }
        Source::RestApi | Source::HttpApiV1 => {
            str_at(event, &["requestContext", "identity", "sourceIp"])
        }
        Source::Alb { .. } => None,
    };
    default(X_FORWARDED_FOR, source_ip);
}

fn set_owned(
    headers: &mut HeaderMap,
    event: &Map<String, Value>,
    prefix: &str,
    invocation: &Invocation,
) {
    if !prefix.is_empty() {
        if let Ok(value) = HeaderValue::from_str(prefix) {
            headers.insert(X_FORWARDED_PREFIX, value);
        }
    }
    if !headers.contains_key(&X_REQUEST_ID) {
        if let Ok(value) = HeaderValue::from_str(&invocation.request_id) {
            headers.insert(X_REQUEST_ID, value);
        }
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    if let Ok(value) = HeaderValue::from_str(&format!("t={now_ms}")) {
        headers.insert(X_REQUEST_START, value);
    }
    if !headers.contains_key(&X_AMZN_TRACE_ID) {
        if let Some(value) = invocation
            .trace_id
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(X_AMZN_TRACE_ID, value);
        }
    }
    if let Some(context) = event.get("requestContext").filter(|c| !c.is_null()) {
        let json = serde_json::to_string(context).unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&ascii_json(&json)) {
            headers.insert(X_AMZN_REQUEST_CONTEXT, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&ascii_json(&invocation.lambda_context_json())) {
        headers.insert(X_AMZN_LAMBDA_CONTEXT, value);
    }
}

/// Compact JSON with every non-ASCII character as a `\u` escape: header bytes past ASCII reach Rack
/// as binary strings, while the escaped form is the same JSON in any encoding. Outside strings JSON
/// is pure ASCII, so escaping every such character in place is safe.
fn ascii_json(json: &str) -> Cow<'_, str> {
    if json.is_ascii() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    Cow::Owned(out)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
