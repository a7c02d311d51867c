//! Properties of the event <-> HTTP translation, for every source: whatever a client sends reaches
//! the app unchanged (as each source's encoding rules allow), and whatever the app answers comes
//! back in the source's shape decodable to the same status, headers, cookies and bytes.
//!
//! Case counts are kept low so the file runs in a few seconds in a debug build; raise
//! `PROPTEST_CASES` for a longer hunt.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request};
use megamode_core::events::{self, EventKind, Options, Source};
use megamode_core::Invocation;
use percent_encoding::percent_decode;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Generators shared by both directions
// ---------------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    }
}

/// Names megamode drops or rewrites on the way in or out; generated headers avoid them so that
/// "unchanged" is the whole expectation. Their handling is covered by the unit tests, and the
/// forged-prefix property below.
const NOT_PASSED_THROUGH: [&str; 17] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "x-forwarded-prefix",
    "x-amzn-request-context",
    "x-amzn-lambda-context",
    "x-request-start",
    "x-amzn-trace-id",
    "content-length",
    "expect",
    "cookie",
    "set-cookie",
];

/// Lower-case header names, unique, in a random order: common real ones and `x-` extensions.
fn header_names(common: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    let name = prop_oneof![
        select(common).prop_map(str::to_owned),
        "x-[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}",
    ];
    prop::collection::vec(name, 0..max).prop_map(|names| {
        let mut unique: Vec<String> = Vec::new();
        for name in names {
            if !unique.contains(&name) && !NOT_PASSED_THROUGH.contains(&name.as_str()) {
                unique.push(name);
            }
        }
        unique
    })
}

/// A header value as gateways deliver it: no surrounding whitespace, mostly ASCII, sometimes
/// UTF-8 text (file names, user names).
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[!-~]([ -~]{0,30}[!-~])?",
        1 => "[!-~\u{a0}-\u{10ffff}]{1,12}",
        1 => Just(String::new()),
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => "\\PC{0,64}".prop_map(String::into_bytes),
        3 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "accept-encoding",
    "authorization",
    "content-type",
    "user-agent",
    "referer",
    "origin",
    "if-none-match",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-request-id",
    "x-csrf-token",
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "PROPFIND",
];

fn method() -> impl Strategy<Value = String> {
    select(METHODS).prop_map(str::to_owned)
}

/// A path as a client puts it on the wire: segments of URI-safe characters and percent-encoded
/// bytes (either hex case), empty segments and a trailing slash included.
fn encoded_path() -> impl Strategy<Value = String> {
    let segment = "([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,10}";
    (prop::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segments, trailing)| {
        let mut path = String::new();
        for segment in &segments {
            path.push('/');
            path.push_str(segment);
        }
        if trailing || path.is_empty() {
            path.push('/');
        }
        path
    })
}

/// A path as HTTP APIs deliver it, percent-decoded: any characters but `/` in a segment. A `%`
/// followed by two hex digits is left out: once decoded it cannot be told from an encoded byte
/// (a documented loss).
fn decoded_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[ -.0-~]{0,10}",
        "[^/]{0,6}",
        "[a-z]{1,4}[ é✓\u{1F600}?#%\"<>{}|\\\\^`]{1,3}[a-z]{0,4}",
    ];
    prop::collection::vec(segment, 0..5)
        .prop_map(|segments| {
            let path: String = segments.iter().map(|s| format!("/{s}")).collect();
            if path.is_empty() {
                "/".to_owned()
            } else {
                path
            }
        })
        .prop_filter("a decoded %XX is ambiguous", |p| !has_percent_hex(p))
}

fn has_percent_hex(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

#[derive(Clone, Debug)]
enum PathForm {
    /// As the client encoded it: must reach the app byte for byte.
    Encoded(String),
    /// Decoded by the gateway: must reach the app as a valid path that decodes back to it.
    Decoded(String),
}

impl PathForm {
    fn text(&self) -> &str {
        match self {
            PathForm::Encoded(p) | PathForm::Decoded(p) => p,
        }
    }
}

fn path_form() -> impl Strategy<Value = PathForm> {
    prop_oneof![
        encoded_path().prop_map(PathForm::Encoded),
        decoded_path().prop_map(PathForm::Decoded),
    ]
}

/// Query parameters as API Gateway hands them to REST and HTTP 1.0 events: decoded, so any text.
fn decoded_params() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let key = prop_oneof!["[a-z_]{1,6}(\\[\\])?", "\\PC{1,6}", ".{1,4}"];
    let value = prop_oneof![
        "[a-zA-Z0-9]{0,6}",
        "[ &=+%/?#;,]{1,4}",
        "\\PC{0,8}",
        ".{0,4}"
    ];
    params(key, value)
}

/// Query parameters as ALB hands them over: not decoded, so what the client sent: query-safe
/// characters and percent-encoded bytes, without the `&` and `=` that delimit them.
fn raw_params() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let raw = "([A-Za-z0-9._~!$'()*+,;:@/?-]|%[0-9A-Fa-f]{2}){0,8}";
    params(
        raw.prop_filter("keys are not empty", |k: &String| !k.is_empty()),
        raw,
    )
}

/// Unique keys in order, each with one or more values.
fn params(
    key: impl Strategy<Value = String>,
    value: impl Strategy<Value = String> + Clone,
) -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    prop::collection::vec((key, prop::collection::vec(value, 1..4)), 0..5).prop_map(|pairs| {
        let mut unique: Vec<(String, Vec<String>)> = Vec::new();
        for (key, values) in pairs {
            if !unique.iter().any(|(k, _)| *k == key) {
                unique.push((key, values));
            }
        }
        unique
    })
}

fn flatten(params: &[(String, Vec<String>)]) -> Vec<(String, String)> {
    params
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect()
}

fn raw_query() -> impl Strategy<Value = String> {
    let part = "([A-Za-z0-9._~!$'()*+,;:@/?-]|%[0-9A-Fa-f]{2}){0,8}";
    let pair = prop_oneof![
        4 => (part, part).prop_map(|(k, v)| format!("{k}={v}")),
        1 => part.prop_map(|k| k.to_string()),
    ];
    prop::collection::vec(pair, 0..5).prop_map(|pairs| pairs.join("&"))
}

#[derive(Clone, Debug)]
struct Body {
    bytes: Vec<u8>,
    /// Sent as base64 even when the bytes are text, as API Gateway does for binary media types.
    force_base64: bool,
    /// Base64 without `=` padding, as some hand-written events have it.
    unpadded: bool,
    /// `body` left out of the event altogether.
    absent: bool,
}

fn body() -> impl Strategy<Value = Body> {
    (body_bytes(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(bytes, force_base64, unpadded, absent)| Body {
            absent: absent && bytes.is_empty(),
            bytes,
            force_base64,
            unpadded,
        },
    )
}

impl Body {
    fn insert_into(&self, event: &mut Map<String, Value>) {
        if self.absent {
            return;
        }
        let (text, base64) = match std::str::from_utf8(&self.bytes) {
            Ok(text) if !self.force_base64 => (text.to_owned(), false),
            _ if self.unpadded => (STANDARD_NO_PAD.encode(&self.bytes), true),
            _ => (STANDARD.encode(&self.bytes), true),
        };
        event.insert("body".into(), text.into());
        event.insert("isBase64Encoded".into(), base64.into());
    }
}

/// One request's parts, before a source's event shape is put around them.
#[derive(Clone, Debug)]
struct Client {
    method: String,
    /// Lower-case name, every value the client sent for it, in order.
    headers: Vec<(String, Vec<String>)>,
    /// Whether the event spells names in Title-Case, as REST APIs and ALB pass them through.
    title_case: bool,
    /// Headers megamode owns that the client sent to forge what the app trusts: a
    /// `X-Forwarded-Prefix` (its idea of its mount point) and a `X-Amzn-Trace-Id`.
    forged: bool,
    body: Body,
}

fn client() -> impl Strategy<Value = Client> {
    let headers = header_names(REQUEST_HEADERS, 8).prop_flat_map(|names| {
        let n = names.len();
        (
            Just(names),
            prop::collection::vec(prop::collection::vec(header_value(), 1..4), n),
        )
            .prop_map(|(names, values)| names.into_iter().zip(values).collect::<Vec<_>>())
    });
    (method(), headers, any::<bool>(), any::<bool>(), body()).prop_map(
        |(method, headers, title_case, forged, body)| Client {
            method,
            headers,
            title_case,
            forged,
            body,
        },
    )
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl Client {
    fn event_name(&self, name: &str) -> String {
        if self.title_case {
            title_case(name)
        } else {
            name.to_owned()
        }
    }

    /// The headers with only their last value: REST's `headers`, ALB's single-value mode.
    fn single_headers(&self) -> Map<String, Value> {
        let mut map: Map<String, Value> = self
            .headers
            .iter()
            .map(|(n, vs)| (self.event_name(n), vs.last().unwrap().clone().into()))
            .collect();
        if self.forged {
            map.insert(self.event_name("x-forwarded-prefix"), "/forged".into());
            map.insert(self.event_name("x-amzn-trace-id"), FORGED_TRACE.into());
        }
        map
    }

    fn multi_headers(&self) -> Map<String, Value> {
        let mut map: Map<String, Value> = self
            .headers
            .iter()
            .map(|(n, vs)| (self.event_name(n), json!(vs)))
            .collect();
        if self.forged {
            map.insert(self.event_name("x-forwarded-prefix"), json!(["/forged"]));
            map.insert(self.event_name("x-amzn-trace-id"), json!([FORGED_TRACE]));
        }
        map
    }

    /// HTTP API 2.0 and Function URLs send one lower-case map, repeated headers comma-joined.
    fn joined_headers(&self) -> Map<String, Value> {
        let mut map: Map<String, Value> = self
            .headers
            .iter()
            .map(|(n, vs)| (n.clone(), vs.join(",").into()))
            .collect();
        if self.forged {
            map.insert("x-forwarded-prefix".into(), "/forged".into());
            map.insert("x-amzn-trace-id".into(), FORGED_TRACE.into());
        }
        map
    }

    /// What the app must see for each generated header, value by value.
    fn expect_headers(&self, request: &Request<Bytes>, shape: HeaderShape) {
        for (name, values) in &self.headers {
            let expected: Vec<Vec<u8>> = match shape {
                HeaderShape::Multi => values.iter().map(|v| v.clone().into_bytes()).collect(),
                HeaderShape::Last => vec![values.last().unwrap().clone().into_bytes()],
                HeaderShape::Joined => vec![values.join(",").into_bytes()],
            };
            let actual: Vec<Vec<u8>> = request
                .headers()
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect();
            assert_eq!(actual, expected, "header {name}");
        }
    }
}

#[derive(Clone, Copy)]
enum HeaderShape {
    Multi,
    Last,
    Joined,
}

const LAMBDA_TRACE: &str =
    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1";
const FORGED_TRACE: &str = "Root=1-00000000-forgedforgedforgedforged";

fn invocation() -> Invocation {
    let mut invocation = Invocation::new(
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        Duration::from_secs(30),
    );
    invocation.trace_id = Some(LAMBDA_TRACE.to_owned());
    invocation
}

fn translated(event: &Value, expected: Source, base_path: Option<&str>) -> Request<Bytes> {
    let kind = events::classify(event).expect("classify");
    assert_eq!(kind, EventKind::Http(expected), "classified as {kind:?}");
    let inv = invocation();
    events::translate(
        event,
        expected,
        &Options {
            base_path,
            invocation: &inv,
        },
    )
    .unwrap_or_else(|err| panic!("translate failed: {err}\n{event:#}"))
}

fn check_common(request: &Request<Bytes>, client: &Client, prefix: Option<&str>) {
    assert_eq!(request.method().as_str(), client.method);
    assert_eq!(&request.body()[..], &client.body.bytes[..], "body");
    if !client.body.bytes.is_empty() {
        let length = request.headers().get(http::header::CONTENT_LENGTH);
        assert_eq!(
            length.map(HeaderValue::as_bytes),
            Some(client.body.bytes.len().to_string().as_bytes()),
            "content-length"
        );
    }
    let actual_prefix = request
        .headers()
        .get_all("x-forwarded-prefix")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(
        actual_prefix,
        prefix.into_iter().collect::<Vec<_>>(),
        "x-forwarded-prefix"
    );
    // Lambda's trace id, whatever the client sent; and a Host, whatever the event has.
    let trace: Vec<&[u8]> = request
        .headers()
        .get_all("x-amzn-trace-id")
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    assert_eq!(trace, [LAMBDA_TRACE.as_bytes()], "x-amzn-trace-id");
    assert!(request.headers().contains_key("host"), "host");
}

fn check_path(request: &Request<Bytes>, path: &PathForm) {
    match path {
        PathForm::Encoded(p) => assert_eq!(request.uri().path(), p, "encoded path"),
        PathForm::Decoded(p) => {
            let actual = request.uri().path();
            let decoded = percent_decode(actual.as_bytes()).collect::<Vec<u8>>();
            assert_eq!(decoded, p.as_bytes(), "decoded path, sent as {actual}");
        }
    }
}

/// The query as Rack reads it: pairs split on `&` and `=`, `+` as space, then percent-decoded.
fn rack_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let plus = s.replace('+', " ");
        let bytes: Vec<u8> = percent_decode(plus.as_bytes()).collect();
        String::from_utf8(bytes).expect("the query decodes to UTF-8")
    };
    match query {
        None | Some("") => Vec::new(),
        Some(query) => query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(pair), String::new()),
            })
            .collect(),
    }
}

fn raw_join(params: &[(String, String)]) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(pairs.join("&"))
}

/// `queryStringParameters` (each key's last value) and `multiValueQueryStringParameters`.
fn param_maps(params: &[(String, Vec<String>)]) -> (Value, Value) {
    if params.is_empty() {
        return (Value::Null, Value::Null);
    }
    let single: Map<String, Value> = params
        .iter()
        .map(|(k, vs)| (k.clone(), vs.last().unwrap().clone().into()))
        .collect();
    let multi: Map<String, Value> = params
        .iter()
        .map(|(k, vs)| (k.clone(), json!(vs)))
        .collect();
    (Value::Object(single), Value::Object(multi))
}

/// `MEGAMODE_BASE_PATH` as megamode normalises it: `/x` or `/x/y`, no trailing slash.
fn base_path() -> impl Strategy<Value = String> {
    "(/[a-z0-9_-]{1,6}){1,2}"
}

fn stage_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,7}".prop_filter("not the default stage", |s| s != "$default")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rest_api_requests_arrive_unchanged(
        client in client(),
        path in encoded_path(),
        params in decoded_params(),
        stage in stage_name(),
        custom_domain in any::<bool>(),
        single_query_only in any::<bool>(),
        base in prop::option::of(base_path()),
    ) {
        // On the execute-api host `requestContext.path` carries the stage; on a custom domain it
        // equals `path`. A base path mapping leaves its segments in `path`.
        let full_path = format!("{}{path}", base.as_deref().unwrap_or(""));
        let context_path = if custom_domain {
            full_path.clone()
        } else {
            format!("/{stage}{full_path}")
        };
        let (single_q, multi_q) = param_maps(&params);
        let mut event = json!({
            "resource": "/{proxy+}",
            "path": full_path,
            "httpMethod": client.method,
            "headers": client.single_headers(),
            "multiValueHeaders": client.multi_headers(),
            "queryStringParameters": single_q,
            "multiValueQueryStringParameters": if single_query_only { Value::Null } else { multi_q },
            "pathParameters": {"proxy": full_path.trim_start_matches('/')},
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "httpMethod": client.method,
                "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
                "path": context_path,
                "protocol": "HTTP/1.1",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "resourcePath": "/{proxy+}",
                "stage": stage,
            },
        });
        client.body.insert_into(event.as_object_mut().unwrap());

        let request = translated(&event, Source::RestApi, base.as_deref());
        let stage_prefix = if custom_domain { String::new() } else { format!("/{stage}") };
        let prefix = format!("{stage_prefix}{}", base.as_deref().unwrap_or(""));
        check_common(&request, &client, Some(prefix.as_str()).filter(|p| !p.is_empty()));
        prop_assert_eq!(request.uri().path(), path.as_str());
        let expected = if single_query_only {
            params.iter().map(|(k, vs)| (k.clone(), vs.last().unwrap().clone())).collect()
        } else {
            flatten(&params)
        };
        prop_assert_eq!(rack_pairs(request.uri().query()), expected);
        client.expect_headers(&request, HeaderShape::Multi);
    }

    #[test]
    fn http_api_v1_requests_arrive_unchanged(
        client in client(),
        path in path_form(),
        params in decoded_params(),
        stage in prop::option::of(stage_name()),
    ) {
        // HTTP APIs leave a named stage at the front of `path`, and `requestContext.path` equals it.
        let full_path = match &stage {
            Some(stage) => format!("/{stage}{}", path.text()),
            None => path.text().to_owned(),
        };
        let (single_q, multi_q) = param_maps(&params);
        let mut event = json!({
            "version": "1.0",
            "resource": "$default",
            "path": full_path,
            "httpMethod": client.method,
            "headers": client.single_headers(),
            "multiValueHeaders": client.multi_headers(),
            "queryStringParameters": single_q,
            "multiValueQueryStringParameters": multi_q,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "id",
                "domainName": "id.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "id",
                "httpMethod": client.method,
                "identity": {"sourceIp": "192.0.2.1", "userAgent": "agent"},
                "path": full_path,
                "protocol": "HTTP/1.1",
                "requestId": "id=",
                "resourcePath": "$default",
                "stage": stage.as_deref().unwrap_or("$default"),
            },
            "pathParameters": null,
            "stageVariables": null,
        });
        client.body.insert_into(event.as_object_mut().unwrap());

        let request = translated(&event, Source::HttpApiV1, None);
        let prefix = stage.as_ref().map(|s| format!("/{s}"));
        check_common(&request, &client, prefix.as_deref());
        check_path(&request, &path);
        prop_assert_eq!(rack_pairs(request.uri().query()), flatten(&params));
        client.expect_headers(&request, HeaderShape::Multi);
    }

    #[test]
    fn http_api_v2_requests_arrive_unchanged(
        client in client(),
        path in path_form(),
        query in raw_query(),
        cookies in prop::collection::vec("[A-Za-z0-9_]{1,8}=[A-Za-z0-9%._-]{0,12}", 0..4),
        stage in prop::option::of(stage_name()),
        bare_stage in any::<bool>(),
        base in prop::option::of(base_path()),
    ) {
        // A request for the bare named stage comes as `/dev`, not `/dev/`.
        let after_stage = format!("{}{}", base.as_deref().unwrap_or(""), path.text());
        let raw_path = match &stage {
            Some(stage) if bare_stage && after_stage == "/" => format!("/{stage}"),
            Some(stage) => format!("/{stage}{after_stage}"),
            None => after_stage,
        };
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": client.joined_headers(),
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "r3pmxmplak",
                "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
                "domainPrefix": "r3pmxmplak",
                "http": {
                    "method": client.method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "205.255.255.176",
                    "userAgent": "Mozilla/5.0",
                },
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": "$default",
                "stage": stage.as_deref().unwrap_or("$default"),
                "time": "10/Mar/2020:05:16:23 +0000",
                "timeEpoch": 1583817383220_u64,
            },
        });
        if !cookies.is_empty() {
            event["cookies"] = json!(cookies);
        }
        client.body.insert_into(event.as_object_mut().unwrap());

        let request = translated(&event, Source::HttpApiV2, base.as_deref());
        let prefix = format!(
            "{}{}",
            stage.as_ref().map(|s| format!("/{s}")).unwrap_or_default(),
            base.as_deref().unwrap_or("")
        );
        check_common(&request, &client, Some(prefix.as_str()).filter(|p| !p.is_empty()));
        check_path(&request, &path);
        prop_assert_eq!(request.uri().query().unwrap_or(""), query.as_str());
        client.expect_headers(&request, HeaderShape::Joined);
        let cookie = request.headers().get(http::header::COOKIE).map(|v| v.to_str().unwrap());
        let expected = (!cookies.is_empty()).then(|| cookies.join("; "));
        prop_assert_eq!(cookie, expected.as_deref());
    }

    #[test]
    fn function_url_requests_arrive_unchanged(
        client in client(),
        path in encoded_path(),
        query in raw_query(),
        cookies in prop::collection::vec("[A-Za-z0-9_]{1,8}=[A-Za-z0-9%._-]{0,12}", 0..4),
    ) {
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": client.joined_headers(),
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefg",
                "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abcdefg",
                "http": {
                    "method": client.method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "123.123.123.123",
                    "userAgent": "agent",
                },
                "requestId": "id",
                "routeKey": "$default",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1583348638390_u64,
            },
            "pathParameters": null,
            "stageVariables": null,
        });
        if !cookies.is_empty() {
            event["cookies"] = json!(cookies);
        }
        client.body.insert_into(event.as_object_mut().unwrap());

        let request = translated(&event, Source::FunctionUrl, None);
        check_common(&request, &client, None);
        prop_assert_eq!(request.uri().path(), path.as_str());
        prop_assert_eq!(request.uri().query().unwrap_or(""), query.as_str());
        client.expect_headers(&request, HeaderShape::Joined);
        let cookie = request.headers().get(http::header::COOKIE).map(|v| v.to_str().unwrap());
        let expected = (!cookies.is_empty()).then(|| cookies.join("; "));
        prop_assert_eq!(cookie, expected.as_deref());
    }

    #[test]
    fn alb_requests_arrive_unchanged(
        client in client(),
        path in encoded_path(),
        params in raw_params(),
        multi_value in any::<bool>(),
    ) {
        let mut event = json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-target/49e9d65c45c6791a"}},
            "httpMethod": client.method,
            "path": path,
        });
        let map = event.as_object_mut().unwrap();
        // ALB sends the parameter map even when it is empty, and a body of "" for none.
        let (single_q, multi_q) = param_maps(&params);
        if multi_value {
            map.insert("multiValueQueryStringParameters".into(), if params.is_empty() { json!({}) } else { multi_q });
            map.insert("multiValueHeaders".into(), client.multi_headers().into());
        } else {
            map.insert("queryStringParameters".into(), if params.is_empty() { json!({}) } else { single_q });
            map.insert("headers".into(), client.single_headers().into());
        }
        map.insert("body".into(), "".into());
        map.insert("isBase64Encoded".into(), false.into());
        client.body.insert_into(map);

        let request = translated(&event, Source::Alb { multi_value }, None);
        check_common(&request, &client, None);
        prop_assert_eq!(request.uri().path(), path.as_str());
        let expected = if multi_value {
            flatten(&params)
        } else {
            params.iter().map(|(k, vs)| (k.clone(), vs.last().unwrap().clone())).collect()
        };
        prop_assert_eq!(request.uri().query().map(str::to_owned), raw_join(&expected));
        client.expect_headers(
            &request,
            if multi_value { HeaderShape::Multi } else { HeaderShape::Last },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

const RESPONSE_HEADERS: &[&str] = &[
    "cache-control",
    "etag",
    "location",
    "vary",
    "link",
    "x-frame-options",
    "x-content-type-options",
    "content-disposition",
    "content-language",
    "last-modified",
    "x-request-id",
    "x-runtime",
    "server-timing",
    "www-authenticate",
];

const CONTENT_TYPES: &[&str] = &[
    "text/html; charset=utf-8",
    "text/plain",
    "text/csv; charset=utf-8",
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "image/svg+xml",
    "application/javascript",
    "image/png",
    "image/jpeg",
    "application/pdf",
    "application/octet-stream",
    "font/woff2",
    "text/plain; charset=iso-8859-1",
];

const STATUSES: &[u16] = &[
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 422, 500, 502, 503,
];

const ERROR_STATUSES: &[u16] = &[500, 502, 503, 504];

const CONTENT_ENCODINGS: &[&str] = &["gzip", "br", "identity"];

const COOKIE_ATTRIBUTES: &[&str] = &[
    "Path=/",
    "Domain=example.com",
    "Expires=Wed, 21 Oct 2026 07:28:00 GMT",
    "Max-Age=3600",
    "HttpOnly",
    "Secure",
    "SameSite=Lax",
];

fn set_cookie() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9_]{1,10}",
        "[A-Za-z0-9%._-]{0,16}",
        prop::sample::subsequence(COOKIE_ATTRIBUTES, 0..=COOKIE_ATTRIBUTES.len()),
    )
        .prop_map(|(name, value, attributes)| {
            let mut cookie = format!("{name}={value}");
            for attribute in attributes {
                cookie.push_str("; ");
                cookie.push_str(attribute);
            }
            cookie
        })
}

/// Response header values: as in requests, plus raw bytes past ASCII that are not UTF-8
/// (ISO-8859-1 from older apps).
fn response_header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => header_value().prop_map(String::into_bytes),
        1 => prop::collection::vec(
            prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff],
            1..12,
        ),
    ]
}

#[derive(Clone, Debug)]
struct AppResponse {
    status: u16,
    headers: Vec<(String, Vec<Vec<u8>>)>,
    set_cookies: Vec<String>,
    content_type: Option<&'static str>,
    content_encoding: Option<&'static str>,
    /// `Connection`/`Transfer-Encoding`/`Keep-Alive` from the app's server, which must not leak.
    hop_by_hop: bool,
    body: Vec<u8>,
}

fn app_response() -> impl Strategy<Value = AppResponse> {
    let headers = header_names(RESPONSE_HEADERS, 6).prop_flat_map(|names| {
        let n = names.len();
        (
            Just(names),
            prop::collection::vec(prop::collection::vec(response_header_value(), 1..3), n),
        )
            .prop_map(|(names, values)| names.into_iter().zip(values).collect::<Vec<_>>())
    });
    (
        prop_oneof![
            3 => select(STATUSES),
            1 => 200u16..600,
        ],
        headers,
        prop::collection::vec(set_cookie(), 0..4),
        prop::option::of(select(CONTENT_TYPES)),
        prop::option::weighted(0.2, select(CONTENT_ENCODINGS)),
        any::<bool>(),
        body_bytes(),
    )
        .prop_map(
            |(status, headers, set_cookies, content_type, content_encoding, hop_by_hop, body)| {
                AppResponse {
                    status,
                    headers,
                    set_cookies,
                    content_type,
                    content_encoding,
                    hop_by_hop,
                    body,
                }
            },
        )
}

impl AppResponse {
    fn head(&self) -> http::response::Parts {
        let mut builder = http::Response::builder().status(self.status);
        if let Some(ct) = self.content_type {
            builder = builder.header("content-type", ct);
        }
        if let Some(ce) = self.content_encoding {
            builder = builder.header("content-encoding", ce);
        }
        // Interleaved with the others, as Rack apps emit them.
        for (i, cookie) in self.set_cookies.iter().enumerate() {
            builder = builder.header("set-cookie", cookie.as_str());
            if let Some((name, values)) = self.headers.get(i) {
                for value in values {
                    builder =
                        builder.header(name.as_str(), HeaderValue::from_bytes(value).unwrap());
                }
            }
        }
        for (name, values) in self.headers.iter().skip(self.set_cookies.len()) {
            for value in values {
                builder = builder.header(name.as_str(), HeaderValue::from_bytes(value).unwrap());
            }
        }
        if self.hop_by_hop {
            builder = builder
                .header("connection", "keep-alive")
                .header("keep-alive", "timeout=5")
                .header("transfer-encoding", "chunked");
        }
        builder.body(()).unwrap().into_parts().0
    }

    /// Every forwarded header as the JSON text the source reads: UTF-8 when it is, else
    /// ISO-8859-1.
    fn expected_headers(&self) -> Vec<(String, Vec<String>)> {
        let text = |bytes: &[u8]| match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        let mut all: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(ct) = self.content_type {
            all.push(("content-type".into(), vec![ct.into()]));
        }
        if let Some(ce) = self.content_encoding {
            all.push(("content-encoding".into(), vec![ce.into()]));
        }
        if !self.set_cookies.is_empty() {
            all.push(("set-cookie".into(), self.set_cookies.clone()));
        }
        for (name, values) in &self.headers {
            all.push((name.clone(), values.iter().map(|v| text(v)).collect()));
        }
        all
    }

    /// The documented body rule: plain text only for UTF-8 bytes of a textual (or no) type that
    /// are not compressed.
    fn expect_base64(&self) -> bool {
        let encoded = self.content_encoding.is_some_and(|ce| ce != "identity");
        let binary_type = self.content_type.is_some_and(|ct| !events::is_text(ct));
        !self.body.is_empty()
            && (encoded || binary_type || std::str::from_utf8(&self.body).is_err())
    }
}

/// The rendered result as the source receives it: serialized by the runtime, parsed by AWS.
fn over_the_wire(rendered: &Value) -> Map<String, Value> {
    let text = serde_json::to_string(rendered).expect("serializes");
    match serde_json::from_str(&text).expect("parses") {
        Value::Object(map) => map,
        other => panic!("rendered {other}, not an object"),
    }
}

fn decoded_body(out: &Map<String, Value>) -> Vec<u8> {
    let body = out["body"].as_str().expect("body is a string");
    if out["isBase64Encoded"] == json!(true) {
        STANDARD.decode(body).expect("body is valid base64")
    } else {
        body.as_bytes().to_vec()
    }
}

fn multi_map(value: &Value) -> Vec<(String, Vec<String>)> {
    let mut pairs: Vec<(String, Vec<String>)> = value
        .as_object()
        .expect("multiValueHeaders is an object")
        .iter()
        .map(|(k, vs)| {
            let values = vs
                .as_array()
                .expect("a list of values")
                .iter()
                .map(|v| v.as_str().expect("a string value").to_owned())
                .collect();
            (k.clone(), values)
        })
        .collect();
    pairs.sort();
    pairs
}

fn single_map(value: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = value
        .as_object()
        .expect("headers is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn check_response(source: Source, response: &AppResponse) {
    let rendered = events::render(source, &response.head(), &response.body);
    let out = over_the_wire(&rendered);

    assert_eq!(out["statusCode"], json!(response.status), "statusCode");
    assert_eq!(out["isBase64Encoded"], json!(response.expect_base64()));
    assert_eq!(decoded_body(&out), response.body, "body bytes");

    let mut expected = response.expected_headers();
    expected.sort();
    let joined = |pairs: &[(String, Vec<String>)],
                  set_cookie: &dyn Fn(&[String]) -> Option<String>| {
        let mut single: Vec<(String, String)> = pairs
            .iter()
            .filter_map(|(name, values)| {
                let value = if name == "set-cookie" {
                    set_cookie(values)?
                } else {
                    values.join(", ")
                };
                Some((name.clone(), value))
            })
            .collect();
        single.sort();
        single
    };
    match source {
        Source::RestApi | Source::HttpApiV1 => {
            assert!(
                !out.contains_key("cookies"),
                "a REST response with cookies is malformed"
            );
            assert!(!out.contains_key("headers"));
            assert_eq!(multi_map(&out["multiValueHeaders"]), expected);
        }
        Source::HttpApiV2 | Source::FunctionUrl => {
            assert!(!out.contains_key("multiValueHeaders"));
            assert_eq!(single_map(&out["headers"]), joined(&expected, &|_| None));
            assert_eq!(out["cookies"], json!(response.set_cookies), "cookies");
        }
        Source::Alb { multi_value } => {
            let description = out["statusDescription"]
                .as_str()
                .expect("statusDescription");
            let code = response.status.to_string();
            assert!(
                description == code || description.starts_with(&format!("{code} ")),
                "statusDescription {description:?}"
            );
            if multi_value {
                assert!(!out.contains_key("headers"));
                assert_eq!(multi_map(&out["multiValueHeaders"]), expected);
            } else {
                assert!(!out.contains_key("multiValueHeaders"));
                // One value per name: of several cookies only the last can travel.
                let last = |values: &[String]| values.last().cloned();
                assert_eq!(single_map(&out["headers"]), joined(&expected, &last));
            }
        }
    }
}

const ALL_SOURCES: [Source; 6] = [
    Source::RestApi,
    Source::HttpApiV1,
    Source::HttpApiV2,
    Source::FunctionUrl,
    Source::Alb { multi_value: false },
    Source::Alb { multi_value: true },
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn responses_come_back_decodable_in_every_shape(response in app_response()) {
        for source in ALL_SOURCES {
            check_response(source, &response);
        }
    }

    #[test]
    fn error_responses_are_json_in_every_shape(
        status in select(ERROR_STATUSES),
        message in "\\PC{0,40}",
    ) {
        let status = http::StatusCode::from_u16(status).unwrap();
        for source in ALL_SOURCES {
            let out = over_the_wire(&events::error_response(source, status, &message));
            prop_assert_eq!(&out["statusCode"], &json!(status.as_u16()));
            let body: Value = serde_json::from_slice(&decoded_body(&out)).expect("a JSON body");
            prop_assert_eq!(&body["message"], &json!(message));
        }
    }
}
