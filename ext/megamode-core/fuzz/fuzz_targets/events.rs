//! Any event JSON, through classify -> translate -> render, must never panic: a panic in the core
//! crosses into Ruby as an unrescuable `fatal` and takes the Lambda invocation down with it.
//!
//! Input that parses as JSON is used as the event as it is (the seeds in `seeds/events` are real
//! event shapes, and their mutations mostly stay JSON). Anything else drives a generator that
//! builds an event from the keys the sources use, with values of the right type most of the time,
//! so the fuzzer spends its time past the JSON parser and inside the translation.

#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use http::{HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use megamode_core::events::{self, EventKind, Options, Source};
use megamode_core::invocation::remaining_from_millis;
use megamode_core::Invocation;
use serde_json::{Map, Number, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<Value>(data) {
        let mut u = Unstructured::new(&[]);
        let _ = exercise(&event, &mut u);
        return;
    }
    let mut u = Unstructured::new(data);
    if let Ok(event) = event(&mut u) {
        let _ = exercise(&event, &mut u);
    }
});

const ALL_SOURCES: [Source; 6] = [
    Source::RestApi,
    Source::HttpApiV1,
    Source::HttpApiV2,
    Source::FunctionUrl,
    Source::Alb { multi_value: false },
    Source::Alb { multi_value: true },
];

/// The per-request path as the handler runs it, with the app echoing the request back.
fn exercise(event: &Value, u: &mut Unstructured) -> Result<()> {
    let Ok(EventKind::Http(source)) = events::classify(event) else {
        return Ok(());
    };
    let base_path = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some("/api".to_owned()),
        2 => Some("/v1/app".to_owned()),
        _ => Some(text(u)?),
    };
    // Lambda's longest timeout is 15 minutes; now and then any float a context could answer,
    // through the same conversion as the handler's (the `remaining` target covers it alone).
    let remaining = if u.ratio(1, 8)? {
        remaining_from_millis(f64::from_bits(u.arbitrary()?)).unwrap_or(Duration::ZERO)
    } else {
        Duration::from_millis(u.int_in_range(0..=900_000)?)
    };
    let mut invocation = Invocation::new(text(u)?, remaining);
    if u.arbitrary()? {
        invocation.trace_id = Some(text(u)?);
    }
    let options = Options {
        base_path: base_path.as_deref(),
        invocation: &invocation,
    };
    let Ok(request) = events::translate(event, source, &options) else {
        return Ok(());
    };

    // An echoing app: whatever the translation let through goes back out, so header values and
    // bodies the event could smuggle in reach `render` too.
    let (parts, body) = request.into_parts();
    let status = StatusCode::from_u16(u.int_in_range(100..=999)?).unwrap_or(StatusCode::OK);
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = parts.headers;
    for _ in 0..u.int_in_range(0..=4)? {
        let name: Vec<u8> = u.arbitrary()?;
        let value: Vec<u8> = u.arbitrary()?;
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    let (head, ()) = response.into_parts();
    for target in ALL_SOURCES {
        let rendered = events::render(target, &head, &body);
        // The handler hands the result to the runtime as JSON: it must serialise.
        serde_json::to_string(&rendered).expect("a rendered response serialises");
    }
    let message = text(u)?;
    let error = events::error_response(source, status, &message);
    serde_json::to_string(&error).expect("an error response serialises");
    Ok(())
}

/// Strings that steer the translation into its branches: separators, stages, encodings.
const FRAGMENTS: &[&str] = &[
    "",
    "/",
    "//",
    "%",
    "%2F",
    "%25",
    "%zz",
    "?",
    "#",
    "&",
    "=",
    ";",
    ",",
    " ",
    "+",
    "\u{0}",
    "\r\n",
    "é",
    "\u{1F600}",
    "dev",
    "/dev",
    "/dev/x",
    "$default",
    "prod",
    "/api",
    "GET",
    "get",
    "POST",
    "1.0",
    "2.0",
    "abc.lambda-url.us-east-1.on.aws",
    "abc.execute-api.us-east-1.amazonaws.com",
    "cookie",
    "Cookie",
    "set-cookie",
    "host",
    "connection",
    "content-length",
    "x-forwarded-prefix",
    "x-request-id",
    "expect",
    "aGk=",
    "aGk",
    "====",
    "serverless-plugin-warmup",
];

fn text(u: &mut Unstructured) -> Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=4)? {
        if u.ratio(2, 3)? {
            out.push_str(u.choose(FRAGMENTS)?);
        } else {
            out.push_str(u.arbitrary::<&str>()?);
        }
    }
    Ok(out)
}

/// Any JSON value, shallow.
fn any(u: &mut Unstructured, depth: u32) -> Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        3 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 if depth > 0 => Value::Array(
            (0..u.int_in_range(0..=3)?)
                .map(|_| any(u, depth - 1))
                .collect::<Result<_>>()?,
        ),
        5 if depth > 0 => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                map.insert(text(u)?, any(u, depth - 1)?);
            }
            Value::Object(map)
        }
        _ => Value::String(text(u)?),
    })
}

/// `good` most of the time, any JSON otherwise: wrong types are what hand-written events have.
fn mostly(
    u: &mut Unstructured,
    good: impl FnOnce(&mut Unstructured) -> Result<Value>,
) -> Result<Value> {
    if u.ratio(7, 8)? {
        good(u)
    } else {
        any(u, 2)
    }
}

fn string(u: &mut Unstructured) -> Result<Value> {
    Ok(Value::String(text(u)?))
}

fn string_map(u: &mut Unstructured) -> Result<Value> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let value = mostly(u, string)?;
        map.insert(text(u)?, value);
    }
    Ok(Value::Object(map))
}

fn list_map(u: &mut Unstructured) -> Result<Value> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let value = mostly(u, |u| {
            Ok(Value::Array(
                (0..u.int_in_range(0..=3)?)
                    .map(|_| mostly(u, string))
                    .collect::<Result<_>>()?,
            ))
        })?;
        map.insert(text(u)?, value);
    }
    Ok(Value::Object(map))
}

fn request_context(u: &mut Unstructured) -> Result<Value> {
    let mut map = Map::new();
    if u.arbitrary()? {
        map.insert("elb".into(), mostly(u, |u| any(u, 1))?);
    }
    if u.arbitrary()? {
        let http = mostly(u, |u| {
            let mut http = Map::new();
            http.insert("method".into(), mostly(u, string)?);
            http.insert("path".into(), mostly(u, string)?);
            http.insert("sourceIp".into(), mostly(u, string)?);
            Ok(Value::Object(http))
        })?;
        map.insert("http".into(), http);
    }
    for key in ["domainName", "stage", "path", "requestId"] {
        if u.arbitrary()? {
            map.insert(key.into(), mostly(u, string)?);
        }
    }
    if u.arbitrary()? {
        let identity = mostly(u, |u| {
            let mut identity = Map::new();
            identity.insert("sourceIp".into(), mostly(u, string)?);
            Ok(Value::Object(identity))
        })?;
        map.insert("identity".into(), identity);
    }
    Ok(Value::Object(map))
}

/// An event built from the keys the sources use, each present or not, in a random order.
fn event(u: &mut Unstructured) -> Result<Value> {
    type Field = fn(&mut Unstructured) -> Result<Value>;
    let fields: [(&str, Field); 17] = [
        ("version", string),
        ("httpMethod", string),
        ("path", string),
        ("rawPath", string),
        ("rawQueryString", string),
        ("headers", string_map),
        ("multiValueHeaders", list_map),
        ("queryStringParameters", string_map),
        ("multiValueQueryStringParameters", list_map),
        ("cookies", |u| {
            Ok(Value::Array(
                (0..u.int_in_range(0..=3)?)
                    .map(|_| mostly(u, string))
                    .collect::<Result<_>>()?,
            ))
        }),
        ("body", string),
        ("isBase64Encoded", |u| Ok(Value::Bool(u.arbitrary()?))),
        ("requestContext", request_context),
        ("_prewarm", |u| any(u, 1)),
        ("source", string),
        ("resource", string),
        ("routeKey", string),
    ];
    let mut map = Map::new();
    for (key, good) in fields {
        // Prewarm markers would end most runs at classify.
        let present = if key == "_prewarm" || key == "source" {
            u.ratio(1, 16)?
        } else {
            u.ratio(2, 3)?
        };
        if present {
            let value = mostly(u, good)?;
            map.insert(key.into(), value);
        }
    }
    Ok(Value::Object(map))
}
