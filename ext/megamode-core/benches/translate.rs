//! The per-request cost megamode adds in Rust: an event in (classify + translate) and the app's
//! response out (render), for the three event shapes that matter most. The issue's target is under
//! 10 us per event each way. JSON parsing is not included: the handler builds the `serde_json`
//! value from Ruby's Hash, and the Runtime API loop parses once for everything.
//!
//!   cargo bench -p megamode-core --bench translate

use std::hint::black_box;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use megamode_core::events::{self, EventKind, Options, Source};
use megamode_core::Invocation;
use serde_json::{json, Value};

/// What a browser sends: a page view with cookies, through a named stage.
fn http_v2_event() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/prod/posts/42",
        "rawQueryString": "page=2&sort=created_at&q=hello%20world",
        "cookies": ["_app_session=dGhpcyBpcyBhIHNlc3Npb24gY29va2ll--abc123", "remember_token=xyz789"],
        "headers": {
            "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "accept-encoding": "gzip, deflate, br",
            "accept-language": "en-US,en;q=0.9",
            "content-length": "0",
            "host": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
            "x-forwarded-for": "205.255.255.176",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "queryStringParameters": {"page": "2", "sort": "created_at", "q": "hello world"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": "GET",
                "path": "/prod/posts/42",
                "protocol": "HTTP/1.1",
                "sourceIp": "205.255.255.176",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "prod",
            "time": "10/Mar/2024:05:16:23 +0000",
            "timeEpoch": 1710047783220_u64
        },
        "isBase64Encoded": false
    })
}

/// A JSON API call: a POST with a small body, both header maps as REST APIs send them.
fn rest_event() -> Value {
    json!({
        "resource": "/{proxy+}",
        "path": "/api/posts",
        "httpMethod": "POST",
        "headers": {
            "Accept": "application/json",
            "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "Content-Type": "application/json",
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
            "User-Agent": "okhttp/4.12.0",
            "X-Amzn-Trace-Id": "Root=1-65f0a1b2-0123456789abcdef01234567",
            "X-Forwarded-For": "203.0.113.7, 130.176.0.1",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https"
        },
        "multiValueHeaders": {
            "Accept": ["application/json"],
            "Authorization": ["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
            "Content-Type": ["application/json"],
            "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
            "User-Agent": ["okhttp/4.12.0"],
            "X-Amzn-Trace-Id": ["Root=1-65f0a1b2-0123456789abcdef01234567"],
            "X-Forwarded-For": ["203.0.113.7, 130.176.0.1"],
            "X-Forwarded-Port": ["443"],
            "X-Forwarded-Proto": ["https"]
        },
        "queryStringParameters": {"draft": "false"},
        "multiValueQueryStringParameters": {"draft": ["false"]},
        "pathParameters": {"proxy": "api/posts"},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "extendedRequestId": "Tj1xYFkzIAMFz9Q=",
            "httpMethod": "POST",
            "identity": {
                "accessKey": null,
                "accountId": null,
                "caller": null,
                "sourceIp": "203.0.113.7",
                "user": null,
                "userAgent": "okhttp/4.12.0",
                "userArn": null
            },
            "path": "/prod/api/posts",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2024:12:34:56 +0000",
            "requestTimeEpoch": 1712666096000_u64,
            "resourceId": "xyz789",
            "resourcePath": "/{proxy+}",
            "stage": "prod"
        },
        "body": "{\"post\":{\"title\":\"Hello\",\"body\":\"A first post, with a few words in it.\"}}",
        "isBase64Encoded": false
    })
}

/// A page view behind a load balancer, single-value mode (the default).
fn alb_event() -> Value {
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app/49e9d65c45c6791a"}},
        "httpMethod": "GET",
        "path": "/posts/42",
        "queryStringParameters": {"page": "2", "q": "hello%20world"},
        "headers": {
            "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "accept-encoding": "gzip, deflate, br",
            "accept-language": "en-US,en;q=0.9",
            "connection": "keep-alive",
            "cookie": "_app_session=dGhpcyBpcyBhIHNlc3Npb24gY29va2ll--abc123; remember_token=xyz789",
            "host": "app-123578498.us-east-1.elb.amazonaws.com",
            "upgrade-insecure-requests": "1",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
            "x-forwarded-for": "72.12.164.125",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "body": "",
        "isBase64Encoded": false
    })
}

/// A Rails response head: two cookies and the usual security and caching headers.
fn response_head(content_type: &str, length: usize) -> http::response::Parts {
    http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("content-length", length)
        .header("cache-control", "max-age=0, private, must-revalidate")
        .header("etag", "W/\"5d41402abc4b2a76b9719d911017c592\"")
        .header("x-frame-options", "SAMEORIGIN")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "strict-origin-when-cross-origin")
        .header("vary", "Accept")
        .header("vary", "Accept-Encoding")
        .header("x-request-id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd")
        .header("x-runtime", "0.012345")
        .header(
            "set-cookie",
            "_app_session=dGhpcyBpcyBhIHNlc3Npb24gY29va2ll--abc123; path=/; HttpOnly; SameSite=Lax",
        )
        .header(
            "set-cookie",
            "remember_token=xyz789; path=/; expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; HttpOnly",
        )
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn html_1k() -> Vec<u8> {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Post 42</title></head><body><main>",
    );
    while html.len() < 1024 - "</main></body></html>".len() - 40 {
        html.push_str("<p>A paragraph of the post, caf\u{e9} included.</p>");
    }
    html.push_str("</main></body></html>");
    html.into_bytes()
}

/// 50 KB that neither UTF-8 nor compression would make smaller: image-like bytes.
fn binary_50k() -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..50 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn requests_in(c: &mut Criterion) {
    let invocation = Invocation::new(
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        Duration::from_secs(30),
    );
    let mut group = c.benchmark_group("in");
    for (name, event) in [
        ("http_v2", http_v2_event()),
        ("rest", rest_event()),
        ("alb", alb_event()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let event = black_box(&event);
                let EventKind::Http(source) = events::classify(event).unwrap() else {
                    unreachable!("the sample is an HTTP event")
                };
                let options = Options {
                    base_path: None,
                    invocation: &invocation,
                };
                events::translate(event, source, &options).unwrap()
            })
        });
    }
    group.finish();
}

fn responses_out(c: &mut Criterion) {
    let html = html_1k();
    let binary = binary_50k();
    let bodies = [
        (
            "html_1k",
            response_head("text/html; charset=utf-8", html.len()),
            &html,
        ),
        (
            "binary_50k",
            response_head("image/png", binary.len()),
            &binary,
        ),
    ];
    let mut group = c.benchmark_group("out");
    for (body_name, head, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (source_name, source) in [
            ("http_v2", Source::HttpApiV2),
            ("rest", Source::RestApi),
            ("alb", Source::Alb { multi_value: false }),
        ] {
            group.bench_with_input(
                BenchmarkId::new(source_name, body_name),
                &(head, body),
                |b, (head, body)| {
                    b.iter(|| events::render(source, black_box(head), black_box(body)))
                },
            );
        }
    }
    group.finish();
}

/// The floor under a binary response: base64 of the body alone, which every source needs.
fn reference(c: &mut Criterion) {
    let binary = binary_50k();
    let mut group = c.benchmark_group("reference");
    group.throughput(Throughput::Bytes(binary.len() as u64));
    group.bench_function("base64_50k", |b| {
        b.iter(|| STANDARD.encode(black_box(&binary)))
    });
    group.finish();
}

criterion_group!(benches, requests_in, responses_out, reference);
criterion_main!(benches);
