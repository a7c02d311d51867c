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
//!
//! Headers. `Host` is the event's, else `requestContext.domainName`, else `localhost` (ALB health
//! checks send only a `User-Agent`, and HTTP/1.1 requires a `Host`). The headers megamode owns
//! (`X-Forwarded-Prefix`, `X-Request-Start`, `X-Amzn-Trace-Id`, `X-Amzn-Request-Context`,
//! `X-Amzn-Lambda-Context`, `X-Amz-Tenant-Id`) are never the client's: `X-Amzn-Trace-Id` is
//! Lambda's trace id, or absent when the invocation has none. Names are compared as the app's
//! server reads them, `_` and `-` alike (`X_Forwarded_Prefix` is `X-Forwarded-Prefix` to a Rack
//! app), and of two names the app would read as one, the one with `_` is dropped.
//!
//! Types. Each field read from the event must have the type AWS sends, or be absent or null: a
//! wrong one is an `Event` error naming the field ("rawPath must be a string, got 123"), never a
//! silent default. Header and query values may also be numbers or booleans (their JSON text).
//!
//! Limits. The request must fit what the app's server takes, or megamode answers for it instead of
//! the server's own obscure failure (puma closes with an empty 400): a URI past puma's limits is a
//! 414, headers past them a 431, both naming what is too long. `X-Amzn-Request-Context` is capped
//! at [`MAX_REQUEST_CONTEXT`] bytes: past it the authorizer part is left out, then the whole header.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::{body, json_type, object_at, str_at, value_at, wrong_type, Source};
use crate::error::{Error, ErrorKind, Result};
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

/// Headers only megamode may set: a client's copy would let it forge what the app trusts. The
/// lifecycle ones megamode sends only on its own requests to run the app's SnapStart hooks
/// (`lifecycle`), never with an event: a client's copy is removed, so no request from outside can
/// ask the app to run them.
const OWNED: [&str; 8] = [
    "x-forwarded-prefix",
    "x-amzn-request-context",
    "x-amzn-lambda-context",
    "x-request-start",
    "x-amzn-trace-id",
    "x-amz-tenant-id",
    crate::lifecycle::PHASE_HEADER,
    crate::lifecycle::TOKEN_HEADER,
];

// Limits. puma is the default server, and its parser's limits (the same in puma 5 and 6, set when
// its extension is compiled: `PUMA_REQUEST_PATH_MAX_LENGTH`, `PUMA_QUERY_STRING_MAX_LENGTH`,
// `PUMA_REQUEST_URI_MAX_LENGTH`, and fixed ones for header fields) are where a request would fail
// with puma's empty 400 or a closed connection; megamode answers first, saying what is too long.
// Real gateways pass less: API Gateway 10 KB of request line and headers, ALB a 16 KB request line
// and 64 KB of headers; larger requests come from direct invokes and hand-written events.

/// The path as the app's server reads it (after the prefix moved to `X-Forwarded-Prefix`).
pub const MAX_PATH: usize = 8 * 1024;
/// The query string, without its `?`.
pub const MAX_QUERY: usize = 10 * 1024;
/// The request target: path, `?` and query.
pub const MAX_URI: usize = 12 * 1024;
/// One header name.
pub const MAX_HEADER_NAME: usize = 256;
/// One header value.
pub const MAX_HEADER_VALUE: usize = 80 * 1024;
/// The request head as sent to the app: request line, header lines, and the blank line.
pub const MAX_HEAD: usize = 112 * 1024;
/// Header lines, counting each value of a repeated header. puma sets no count; this bound is
/// megamode's own, far above what browsers send (a few dozen), and keeps the work per event small.
pub const MAX_HEADER_COUNT: usize = 1000;
/// `X-Amzn-Request-Context`: the request context as JSON. An authorizer's context (JWT claims, a
/// Lambda authorizer's map) is the one part that can grow large; this cap keeps the header well
/// inside the head limit, next to the largest headers a gateway passes.
pub const MAX_REQUEST_CONTEXT: usize = 8 * 1024;

/// A line for the log about something the translation left out; the engine writes it. Carried in
/// the request's extensions so the request itself stays what the app receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice(pub String);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
const X_AMZN_REQUEST_CONTEXT: HeaderName = HeaderName::from_static("x-amzn-request-context");
const X_AMZN_LAMBDA_CONTEXT: HeaderName = HeaderName::from_static("x-amzn-lambda-context");
const X_AMZ_TENANT_ID: HeaderName = HeaderName::from_static("x-amz-tenant-id");

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
    // Not used past classification, but a wrong type there is the same mistake as anywhere else.
    str_at(event, &["version"])?;
    let method = method(event, source)?;
    let body = body::request_body(event)?;
    let (prefix, path) = split_path(event, source, opts.base_path)?;
    let query = query(event, source)?;
    check_uri(&path, &query)?;
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
    if let Some(cookie) = v2_cookies(event)? {
        headers.insert(header::COOKIE, cookie);
    }
    set_defaults(&mut headers, event, source)?;
    let notice = set_owned(&mut headers, event, &prefix, opts.invocation)?;
    drop_underscore_twins(&mut headers);
    if !body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    check_head(&method, &uri, &headers)?;

    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    if let Some(notice) = notice {
        request.extensions_mut().insert(notice);
    }
    Ok(request)
}

/// A 414 when the path, the query or both together are longer than the app's server reads.
fn check_uri(path: &str, query: &str) -> Result<()> {
    let uri = path.len() + if query.is_empty() { 0 } else { 1 + query.len() };
    let (what, length, limit) = if path.len() > MAX_PATH {
        ("path", path.len(), MAX_PATH)
    } else if query.len() > MAX_QUERY {
        ("query string", query.len(), MAX_QUERY)
    } else if uri > MAX_URI {
        ("URI (path and query string)", uri, MAX_URI)
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::UriTooLong,
        format!(
            "the request's {what} is {length} bytes, longer than the {limit} bytes the app's \
             server reads (puma's limit): {}...",
            truncate(if what == "query string" { query } else { path }, 100)
        ),
    ))
}

/// A 431 when one header, or the request head as a whole, is larger than the app's server reads
/// (the head counted as it goes on the wire: `METHOD target HTTP/1.1`, `name: value` lines, CRLFs).
fn check_head(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<()> {
    let target = uri.path_and_query().map_or(1, |t| t.as_str().len());
    let mut head = method.as_str().len() + 1 + target + " HTTP/1.1\r\n\r\n".len();
    let mut largest: Option<(&HeaderName, usize)> = None;
    for (name, value) in headers {
        if value.len() > MAX_HEADER_VALUE {
            return Err(Error::new(
                ErrorKind::HeadersTooLarge,
                format!(
                    "the request header {name} is {} bytes, larger than the {MAX_HEADER_VALUE} \
                     bytes the app's server reads in one header (puma's limit)",
                    value.len()
                ),
            ));
        }
        let line = name.as_str().len() + 2 + value.len() + 2;
        head += line;
        if largest.is_none_or(|(_, size)| line > size) {
            largest = Some((name, line));
        }
    }
    if head <= MAX_HEAD {
        return Ok(());
    }
    let (name, size) = largest.expect("a head past the limit has headers");
    Err(Error::new(
        ErrorKind::HeadersTooLarge,
        format!(
            "the request's headers are {head} bytes with the request line, more than the \
             {MAX_HEAD} bytes the app's server reads (puma's limit); the largest is {name} \
             ({size} bytes)"
        ),
    ))
}

fn too_many_headers(count: usize) -> Error {
    Error::new(
        ErrorKind::HeadersTooLarge,
        format!(
            "the request has {count} headers or more, more than the {MAX_HEADER_COUNT} megamode \
             forwards"
        ),
    )
}

fn method(event: &Map<String, Value>, source: Source) -> Result<Method> {
    let (path, field): (&[&str], &str) = match source {
        Source::HttpApiV2 | Source::FunctionUrl => (
            &["requestContext", "http", "method"],
            "requestContext.http.method",
        ),
        Source::RestApi | Source::HttpApiV1 | Source::Alb { .. } => (&["httpMethod"], "httpMethod"),
    };
    let Some(name) = str_at(event, path)?.filter(|m| !m.is_empty()) else {
        return Err(Error::event(format!(
            "the {} event has no {field}",
            source.name()
        )));
    };
    // Methods are case-sensitive, but every gateway sends them upper-case; a hand-written `get`
    // means GET, not an extension method no app routes.
    let upper: Cow<str> = if name.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(name.to_ascii_uppercase())
    } else {
        Cow::Borrowed(name)
    };
    Method::from_bytes(upper.as_bytes()).map_err(|_| {
        Error::event(format!(
            "the {} event has an invalid {field}: {:?}",
            source.name(),
            truncate(name, 100)
        ))
    })
}

/// (prefix, path), both ready for the request: percent-encoded where needed, path never empty.
fn split_path(
    event: &Map<String, Value>,
    source: Source,
    base_path: Option<&str>,
) -> Result<(String, String)> {
    let field = match source {
        Source::HttpApiV2 | Source::FunctionUrl => "rawPath",
        Source::RestApi | Source::HttpApiV1 | Source::Alb { .. } => "path",
    };
    let raw = str_at(event, &[field])?.unwrap_or("");
    let path: Cow<str> = if raw.starts_with('/') {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(format!("/{raw}"))
    };
    let context_path = str_at(event, &["requestContext", "path"])?;
    let stage = str_at(event, &["requestContext", "stage"])?;
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
    Ok((full_prefix, escape(rest, Part::Path)))
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

fn query(event: &Map<String, Value>, source: Source) -> Result<String> {
    match source {
        Source::HttpApiV2 | Source::FunctionUrl => Ok(escape(
            str_at(event, &["rawQueryString"])?.unwrap_or(""),
            Part::Query,
        )),
        Source::RestApi | Source::HttpApiV1 => {
            parameters(event, |s| utf8_percent_encode(s, COMPONENT).to_string())
        }
        Source::Alb { .. } => parameters(event, |s| escape(s, Part::Query)),
    }
}

/// `multiValueQueryStringParameters` when it has any, else `queryStringParameters`, in the
/// event's order, each key and value passed through `encode`.
fn parameters(event: &Map<String, Value>, encode: impl Fn(&str) -> String) -> Result<String> {
    const MULTI: &str = "multiValueQueryStringParameters";
    const SINGLE: &str = "queryStringParameters";
    let multi = object_at(event, &[MULTI])?;
    let single = object_at(event, &[SINGLE])?;
    let (field, params) = match (multi, single) {
        (Some(multi), _) if !multi.is_empty() => (MULTI, multi),
        (_, Some(single)) if !single.is_empty() => (SINGLE, single),
        _ => return Ok(String::new()),
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
                for (i, value) in values.iter().enumerate() {
                    push(key, scalar(value, || entry(field, key, Some(i)))?);
                }
            }
            value => push(key, scalar(value, || entry(field, key, None))?),
        }
    }
    Ok(out)
}

/// A JSON scalar as text: a string, or a number or boolean as JSON writes it; null is "no value".
/// An array or an object is an `Event` error naming `field`.
fn scalar<'v>(value: &'v Value, field: impl FnOnce() -> String) -> Result<Option<Cow<'v, str>>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Cow::Borrowed(s))),
        Value::Bool(_) | Value::Number(_) => Ok(Some(Cow::Owned(value.to_string()))),
        Value::Array(_) | Value::Object(_) => Err(wrong_type(&field(), "a string", value)),
    }
}

/// `headers["Accept"]`, `multiValueHeaders["Accept"][1]`: an entry of one of the event's maps.
fn entry(field: &str, key: &str, index: Option<usize>) -> String {
    let key = truncate(key, 100);
    match index {
        Some(i) => format!("{field}[{key:?}][{i}]"),
        None => format!("{field}[{key:?}]"),
    }
}

/// `headers` and `multiValueHeaders` merged (the multi-value list wins a name both have), with
/// hop-by-hop and megamode-owned headers dropped, and repeated `Cookie` headers joined into one
/// (RFC 6265 allows only one, and Rack splits a repeated header on commas, not semicolons).
///
/// A name or value HTTP does not allow (CR, LF, NUL, ...) is a `BadRequest`: forwarding it could
/// split the request in two, and dropping it silently would hide what the client sent.
fn event_headers(event: &Map<String, Value>) -> Result<HeaderMap> {
    const MULTI: &str = "multiValueHeaders";
    const SINGLE: &str = "headers";
    let multi = object_at(event, &[MULTI])?;
    let single = object_at(event, &[SINGLE])?;
    // Bounds the work below (each single name is looked up among the multi ones).
    let names = multi.map_or(0, Map::len).max(single.map_or(0, Map::len));
    if names > MAX_HEADER_COUNT {
        return Err(too_many_headers(names));
    }
    let mut headers = HeaderMap::new();
    let mut from_multi: Vec<HeaderName> = Vec::new();
    if let Some(multi) = multi {
        for (key, values) in multi {
            let name = header_name(key)?;
            match values {
                Value::Array(values) => {
                    for (i, value) in values.iter().enumerate() {
                        let field = || entry(MULTI, key, Some(i));
                        if let Some(value) = header_value(&name, value, field)? {
                            append(&mut headers, &name, value)?;
                        }
                    }
                }
                value => {
                    if let Some(value) = header_value(&name, value, || entry(MULTI, key, None))? {
                        append(&mut headers, &name, value)?;
                    }
                }
            }
            from_multi.push(name);
        }
    }
    if let Some(single) = single {
        for (key, value) in single {
            let name = header_name(key)?;
            if from_multi.contains(&name) {
                continue;
            }
            if let Some(value) = header_value(&name, value, || entry(SINGLE, key, None))? {
                append(&mut headers, &name, value)?;
            }
        }
    }
    // Each compared by its env key, so that no spelling of one gets through.
    let mut dropped: HashSet<String> = hop_by_hop(&headers)
        .iter()
        .map(|name| env_key(name.as_str()))
        .collect();
    dropped.extend(OWNED.iter().map(|name| env_key(name)));
    // Ours is computed from the decoded body.
    dropped.insert(env_key(header::CONTENT_LENGTH.as_str()));
    // The whole body is already here: an app answering `100 Continue` would only add a round trip.
    dropped.insert(env_key(header::EXPECT.as_str()));
    remove_where(&mut headers, |name| {
        dropped.contains(&env_key(name.as_str()))
    });
    join_cookies(&mut headers);
    Ok(headers)
}

/// A header name as the app's server keys it. A Rack server makes each name an env key by
/// upper-casing it and turning `-` into `_` (`X-Forwarded-Prefix` is `HTTP_X_FORWARDED_PREFIX`),
/// so `X_Forwarded_Prefix` is the same header to the app: puma, like the others, files it under
/// that key whenever no `-` spelling came with it. So every name megamode drops or owns is
/// compared by this key (lower case, `_` as `-`), never by spelling: otherwise a client's
/// `X_Forwarded_Prefix` would reach the app whenever megamode sends no prefix of its own.
fn env_key(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Removes every header whose name `drop` picks (a `HeaderMap` has no `retain`).
fn remove_where(headers: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| drop(n)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// When names of the request's headers share an env key (`X_Forwarded_For` and `X-Forwarded-For`),
/// those with a `_` are dropped. The app's server would otherwise keep one of them (which one
/// depends on the server and on the order) or join them: a client could overwrite with
/// `X_Forwarded_For` a value the gateway or megamode set (`X-Forwarded-For`, `X-Forwarded-Proto`,
/// the default `X-Request-Id`). Gateways, proxies and browsers name headers with `-`, so a `_`
/// spelling is the client's own. puma 6.4.3 and later do the same (CVE-2024-45614); doing it
/// here keeps every server and every puma version safe. Dropped rather than refused with a 400,
/// as puma does: nothing the app could trust is lost. A `_` name alone stays: the app reads it
/// as the client could have sent it with `-` (the owned ones are already gone). Runs last, after
/// megamode's own headers are set.
fn drop_underscore_twins(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| name.as_str().contains('_')) {
        return;
    }
    let mut names_per_key: HashMap<String, usize> = HashMap::new();
    for name in headers.keys() {
        *names_per_key.entry(env_key(name.as_str())).or_default() += 1;
    }
    remove_where(headers, |name| {
        name.as_str().contains('_') && names_per_key[&env_key(name.as_str())] > 1
    });
}

/// Appends within [`MAX_HEADER_COUNT`] (which also keeps the map far from its own hard limit).
fn append(headers: &mut HeaderMap, name: &HeaderName, value: HeaderValue) -> Result<()> {
    if headers.len() >= MAX_HEADER_COUNT {
        return Err(too_many_headers(headers.len() + 1));
    }
    headers.append(name, value);
    Ok(())
}

fn header_name(name: &str) -> Result<HeaderName> {
    if name.len() > MAX_HEADER_NAME {
        return Err(Error::new(
            ErrorKind::HeadersTooLarge,
            format!(
                "the request header name {:?}... is {} bytes, longer than the {MAX_HEADER_NAME} \
                 bytes the app's server reads (puma's limit)",
                truncate(name, 100),
                name.len()
            ),
        ));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::bad_request(format!(
            "the request header name {:?} is not allowed in HTTP",
            truncate(name, 100)
        ))
    })
}

/// The value as a header value; `None` for null. An array or an object is an `Event` error naming
/// `field`; a character HTTP does not allow is a `BadRequest`.
fn header_value(
    name: &HeaderName,
    value: &Value,
    field: impl FnOnce() -> String,
) -> Result<Option<HeaderValue>> {
    let Some(text) = scalar(value, field)? else {
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

/// Payload 2.0 moves cookies out of the headers into a `cookies` array: joined into one `Cookie`
/// header. An entry with CR, LF or another character HTTP does not allow in a header is the same
/// `BadRequest` as such a header (dropping it, or all of them, would hide what the client sent).
fn v2_cookies(event: &Map<String, Value>) -> Result<Option<HeaderValue>> {
    let cookies = match value_at(event, &["cookies"])? {
        None => return Ok(None),
        Some(Value::Array(cookies)) => cookies,
        Some(other) => return Err(wrong_type("cookies", "a list of strings", other)),
    };
    let mut joined: Vec<u8> = Vec::new();
    for (i, cookie) in cookies.iter().enumerate() {
        let cookie = match cookie {
            Value::Null => continue,
            Value::String(cookie) => cookie,
            other => return Err(wrong_type(&format!("cookies[{i}]"), "a string", other)),
        };
        if !cookie.bytes().all(header_value_byte) {
            return Err(Error::bad_request(format!(
                "the cookie cookies[{i}] has a character HTTP does not allow in a header \
                 (CR, LF, NUL or another control character): {:?}",
                truncate(cookie, 100)
            )));
        }
        if cookie.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(cookie.as_bytes());
    }
    if joined.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_maybe_shared(Bytes::from(joined))
        .map(Some)
        .map_err(|_| Error::bad_request("the cookies make an invalid Cookie header"))
}

/// A byte HTTP allows in a header value: tab, visible ASCII, space, and bytes past ASCII.
fn header_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Host and X-Forwarded-* come from the gateway; these fill in what an event left out. Every
/// request gets a `Host`: HTTP/1.1 requires one, and Rails' host authorization answers a request
/// without one with a 403.
fn set_defaults(headers: &mut HeaderMap, event: &Map<String, Value>, source: Source) -> Result<()> {
    let domain = str_at(event, &["requestContext", "domainName"])?;
    if !headers.contains_key(header::HOST) {
        let host = domain
            .filter(|d| !d.is_empty())
            .and_then(|d| HeaderValue::from_str(d).ok())
            .unwrap_or(HeaderValue::from_static("localhost"));
        headers.insert(header::HOST, host);
    }
    let source_ip = match source {
        Source::HttpApiV2 | Source::FunctionUrl => {
            str_at(event, &["requestContext", "http", "sourceIp"])?
        }
        Source::RestApi | Source::HttpApiV1 => {
            str_at(event, &["requestContext", "identity", "sourceIp"])?
        }
        Source::Alb { .. } => None,
    };
    let mut default = |name: HeaderName, value: Option<&str>| {
        if headers.contains_key(&name) {
            return;
        }
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    default(X_FORWARDED_PROTO, Some("https"));
    default(X_FORWARDED_PORT, Some("443"));
    default(X_FORWARDED_FOR, source_ip);
    Ok(())
}

/// The headers megamode owns (the client's copies are already gone), and a notice for the log when
/// `X-Amzn-Request-Context` had to leave something out.
fn set_owned(
    headers: &mut HeaderMap,
    event: &Map<String, Value>,
    prefix: &str,
    invocation: &Invocation,
) -> Result<Option<Notice>> {
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
    // Lambda's, never the client's (removed with the other owned headers): a client could
    // otherwise choose the trace its request is recorded under.
    if let Some(value) = invocation
        .trace_id
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(X_AMZN_TRACE_ID, value);
    }
    // A multi-tenant function's tenant, as the Runtime API names it: an app that partitions data
    // by tenant must be able to trust it, so a client's copy never gets through.
    if let Some(value) = invocation
        .tenant_id
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(X_AMZ_TENANT_ID, value);
    }
    let mut notice = None;
    if let Some(context) = object_at(event, &["requestContext"])? {
        let (value, left_out) = request_context(context);
        if let Some(value) = value {
            headers.insert(X_AMZN_REQUEST_CONTEXT, value);
        }
        notice = left_out;
    }
    if let Ok(value) = HeaderValue::from_str(&ascii_json(&invocation.lambda_context_json())) {
        headers.insert(X_AMZN_LAMBDA_CONTEXT, value);
    }
    Ok(notice)
}

/// `X-Amzn-Request-Context`: the request context as compact ASCII JSON, at most
/// [`MAX_REQUEST_CONTEXT`] bytes. Past that, `authorizer` becomes `{"omitted_by_megamode": why}`;
/// when even that is too long, there is no header. Either way, a notice says so.
fn request_context(context: &Map<String, Value>) -> (Option<HeaderValue>, Option<Notice>) {
    let json = serde_json::to_string(context).unwrap_or_default();
    let json = ascii_json(&json);
    if json.len() <= MAX_REQUEST_CONTEXT {
        return (HeaderValue::from_str(&json).ok(), None);
    }
    let size = json.len();
    if context.contains_key("authorizer") {
        let why = format!(
            "the request context is {size} bytes of JSON with the authorizer's, over the \
             {MAX_REQUEST_CONTEXT} bytes of X-Amzn-Request-Context"
        );
        let mut slim = context.clone();
        slim.insert(
            "authorizer".into(),
            serde_json::json!({ "omitted_by_megamode": why }),
        );
        let json = serde_json::to_string(&slim).unwrap_or_default();
        let json = ascii_json(&json);
        if json.len() <= MAX_REQUEST_CONTEXT {
            let notice = Notice(format!(
                "X-Amzn-Request-Context: the authorizer is left out: {why}"
            ));
            return (HeaderValue::from_str(&json).ok(), Some(notice));
        }
    }
    let notice = Notice(format!(
        "X-Amzn-Request-Context is left out: the request context is {size} bytes of JSON, over \
         its {MAX_REQUEST_CONTEXT} bytes"
    ));
    (None, Some(notice))
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
