use std::time::Duration;

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::*;
use crate::events::{classify, EventKind};
use crate::ErrorKind;

// Sample events in the shapes AWS documents for each source (ids and addresses are made up).

fn rest_event() -> Value {
    json!({
        "resource": "/{proxy+}",
        "path": "/pets/42",
        "httpMethod": "POST",
        "headers": {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
            "User-Agent": "curl/8.5.0",
            "X-Amzn-Trace-Id": "Root=1-65f0a1b2-0123456789abcdef01234567",
            "X-Forwarded-For": "203.0.113.7, 130.176.0.1",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https"
        },
        "multiValueHeaders": {
            "Accept": ["application/json"],
            "Content-Type": ["application/json"],
            "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
            "User-Agent": ["curl/8.5.0"],
            "X-Amzn-Trace-Id": ["Root=1-65f0a1b2-0123456789abcdef01234567"],
            "X-Forwarded-For": ["203.0.113.7, 130.176.0.1"],
            "X-Forwarded-Port": ["443"],
            "X-Forwarded-Proto": ["https"]
        },
        "queryStringParameters": {"tag": "b", "limit": "10"},
        "multiValueQueryStringParameters": {"tag": ["a", "b"], "limit": ["10"]},
        "pathParameters": {"proxy": "pets/42"},
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
                "userAgent": "curl/8.5.0",
                "userArn": null
            },
            "path": "/prod/pets/42",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2024:12:34:56 +0000",
            "requestTimeEpoch": 1712666096000_u64,
            "resourceId": "xyz789",
            "resourcePath": "/{proxy+}",
            "stage": "prod"
        },
        "body": "{\"name\":\"Rex\"}",
        "isBase64Encoded": false
    })
}

fn http_v1_event() -> Value {
    json!({
        "version": "1.0",
        "resource": "/my/path",
        "path": "/my/path",
        "httpMethod": "GET",
        "headers": {"header1": "value1", "header2": "value2", "host": "id.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"header1": ["value1"], "header2": ["value1", "value2"], "host": ["id.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": {"parameter1": "value1", "parameter2": "value"},
        "multiValueQueryStringParameters": {"parameter1": ["value1", "value2"], "parameter2": ["value"]},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "id",
            "domainName": "id.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "id",
            "extendedRequestId": "request-id",
            "httpMethod": "GET",
            "identity": {"sourceIp": "192.0.2.1", "userAgent": "user-agent"},
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "requestId": "id=",
            "requestTime": "04/Mar/2020:19:15:17 +0000",
            "requestTimeEpoch": 1583349317135_u64,
            "resourceId": null,
            "resourcePath": "/my/path",
            "stage": "$default"
        },
        "pathParameters": null,
        "stageVariables": null,
        "body": "Hello from Lambda!",
        "isBase64Encoded": false
    })
}

fn http_v2_event() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": "/dev/my/path",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1=one", "cookie2=two"],
        "headers": {
            "accept": "text/html",
            "content-length": "0",
            "host": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "user-agent": "Mozilla/5.0",
            "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
            "x-forwarded-for": "205.255.255.176",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": "GET",
                "path": "/dev/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "205.255.255.176",
                "userAgent": "Mozilla/5.0"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "ANY /{proxy+}",
            "stage": "dev",
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220_u64
        },
        "pathParameters": {"proxy": "my/path"},
        "isBase64Encoded": false
    })
}

fn function_url_event() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/my/path",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1", "cookie2"],
        "headers": {"header1": "value1", "header2": "value1,value2", "host": "abcdefg.lambda-url.us-east-1.on.aws"},
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefg",
            "authorizer": {"iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "111122223333",
                "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": "arn:aws:iam::111122223333:user/example-user",
                "userId": "AIDAEXAMPLE"
            }},
            "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefg",
            "http": {
                "method": "POST",
                "path": "/my/path",
                "protocol": "HTTP/1.1",
                "sourceIp": "123.123.123.123",
                "userAgent": "agent"
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390_u64
        },
        "body": "Hello from client!",
        "pathParameters": null,
        "isBase64Encoded": false,
        "stageVariables": null
    })
}

fn alb_event() -> Value {
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"}},
        "httpMethod": "GET",
        "path": "/lambda",
        "queryStringParameters": {"query": "1234ABCD"},
        "headers": {
            "accept": "text/html,application/xhtml+xml",
            "accept-encoding": "gzip",
            "accept-language": "en-US,en;q=0.9",
            "connection": "keep-alive",
            "host": "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
            "upgrade-insecure-requests": "1",
            "user-agent": "Mozilla/5.0",
            "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
            "x-forwarded-for": "72.12.164.125",
            "x-forwarded-port": "80",
            "x-forwarded-proto": "http",
            "x-imforwards": "20"
        },
        "body": "",
        "isBase64Encoded": false
    })
}

fn alb_multi_event() -> Value {
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-target/49e9d65c45c6791a"}},
        "httpMethod": "GET",
        "path": "/search",
        "multiValueQueryStringParameters": {"q": ["a%20b"], "tag": ["x", "y"]},
        "multiValueHeaders": {
            "accept": ["*/*"],
            "cookie": ["a=1", "b=2"],
            "host": ["lambda-alb-123578498.us-east-2.elb.amazonaws.com"],
            "x-amzn-trace-id": ["Root=1-5c536348-3d683b8b04734faae651f476"],
            "x-forwarded-for": ["72.12.164.125"],
            "x-forwarded-port": ["443"],
            "x-forwarded-proto": ["https"]
        },
        "body": "",
        "isBase64Encoded": false
    })
}

fn invocation() -> Invocation {
    let mut inv = Invocation::new(
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        Duration::from_secs(30),
    );
    inv.trace_id =
        Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into());
    inv.function.name = Some("my-function".into());
    inv
}

fn translate_with(event: &Value, base_path: Option<&str>) -> Request<Bytes> {
    let EventKind::Http(source) = classify(event).unwrap() else {
        panic!("not an HTTP event: {event}");
    };
    let inv = invocation();
    translate(
        event,
        source,
        &Options {
            base_path,
            invocation: &inv,
        },
    )
    .unwrap()
}

fn tr(event: &Value) -> Request<Bytes> {
    translate_with(event, None)
}

fn tr_err(event: &Value) -> Error {
    let EventKind::Http(source) = classify(event).unwrap() else {
        panic!("not an HTTP event: {event}");
    };
    let inv = invocation();
    translate(
        event,
        source,
        &Options {
            base_path: None,
            invocation: &inv,
        },
    )
    .unwrap_err()
}

fn header<'r>(req: &'r Request<Bytes>, name: &str) -> Option<&'r str> {
    req.headers().get(name).map(|v| v.to_str().unwrap())
}

fn all<'r>(req: &'r Request<Bytes>, name: &str) -> Vec<&'r str> {
    req.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// `event` with the value at `pointer` replaced, or added to its parent object.
fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = event.pointer_mut(pointer) {
        *slot = value;
        return event;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = event.pointer_mut(parent).and_then(Value::as_object_mut);
    parent
        .unwrap_or_else(|| panic!("no parent for {pointer}"))
        .insert(key.into(), value);
    event
}

fn set(mut event: Value, key: &str, value: Value) -> Value {
    event.as_object_mut().unwrap().insert(key.into(), value);
    event
}

// --- The samples are what AWS sends ---

#[test]
fn samples_parse_as_aws_request_types() {
    serde_json::from_value::<ApiGatewayProxyRequest>(rest_event()).unwrap();
    serde_json::from_value::<ApiGatewayProxyRequest>(http_v1_event()).unwrap();
    serde_json::from_value::<ApiGatewayV2httpRequest>(http_v2_event()).unwrap();
    serde_json::from_value::<LambdaFunctionUrlRequest>(function_url_event()).unwrap();
    serde_json::from_value::<AlbTargetGroupRequest>(alb_event()).unwrap();
    serde_json::from_value::<AlbTargetGroupRequest>(alb_multi_event()).unwrap();
}

#[test]
fn samples_classify_as_their_source() {
    let kinds = [
        (rest_event(), Source::RestApi),
        (http_v1_event(), Source::HttpApiV1),
        (http_v2_event(), Source::HttpApiV2),
        (function_url_event(), Source::FunctionUrl),
        (alb_event(), Source::Alb { multi_value: false }),
        (alb_multi_event(), Source::Alb { multi_value: true }),
    ];
    for (event, source) in kinds {
        assert_eq!(classify(&event).unwrap(), EventKind::Http(source));
    }
}

// --- Each source ---

#[test]
fn rest_api_request() {
    let req = tr(&rest_event());
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri(), "/pets/42?tag=a&tag=b&limit=10");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod"));
    assert_eq!(
        header(&req, "host"),
        Some("abc123.execute-api.us-east-1.amazonaws.com")
    );
    assert_eq!(
        header(&req, "x-forwarded-for"),
        Some("203.0.113.7, 130.176.0.1")
    );
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&req, "x-forwarded-port"), Some("443"));
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(header(&req, "content-length"), Some("14"));
    assert_eq!(req.body(), &Bytes::from("{\"name\":\"Rex\"}"));
    // Lambda's trace id, not the one in the event's headers.
    assert_eq!(
        all(&req, "x-amzn-trace-id"),
        ["Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"]
    );
    assert_eq!(
        header(&req, "x-request-id"),
        Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd")
    );
    // One value per header even though both maps carry them.
    assert_eq!(all(&req, "accept"), ["application/json"]);
    assert_eq!(all(&req, "host").len(), 1);
}

#[test]
fn rest_api_on_a_custom_domain_has_no_prefix() {
    let event = with(rest_event(), "/requestContext/path", json!("/pets/42"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/pets/42");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
}

#[test]
fn rest_api_bare_stage_and_stage_root() {
    // https://host/prod
    let event = with(rest_event(), "/path", json!("/"));
    let event = with(event, "/requestContext/path", json!("/prod"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod"));
    // https://host/prod/
    let event = with(event, "/requestContext/path", json!("/prod/"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod"));
}

#[test]
fn rest_api_context_path_that_does_not_end_with_path_gives_no_prefix() {
    let event = with(rest_event(), "/requestContext/path", json!("/prod/other"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/pets/42");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
}

#[test]
fn rest_api_base_path_mapping() {
    // Custom domain, base path mapping "api": API Gateway keeps it in `path`.
    let event = with(rest_event(), "/path", json!("/api/pets/42"));
    let event = with(event, "/requestContext/path", json!("/api/pets/42"));
    let req = translate_with(&event, Some("/api"));
    assert_eq!(req.uri().path(), "/pets/42");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/api"));

    // Stage prefix first, then the base path after it.
    let event = with(rest_event(), "/path", json!("/v1/api/pets"));
    let event = with(event, "/requestContext/path", json!("/prod/v1/api/pets"));
    let req = translate_with(&event, Some("/v1/api"));
    assert_eq!(req.uri().path(), "/pets");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod/v1/api"));

    // The whole path is the base path.
    let event = with(rest_event(), "/path", json!("/api"));
    let event = with(event, "/requestContext/path", json!("/api"));
    let req = translate_with(&event, Some("/api"));
    assert_eq!(req.uri().path(), "/");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/api"));

    // Only whole segments move.
    let event = with(rest_event(), "/path", json!("/apis/pets"));
    let event = with(event, "/requestContext/path", json!("/apis/pets"));
    let req = translate_with(&event, Some("/api"));
    assert_eq!(req.uri().path(), "/apis/pets");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);

    // A path without the base path is left alone.
    let req = translate_with(&rest_event(), Some("/api"));
    assert_eq!(req.uri().path(), "/pets/42");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod"));

    // A trailing slash on the setting changes nothing; "/" means none.
    let event = with(rest_event(), "/path", json!("/api/pets/42"));
    let event = with(event, "/requestContext/path", json!("/api/pets/42"));
    let req = translate_with(&event, Some("/api/"));
    assert_eq!(req.uri().path(), "/pets/42");
    let req = translate_with(&event, Some("/"));
    assert_eq!(req.uri().path(), "/api/pets/42");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
}

#[test]
fn http_v1_request() {
    let req = tr(&http_v1_event());
    assert_eq!(req.method(), Method::GET);
    assert_eq!(
        req.uri(),
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value"
    );
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
    // multiValueHeaders wins where both maps have the name.
    assert_eq!(all(&req, "header2"), ["value1", "value2"]);
    assert_eq!(all(&req, "header1"), ["value1"]);
    assert_eq!(header(&req, "x-forwarded-for"), Some("192.0.2.1"));
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&req, "x-forwarded-port"), Some("443"));
    assert_eq!(req.body(), &Bytes::from("Hello from Lambda!"));
    assert_eq!(header(&req, "content-length"), Some("18"));
    assert_eq!(
        header(&req, "x-amzn-trace-id"),
        Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
    );
}

#[test]
fn http_v1_named_stage() {
    // HTTP APIs leave a named stage in `path`, and requestContext.path equals it.
    let event = with(http_v1_event(), "/path", json!("/dev/my/path"));
    let event = with(event, "/requestContext/path", json!("/dev/my/path"));
    let event = with(event, "/requestContext/stage", json!("dev"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/my/path");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/dev"));

    let event = with(event, "/path", json!("/devices/1"));
    let event = with(event, "/requestContext/path", json!("/devices/1"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/devices/1");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
}

#[test]
fn http_v2_request() {
    let req = tr(&http_v2_event());
    assert_eq!(req.method(), Method::GET);
    assert_eq!(
        req.uri(),
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value"
    );
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/dev"));
    assert_eq!(header(&req, "cookie"), Some("cookie1=one; cookie2=two"));
    assert_eq!(header(&req, "x-forwarded-for"), Some("205.255.255.176"));
    // GET without a body: no Content-Length, and the event's "0" is not forwarded.
    assert_eq!(header(&req, "content-length"), None);
    assert!(req.body().is_empty());
}

#[test]
fn http_v2_stage_rules() {
    let cases = [
        // (stage, rawPath, path, prefix)
        ("dev", "/dev/my/path", "/my/path", Some("/dev")),
        ("dev", "/dev", "/", Some("/dev")),
        ("dev", "/dev/", "/", Some("/dev")),
        ("dev", "/devices", "/devices", None),
        ("dev", "/devices/dev", "/devices/dev", None),
        ("dev", "/my/dev/path", "/my/dev/path", None),
        ("dev", "/", "/", None),
        ("$default", "/$default/x", "/$default/x", None),
        ("$default", "/my/path", "/my/path", None),
        ("", "/my/path", "/my/path", None),
        ("v1.2", "/v1.2/x", "/x", Some("/v1.2")),
    ];
    for (stage, raw_path, path, prefix) in cases {
        let event = with(http_v2_event(), "/requestContext/stage", json!(stage));
        let event = with(event, "/rawPath", json!(raw_path));
        let req = tr(&event);
        assert_eq!(
            req.uri().path(),
            path,
            "stage {stage:?} rawPath {raw_path:?}"
        );
        assert_eq!(
            header(&req, "x-forwarded-prefix"),
            prefix,
            "stage {stage:?} rawPath {raw_path:?}"
        );
    }
    // No stage at all.
    let mut event = http_v2_event();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("stage");
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/dev/my/path");
}

#[test]
fn http_v2_stage_then_base_path() {
    let event = with(http_v2_event(), "/rawPath", json!("/dev/app/users"));
    let req = translate_with(&event, Some("/app"));
    assert_eq!(req.uri().path(), "/users");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/dev/app"));
    // The base path is matched after the stage is gone, not in front of it.
    let req = translate_with(&event, Some("/dev"));
    assert_eq!(req.uri().path(), "/app/users");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/dev"));
}

#[test]
fn function_url_request() {
    let req = tr(&function_url_event());
    assert_eq!(req.method(), Method::POST);
    assert_eq!(
        req.uri(),
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value"
    );
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
    assert_eq!(
        header(&req, "host"),
        Some("abcdefg.lambda-url.us-east-1.on.aws")
    );
    assert_eq!(header(&req, "cookie"), Some("cookie1; cookie2"));
    assert_eq!(header(&req, "header2"), Some("value1,value2"));
    assert_eq!(header(&req, "x-forwarded-for"), Some("123.123.123.123"));
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
    assert_eq!(req.body(), &Bytes::from("Hello from client!"));
    assert_eq!(header(&req, "content-length"), Some("18"));
}

#[test]
fn function_url_path_is_never_stripped() {
    let event = with(function_url_event(), "/rawPath", json!("/dev/x"));
    let event = with(event, "/requestContext/stage", json!("dev"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/dev/x");
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
}

#[test]
fn alb_request() {
    let req = tr(&alb_event());
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri(), "/lambda?query=1234ABCD");
    assert_eq!(
        header(&req, "host"),
        Some("lambda-alb-123578498.us-east-2.elb.amazonaws.com")
    );
    assert_eq!(header(&req, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&req, "x-forwarded-port"), Some("80"));
    assert_eq!(header(&req, "x-forwarded-for"), Some("72.12.164.125"));
    assert_eq!(header(&req, "connection"), None, "hop-by-hop");
    assert_eq!(header(&req, "x-imforwards"), Some("20"));
    assert_eq!(header(&req, "x-forwarded-prefix"), None);
    assert!(req.body().is_empty());
}

#[test]
fn alb_multi_value_request() {
    let req = tr(&alb_multi_event());
    assert_eq!(req.uri(), "/search?q=a%20b&tag=x&tag=y");
    assert_eq!(all(&req, "cookie"), ["a=1; b=2"]);
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
}

#[test]
fn alb_with_base_path() {
    let event = with(alb_event(), "/path", json!("/shop/lambda"));
    let req = translate_with(&event, Some("/shop"));
    assert_eq!(req.uri().path(), "/lambda");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/shop"));
}

// --- Method ---

#[test]
fn missing_method_names_the_field() {
    let mut event = rest_event();
    event.as_object_mut().unwrap().remove("httpMethod");
    let err = translate(
        &event,
        Source::RestApi,
        &Options {
            base_path: None,
            invocation: &invocation(),
        },
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Event);
    assert_eq!(
        err.message,
        "the API Gateway REST API event has no httpMethod"
    );

    let mut event = alb_event();
    event.as_object_mut().unwrap().remove("httpMethod");
    let err = tr_err(&event);
    assert_eq!(
        err.message,
        "the Application Load Balancer event has no httpMethod"
    );

    let mut event = http_v2_event();
    event["requestContext"]["http"]
        .as_object_mut()
        .unwrap()
        .remove("method");
    let err = tr_err(&event);
    assert_eq!(err.kind, ErrorKind::Event);
    assert!(err.message.contains("requestContext.http.method"), "{err}");

    let event = with(
        function_url_event(),
        "/requestContext/http/method",
        json!(null),
    );
    let err = tr_err(&event);
    assert!(
        err.message
            .contains("Function URL event has no requestContext.http.method"),
        "{err}"
    );
}

#[test]
fn invalid_or_lower_case_method() {
    let event = set(rest_event(), "httpMethod", json!("GE T"));
    let err = tr_err(&event);
    assert_eq!(err.kind, ErrorKind::Event);
    assert!(err.message.contains("invalid httpMethod"), "{err}");

    let event = set(rest_event(), "httpMethod", json!("delete"));
    assert_eq!(tr(&event).method(), Method::DELETE);
}

#[test]
fn non_object_event_is_an_event_error() {
    let inv = invocation();
    let err = translate(
        &json!([1]),
        Source::RestApi,
        &Options {
            base_path: None,
            invocation: &inv,
        },
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Event);
}

// --- Path encoding ---

#[test]
fn path_encoding_is_kept_as_sent() {
    for path in [
        "/users/test%2Balias@gmail.com",
        "/a%2Fb/c",
        "/files/%E2%9C%93.txt",
        "/a%20b",
        "/x;y=1/z:w@v!$&'()*+,=",
        "/~user/._-",
        "/a%25b",
        "/[v6]",
    ] {
        let event = with(rest_event(), "/path", json!(path));
        let event = with(event, "/requestContext/path", json!(path));
        assert_eq!(tr(&event).uri().path(), path);
        let event = with(function_url_event(), "/rawPath", json!(path));
        assert_eq!(tr(&event).uri().path(), path);
    }
}

#[test]
fn decoded_paths_are_made_valid() {
    let cases = [
        ("/a b", "/a%20b"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/\u{1f600}", "/%F0%9F%98%80"),
        ("/q?x=1", "/q%3Fx=1"),
        ("/frag#ment", "/frag%23ment"),
        ("/100%", "/100%25"),
        ("/100%zz", "/100%25zz"),
        ("/a%2", "/a%252"),
        ("/\"<>\\^`{|}", "/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("/tab\there", "/tab%09here"),
        ("/nl\nhere", "/nl%0Ahere"),
        ("/del\u{7f}", "/del%7F"),
    ];
    for (raw, expected) in cases {
        // HTTP API 2.0 is the source that decodes.
        let event = with(http_v2_event(), "/rawPath", json!(raw));
        let event = with(event, "/requestContext/stage", json!("$default"));
        assert_eq!(tr(&event).uri().path(), expected, "rawPath {raw:?}");
    }
}

#[test]
fn empty_or_relative_path() {
    let event = with(function_url_event(), "/rawPath", json!(""));
    assert_eq!(tr(&event).uri().path(), "/");
    let mut event = function_url_event();
    event.as_object_mut().unwrap().remove("rawPath");
    assert_eq!(tr(&event).uri().path(), "/");
    let event = with(alb_event(), "/path", json!("lambda"));
    assert_eq!(tr(&event).uri().path(), "/lambda");
    let event = with(alb_event(), "/path", json!(null));
    assert_eq!(tr(&event).uri().path(), "/");
}

#[test]
fn prefix_is_encoded_too() {
    let event = with(
        http_v2_event(),
        "/requestContext/stage",
        json!("st\u{e4}ge"),
    );
    let event = with(event, "/rawPath", json!("/st\u{e4}ge/x"));
    let req = tr(&event);
    assert_eq!(req.uri().path(), "/x");
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/st%C3%A4ge"));
}

// --- Query ---

fn rest_query(multi: Value) -> String {
    let event = set(rest_event(), "multiValueQueryStringParameters", multi);
    let event = set(event, "queryStringParameters", json!(null));
    tr(&event).uri().query().unwrap_or("").to_owned()
}

fn alb_query(multi: Value) -> String {
    let event = set(alb_multi_event(), "multiValueQueryStringParameters", multi);
    tr(&event).uri().query().unwrap_or("").to_owned()
}

#[test]
fn rest_query_is_re_encoded() {
    assert_eq!(rest_query(json!({"q": ["a+b"]})), "q=a%2Bb");
    assert_eq!(rest_query(json!({"q": ["a b"]})), "q=a%20b");
    assert_eq!(
        rest_query(json!({"q": ["a%2Bb"]})),
        "q=a%252Bb",
        "a literal %2B the client encoded as %252B"
    );
    assert_eq!(rest_query(json!({"q": ["x=y&z"]})), "q=x%3Dy%26z");
    assert_eq!(
        rest_query(json!({"q": ["caf\u{e9} \u{1f600}"]})),
        "q=caf%C3%A9%20%F0%9F%98%80"
    );
    assert_eq!(rest_query(json!({"a[b]": ["1"]})), "a%5Bb%5D=1");
    assert_eq!(rest_query(json!({"k": ["1", "2", "3"]})), "k=1&k=2&k=3");
    assert_eq!(rest_query(json!({"empty": [""]})), "empty=");
    assert_eq!(rest_query(json!({"flag": null})), "flag");
    assert_eq!(rest_query(json!({"flag": [null]})), "flag");
    assert_eq!(rest_query(json!({"": ["v"]})), "=v");
    assert_eq!(rest_query(json!({"safe": ["A-z_0.9~"]})), "safe=A-z_0.9~");
    assert_eq!(rest_query(json!({"n": [1, true]})), "n=1&n=true");
    assert_eq!(rest_query(json!({})), "");
}

#[test]
fn rest_query_keeps_the_event_order() {
    assert_eq!(
        rest_query(json!({"z": ["1"], "a": ["2"], "m": ["3", "4"]})),
        "z=1&a=2&m=3&m=4"
    );
}

#[test]
fn single_value_query_when_no_multi_value() {
    let event = set(rest_event(), "multiValueQueryStringParameters", json!(null));
    let event = set(event, "queryStringParameters", json!({"a": "1 2", "b": ""}));
    assert_eq!(tr(&event).uri().query(), Some("a=1%202&b="));
    // An empty multi-value map falls back too.
    let event = set(event, "multiValueQueryStringParameters", json!({}));
    assert_eq!(tr(&event).uri().query(), Some("a=1%202&b="));
    // Neither: no query, no "?".
    let event = set(event, "queryStringParameters", json!(null));
    assert_eq!(tr(&event).uri(), "/pets/42");
}

#[test]
fn alb_query_is_passed_as_received() {
    assert_eq!(alb_query(json!({"q": ["a%20b"]})), "q=a%20b");
    assert_eq!(alb_query(json!({"q": ["a+b"]})), "q=a+b");
    assert_eq!(alb_query(json!({"q": ["a%2Bb"]})), "q=a%2Bb");
    assert_eq!(alb_query(json!({"x": ["foo%3Dbar"]})), "x=foo%3Dbar");
    assert_eq!(
        alb_query(json!({"foo%5Ba%5D": ["foo%5B"]})),
        "foo%5Ba%5D=foo%5B"
    );
    assert_eq!(alb_query(json!({"k": ["1", "2"], "e": [""]})), "k=1&k=2&e=");
    assert_eq!(
        alb_query(json!({"p": ["100%"]})),
        "p=100%",
        "a bare % stands in a query"
    );
    // Bytes that can never stand in a query are still escaped.
    assert_eq!(alb_query(json!({"q": ["a b\u{e9}"]})), "q=a%20b%C3%A9");
    // Single-value mode.
    let event = set(
        alb_event(),
        "queryStringParameters",
        json!({"q": "%E2%9C%93", "t": "a+b"}),
    );
    assert_eq!(tr(&event).uri().query(), Some("q=%E2%9C%93&t=a+b"));
}

#[test]
fn raw_query_string_is_verbatim() {
    for raw in [
        "a=1&a=2&b=",
        "flag&x=1",
        "q=a+b&r=a%2Bb&s=a%20b",
        "u=%E2%9C%93&v=%F0%9F%98%80",
        "a[]=1&a[]=2&h[k]=v",
        "x=1;y=2",
        "p=100%",
        "q=?/:@!$'()*,;",
        "&&a=1&&",
        "=v",
    ] {
        let event = with(http_v2_event(), "/rawQueryString", json!(raw));
        assert_eq!(
            tr(&event).uri().query(),
            Some(raw),
            "rawQueryString {raw:?}"
        );
        let event = with(function_url_event(), "/rawQueryString", json!(raw));
        assert_eq!(
            tr(&event).uri().query(),
            Some(raw),
            "rawQueryString {raw:?}"
        );
    }
    let event = with(http_v2_event(), "/rawQueryString", json!(""));
    assert_eq!(tr(&event).uri(), "/my/path");
    let mut event = http_v2_event();
    event.as_object_mut().unwrap().remove("rawQueryString");
    assert_eq!(tr(&event).uri(), "/my/path");
    // Characters a client never sends raw are escaped rather than failing the request.
    let event = with(http_v2_event(), "/rawQueryString", json!("q=a b#c\u{e9}"));
    assert_eq!(tr(&event).uri().query(), Some("q=a%20b%23c%C3%A9"));
}

/// Form-style decoding without `+` as space: what the encoder promises to invert.
fn decode_query(query: &str) -> Vec<(String, Option<String>)> {
    if query.is_empty() {
        return Vec::new();
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), Some(decode(v))),
            None => (decode(pair), None),
        })
        .collect()
}

/// A small xorshift generator: enough to explore tricky strings without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn string(&mut self, alphabet: &[&str], max: u64) -> String {
        let len = self.next() % (max + 1);
        (0..len).map(|_| self.pick(alphabet)).collect()
    }
}

const TRICKY: [&str; 30] = [
    "a",
    "Z",
    "0",
    " ",
    "+",
    "%",
    "%2B",
    "%20",
    "&",
    "=",
    "?",
    "#",
    "/",
    ";",
    ",",
    "[",
    "]",
    "~",
    ".",
    "-",
    "_",
    "\u{e9}",
    "\u{1f600}",
    "\u{4e2d}",
    "\"",
    "'",
    "<",
    "\\",
    "\t",
    "*",
];

#[test]
fn rest_query_round_trips_tricky_values() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let count = rng.next() % 4;
        let mut params = Map::new();
        let mut expected = Vec::new();
        for _ in 0..count {
            let key = rng.string(&TRICKY, 5);
            if params.contains_key(&key) {
                continue;
            }
            let values: Vec<String> = (0..1 + rng.next() % 3)
                .map(|_| rng.string(&TRICKY, 6))
                .collect();
            for value in &values {
                expected.push((key.clone(), Some(value.clone())));
            }
            params.insert(key, json!(values));
        }
        let query = rest_query(Value::Object(params.clone()));
        assert_eq!(
            decode_query(&query),
            expected,
            "params {params:?} gave {query:?}"
        );
        assert!(query.bytes().all(|b| b.is_ascii_graphic()), "{query:?}");
    }
}

#[test]
fn alb_and_raw_queries_round_trip_encoded_strings() {
    // What a browser would send: each key and value percent-encoded. ALB hands them over as sent,
    // split on & and =; HTTP 2.0 hands over the whole string. Either way the app gets the bytes.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..300 {
        let pairs: Vec<(String, String)> = (0..1 + rng.next() % 4)
            .map(|_| {
                let enc = |s: String| utf8_percent_encode(&s, COMPONENT).to_string();
                (enc(rng.string(&TRICKY, 4)), enc(rng.string(&TRICKY, 6)))
            })
            .collect();
        let raw = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let event = with(http_v2_event(), "/rawQueryString", json!(raw));
        assert_eq!(tr(&event).uri().query().unwrap_or(""), raw);

        let mut multi = Map::new();
        let mut expected = Vec::new();
        for (k, v) in &pairs {
            if let Some(existing) = multi.get_mut(k) {
                // ALB groups a repeated key; the grouped order is what the app sees.
                existing.as_array_mut().unwrap().push(json!(v));
            } else {
                multi.insert(k.clone(), json!([v]));
            }
        }
        for (k, vs) in &multi {
            for v in vs.as_array().unwrap() {
                expected.push(format!("{k}={}", v.as_str().unwrap()));
            }
        }
        assert_eq!(alb_query(Value::Object(multi)), expected.join("&"));
    }
}

#[test]
fn escaped_paths_decode_back_to_the_original() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let hex_after_percent = |s: &str| {
        let b = s.as_bytes();
        (0..b.len()).any(|i| {
            b[i] == b'%'
                && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        })
    };
    let mut tested = 0;
    for _ in 0..500 {
        let raw = format!("/{}", rng.string(&TRICKY, 12));
        let escaped = escape(&raw, Part::Path);
        // Always a valid origin-form path with nothing after it.
        let uri: Uri = escaped
            .parse()
            .unwrap_or_else(|e| panic!("{raw:?} -> {escaped:?}: {e}"));
        assert_eq!(uri.path(), escaped);
        assert_eq!(uri.query(), None);
        // Idempotent: escaping an escaped path changes nothing.
        assert_eq!(escape(&escaped, Part::Path), escaped);
        if !hex_after_percent(&raw) {
            let decoded = percent_decode_str(&escaped).decode_utf8().unwrap();
            assert_eq!(decoded, raw);
            tested += 1;
        }
    }
    assert!(tested > 100);
}

#[test]
fn every_ascii_byte_makes_a_valid_uri() {
    for b in 0u8..=0x7f {
        let c = char::from(b);
        let event = with(http_v2_event(), "/rawPath", json!(format!("/a{c}b")));
        let event = with(event, "/rawQueryString", json!(format!("k=a{c}b")));
        let event = with(event, "/requestContext/stage", json!("$default"));
        let req = tr(&event);
        assert!(req.uri().path().starts_with("/a"), "byte {b:#x}");
        assert!(req.uri().query().unwrap().starts_with("k=a"), "byte {b:#x}");
    }
}

#[test]
fn overlong_uri_is_a_414_naming_the_part() {
    // 70 KB is past what a request URI can hold at all (the `http` crate stops short of 64 KB).
    let event = with(
        http_v2_event(),
        "/rawQueryString",
        json!("a".repeat(70_000)),
    );
    let err = tr_err(&event);
    assert_eq!(err.kind, ErrorKind::UriTooLong);
    assert_eq!(
        err.kind.refusal_status(),
        Some(http::StatusCode::URI_TOO_LONG)
    );
    assert!(err.message.contains("query string is 70000 bytes"), "{err}");
    assert!(err.message.len() < 400, "the message is truncated");

    let path = |len: usize| format!("/{}", "p".repeat(len - 1));
    let query = |len: usize| format!("k={}", "q".repeat(len - 2));
    let event = |path: &str, query: &str| {
        let event = with(http_v2_event(), "/rawPath", json!(path));
        let event = with(event, "/requestContext/stage", json!("$default"));
        with(event, "/rawQueryString", json!(query))
    };
    // At each limit the request passes; one byte past it, it is refused.
    let req = tr(&event(&path(MAX_PATH), ""));
    assert_eq!(req.uri().path().len(), MAX_PATH);
    let err = tr_err(&event(&path(MAX_PATH + 1), ""));
    assert_eq!(err.kind, ErrorKind::UriTooLong);
    assert!(err.message.contains("path is 8193 bytes"), "{err}");

    let req = tr(&event("/", &query(MAX_QUERY)));
    assert_eq!(req.uri().query().unwrap().len(), MAX_QUERY);
    let err = tr_err(&event("/", &query(MAX_QUERY + 1)));
    assert!(err.message.contains("query string is 10241 bytes"), "{err}");

    // Path and query each within theirs, but not together.
    let (p, q) = (path(4096), query(MAX_URI - 4096 - 1));
    assert_eq!(tr(&event(&p, &q)).uri().to_string().len(), MAX_URI);
    let q = query(MAX_URI - 4096);
    let err = tr_err(&event(&p, &q));
    assert_eq!(err.kind, ErrorKind::UriTooLong);
    assert!(
        err.message
            .contains("URI (path and query string) is 12289 bytes"),
        "{err}"
    );

    // Counted as the app's server reads them: after encoding, and without the prefix.
    let event = with(
        rest_event(),
        "/path",
        json!(format!("/{}", " ".repeat(3000))),
    );
    let event = with(event, "/requestContext/path", json!("/prod/x"));
    let err = tr_err(&event);
    assert!(err.message.contains("path is 9001 bytes"), "{err}");
    let event = with(rest_event(), "/path", json!(path(MAX_PATH)));
    let event = with(
        event,
        "/requestContext/path",
        json!(format!("/prod{}", path(MAX_PATH))),
    );
    let req = tr(&event);
    assert_eq!(header(&req, "x-forwarded-prefix"), Some("/prod"));
}

// --- Headers ---

#[test]
fn headers_merge_without_duplicates() {
    let event = set(
        rest_event(),
        "headers",
        json!({
            "Accept": "text/plain",
            "X-Only-Single": "s",
            "x-both": "single"
        }),
    );
    let event = set(
        event,
        "multiValueHeaders",
        json!({
            "accept": ["text/html", "application/json"],
            "X-Only-Multi": ["m1", "m2"],
            "X-Both": ["multi"]
        }),
    );
    let req = tr(&event);
    assert_eq!(all(&req, "accept"), ["text/html", "application/json"]);
    assert_eq!(all(&req, "x-only-single"), ["s"]);
    assert_eq!(all(&req, "x-only-multi"), ["m1", "m2"]);
    assert_eq!(all(&req, "x-both"), ["multi"]);
}

#[test]
fn headers_http_allows_pass_with_their_bytes() {
    let event = set(rest_event(), "multiValueHeaders", json!(null));
    let event = set(
        event,
        "headers",
        json!({
            "Good": "yes",
            "X-Null": null,
            "X-Number": 42,
            "X-Latin": "caf\u{e9}"
        }),
    );
    let req = tr(&event);
    assert_eq!(header(&req, "good"), Some("yes"));
    assert_eq!(header(&req, "x-null"), None);
    assert_eq!(header(&req, "x-number"), Some("42"));
    assert_eq!(
        req.headers().get("x-latin").unwrap().as_bytes(),
        "caf\u{e9}".as_bytes()
    );
}

#[test]
fn headers_http_forbids_are_bad_requests_naming_the_header() {
    for (name, value, expected) in [
        ("X-Newline", "a\r\nInjected: 1", "x-newline"),
        ("X-Lf", "a\nb", "x-lf"),
        ("X-Nul", "a\u{0}b", "x-nul"),
        ("Bad Name", "x", "Bad Name"),
        ("", "empty name", "\"\""),
    ] {
        for field in ["headers", "multiValueHeaders"] {
            let value = if field == "headers" {
                json!(value)
            } else {
                json!([value])
            };
            let event = set(
                set(rest_event(), "multiValueHeaders", json!(null)),
                "headers",
                json!({}),
            );
            let event = set(event, field, json!({ name: value }));
            let err = tr_err(&event);
            assert_eq!(
                err.kind,
                crate::ErrorKind::BadRequest,
                "{name:?} in {field}"
            );
            assert!(err.message.contains(expected), "{err}");
        }
    }
}

#[test]
fn hop_by_hop_headers_are_dropped() {
    let event = set(
        rest_event(),
        "multiValueHeaders",
        json!({
            "Connection": ["keep-alive, X-Custom-Hop"],
            "Keep-Alive": ["timeout=5"],
            "Proxy-Connection": ["keep-alive"],
            "TE": ["trailers"],
            "Trailer": ["Expires"],
            "Transfer-Encoding": ["chunked"],
            "Upgrade": ["websocket"],
            "X-Custom-Hop": ["1"],
            "Expect": ["100-continue"],
            "Content-Length": ["999"],
            "X-Kept": ["1"]
        }),
    );
    let event = set(event, "headers", json!(null));
    let req = tr(&event);
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-custom-hop",
        "expect",
    ] {
        assert_eq!(header(&req, name), None, "{name}");
    }
    assert_eq!(header(&req, "x-kept"), Some("1"));
    assert_eq!(
        header(&req, "content-length"),
        Some("14"),
        "from the body, not the event"
    );
}

#[test]
fn hop_by_hop_and_framing_headers_are_dropped_whatever_the_spelling() {
    let event = set(
        rest_event(),
        "multiValueHeaders",
        json!({
            "Connection": ["keep-alive, X_Listed_Hop, x-other-hop"],
            "Keep_Alive": ["timeout=5"],
            "Proxy_Connection": ["keep-alive"],
            "Transfer_Encoding": ["chunked"],
            "transfer-ENCODING": ["gzip"],
            "HTTP2_Settings": ["AAMAAABkAAQAAP__"],
            "X-Listed-Hop": ["1"],
            "X_Other_Hop": ["1"],
            "Content_Length": ["999"],
            "X-Kept": ["1"]
        }),
    );
    let event = set(event, "headers", json!(null));
    let req = tr(&event);
    let names: Vec<&str> = req.headers().keys().map(HeaderName::as_str).collect();
    for name in [
        "keep_alive",
        "proxy_connection",
        "transfer_encoding",
        "transfer-encoding",
        "http2_settings",
        "x-listed-hop",
        "x_other_hop",
        "content_length",
    ] {
        assert!(!names.contains(&name), "{name} reached the app: {names:?}");
    }
    assert_eq!(header(&req, "x-kept"), Some("1"));
    assert_eq!(all(&req, "content-length"), ["14"], "from the body only");
}

#[test]
fn of_two_names_the_app_reads_as_one_the_underscore_one_is_dropped() {
    let event = set(
        http_v2_event(),
        "headers",
        json!({
            "host": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "x-forwarded-for": "205.255.255.176",
            "x_forwarded_for": "10.0.0.1",
            "X-Custom": "dash",
            "X_Custom": "underscore",
            "x_a-b": "1",
            "x-a_b": "2",
            "X_Alone": "kept",
            // The event has no X-Forwarded-Proto nor X-Request-Id: megamode's defaults win.
            "X_Forwarded_Proto": "http",
            "X_Request_Id": "client"
        }),
    );
    let req = tr(&event);
    assert_eq!(all(&req, "x-forwarded-for"), ["205.255.255.176"]);
    assert_eq!(all(&req, "x-custom"), ["dash"]);
    assert_eq!(all(&req, "x-forwarded-proto"), ["https"]);
    assert_eq!(
        all(&req, "x-request-id"),
        ["8476a536-e9f4-11e8-9739-2dfe598c3fcd"]
    );
    // Nothing else the app would read under those keys; a name alone keeps its value.
    let underscored: Vec<&str> = req
        .headers()
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| name.contains('_'))
        .collect();
    assert_eq!(underscored, ["x_alone"]);
    assert_eq!(header(&req, "x_alone"), Some("kept"));
}

#[test]
fn owned_headers_replace_client_copies() {
    let event = set(
        rest_event(),
        "multiValueHeaders",
        json!({
            "X-Forwarded-Prefix": ["/evil"],
            "X-Amzn-Request-Context": ["{\"forged\":true}"],
            "X-Amzn-Lambda-Context": ["{\"forged\":true}"],
            "X-Request-Start": ["t=1"]
        }),
    );
    let event = set(event, "headers", json!({"x-forwarded-prefix": "/evil2"}));
    let event = with(event, "/requestContext/path", json!("/pets/42"));
    let req = tr(&event);
    assert_eq!(
        header(&req, "x-forwarded-prefix"),
        None,
        "no prefix here, and no forged one"
    );
    let context: Value =
        serde_json::from_str(header(&req, "x-amzn-request-context").unwrap()).unwrap();
    assert_eq!(context["requestId"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    let lambda: Value =
        serde_json::from_str(header(&req, "x-amzn-lambda-context").unwrap()).unwrap();
    assert_eq!(lambda["request_id"], "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
    assert_eq!(all(&req, "x-request-start").len(), 1);
    assert_ne!(header(&req, "x-request-start"), Some("t=1"));
}

/// Spellings of `name` (`x-forwarded-prefix`) with a `_` that a Rack server reads as it: all `_`
/// in each case, and `_` and `-` mixed.
fn env_spellings(name: &str) -> Vec<String> {
    let underscored = name.replace('-', "_");
    let title_case: Vec<String> = underscored
        .split('_')
        .map(|part| part[..1].to_ascii_uppercase() + &part[1..])
        .collect();
    let mixed: String = name
        .split('-')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_owned(),
            i if i % 2 == 1 => format!("_{part}"),
            _ => format!("-{part}"),
        })
        .collect();
    vec![
        underscored.clone(),
        underscored.to_ascii_uppercase(),
        title_case.join("_"),
        mixed.clone(),
        mixed.to_ascii_uppercase(),
    ]
}

/// Every sample event, each with the header maps its source sends.
fn every_source() -> Vec<(&'static str, Value)> {
    vec![
        ("REST", rest_event()),
        ("HTTP 1.0", http_v1_event()),
        ("HTTP 2.0", http_v2_event()),
        ("Function URL", function_url_event()),
        ("ALB", alb_event()),
        ("ALB multi-value", alb_multi_event()),
    ]
}

/// `event` with `name: value` added to each header map it has (`headers`, `multiValueHeaders`).
fn with_client_header(mut event: Value, name: &str, value: &str) -> Value {
    let object = event.as_object_mut().unwrap();
    if let Some(Value::Object(single)) = object.get_mut("headers") {
        single.insert(name.into(), json!(value));
    }
    if let Some(Value::Object(multi)) = object.get_mut("multiValueHeaders") {
        multi.insert(name.into(), json!([value]));
    }
    event
}

#[test]
fn a_clients_lifecycle_headers_never_reach_the_app() {
    for (source_name, event) in every_source() {
        let event = with_client_header(event, "X-Megamode-Lifecycle", "before-snapshot");
        let event = with_client_header(event, "X-Megamode-Lifecycle-Token", "guessed");
        let req = tr(&event);
        for name in ["x-megamode-lifecycle", "x-megamode-lifecycle-token"] {
            assert_eq!(header(&req, name), None, "{source_name}: {name}");
        }
    }
}

#[test]
fn owned_headers_in_any_spelling_never_reach_the_app_from_any_source() {
    // No trace id and no tenant: megamode sends neither, so a client's copy would be all the app
    // sees; Function URLs and ALB have no prefix, nor a REST API on a custom domain.
    let bare = Invocation::new(
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        Duration::from_secs(30),
    );
    let custom_domain = with(rest_event(), "/requestContext/path", json!("/pets/42"));
    for (source_name, event) in every_source()
        .into_iter()
        .chain([("REST on a custom domain", custom_domain)])
    {
        let EventKind::Http(source) = classify(&event).unwrap() else {
            panic!("{source_name} is not an HTTP event");
        };
        for owned in OWNED {
            for spelling in env_spellings(owned) {
                assert!(spelling.contains('_'), "{spelling}");
                let forged = format!("/forged-{spelling}");
                let event = with_client_header(event.clone(), &spelling, &forged);
                let options = Options {
                    base_path: None,
                    invocation: &bare,
                };
                let req = translate(&event, source, &options).unwrap();
                for (name, value) in req.headers() {
                    assert_ne!(
                        value.to_str().ok(),
                        Some(forged.as_str()),
                        "{source_name}: the client's {spelling} reached the app as {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_prefix_is_megamodes_whatever_the_spelling_and_case() {
    // The symptom: behind a Function URL the app would take this for its SCRIPT_NAME.
    for spelling in [
        "X_Forwarded_Prefix",
        "x_forwarded-prefix",
        "X-FORWARDED_PREFIX",
    ] {
        let event = with_client_header(function_url_event(), spelling, "/evil");
        let req = tr(&event);
        assert_eq!(header(&req, "x-forwarded-prefix"), None, "{spelling}");
        assert_eq!(
            header(&req, &spelling.to_ascii_lowercase()),
            None,
            "{spelling}"
        );
        // With a stage of its own, megamode's prefix is the only one.
        let event = with_client_header(http_v2_event(), spelling, "/evil");
        let req = tr(&event);
        let prefixes: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().replace('_', "-") == "x-forwarded-prefix")
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(prefixes, [("x-forwarded-prefix", "/dev")], "{spelling}");
    }
}

#[test]
fn owned_headers_values() {
    let req = tr(&http_v2_event());
    let start = header(&req, "x-request-start").unwrap();
    let ms: u128 = start.strip_prefix("t=").unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(now >= ms && now - ms < 60_000, "{start}");

    let context: Value =
        serde_json::from_str(header(&req, "x-amzn-request-context").unwrap()).unwrap();
    assert_eq!(context, http_v2_event()["requestContext"]);
    assert!(
        !header(&req, "x-amzn-request-context")
            .unwrap()
            .contains('\n'),
        "compact"
    );

    let lambda: Value =
        serde_json::from_str(header(&req, "x-amzn-lambda-context").unwrap()).unwrap();
    assert_eq!(lambda["env_config"]["function_name"], "my-function");
    assert_eq!(
        lambda["xray_trace_id"],
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    );
}

#[test]
fn request_context_with_unicode_is_ascii_json() {
    let event = with(
        http_v2_event(),
        "/requestContext/authorizer",
        json!({"jwt": {"claims": {"name": "Zo\u{eb} \u{1f600}", "quote": "a\"b"}}}),
    );
    let req = tr(&event);
    let raw = header(&req, "x-amzn-request-context").expect("visible ASCII only");
    assert!(raw.is_ascii());
    let context: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        context["authorizer"]["jwt"]["claims"]["name"],
        "Zo\u{eb} \u{1f600}"
    );
    assert_eq!(context["authorizer"]["jwt"]["claims"]["quote"], "a\"b");
}

#[test]
fn request_id_kept_when_the_client_sends_one() {
    let event = set(http_v2_event(), "headers", {
        let mut h = http_v2_event()["headers"].clone();
        h["X-Request-Id"] = json!("client-chosen-id");
        h
    });
    let req = tr(&event);
    assert_eq!(all(&req, "x-request-id"), ["client-chosen-id"]);

    let req = tr(&http_v2_event());
    assert_eq!(
        header(&req, "x-request-id"),
        Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd")
    );
}

#[test]
fn trace_id_is_lambdas_never_the_clients() {
    const LAMBDA: &str =
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1";
    let without = Invocation::new("id", Duration::from_secs(1));
    let translate_without = |event: &Value| {
        let EventKind::Http(source) = classify(event).unwrap() else {
            panic!("not an HTTP event");
        };
        let options = Options {
            base_path: None,
            invocation: &without,
        };
        translate(event, source, &options).unwrap()
    };
    // The samples that carry one in their headers (ALB, REST).
    for event in [alb_event(), rest_event()] {
        assert_ne!(
            event["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id")),
            None
        );
        assert_eq!(all(&tr(&event), "x-amzn-trace-id"), [LAMBDA]);
        // Without Lambda's, the client's still does not pass.
        assert_eq!(header(&translate_without(&event), "x-amzn-trace-id"), None);
    }
    // Whatever the spelling, in either map, repeated.
    let event = set(
        set(
            rest_event(),
            "headers",
            json!({"x-amzn-trace-id": "Root=forged-1"}),
        ),
        "multiValueHeaders",
        json!({"X-AMZN-TRACE-ID": ["Root=forged-2", "Root=forged-3"]}),
    );
    assert_eq!(all(&tr(&event), "x-amzn-trace-id"), [LAMBDA]);
    assert_eq!(
        all(&translate_without(&event), "x-amzn-trace-id"),
        Vec::<&str>::new()
    );
    let event = with(
        http_v2_event(),
        "/headers/x-amzn-trace-id",
        json!("Root=forged"),
    );
    assert_eq!(all(&tr(&event), "x-amzn-trace-id"), [LAMBDA]);
    let mut event = alb_event();
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-amzn-trace-id");
    assert_eq!(all(&tr(&event), "x-amzn-trace-id"), [LAMBDA]);
}

#[test]
fn forwarding_defaults_when_the_event_has_none() {
    let event = set(http_v2_event(), "headers", json!({}));
    let req = tr(&event);
    assert_eq!(
        header(&req, "host"),
        Some("r3pmxmplak.execute-api.us-east-2.amazonaws.com")
    );
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&req, "x-forwarded-port"), Some("443"));
    assert_eq!(header(&req, "x-forwarded-for"), Some("205.255.255.176"));

    let event = set(rest_event(), "headers", json!(null));
    let event = set(event, "multiValueHeaders", json!(null));
    let req = tr(&event);
    assert_eq!(
        header(&req, "host"),
        Some("abc123.execute-api.us-east-1.amazonaws.com")
    );
    assert_eq!(header(&req, "x-forwarded-for"), Some("203.0.113.7"));

    // ALB sends them, except to health checks; the request still gets a Host.
    let event = set(alb_event(), "headers", json!({}));
    let req = tr(&event);
    assert_eq!(header(&req, "host"), Some("localhost"));
    assert_eq!(header(&req, "x-forwarded-for"), None);
    assert_eq!(header(&req, "x-forwarded-proto"), Some("https"));
}

#[test]
fn every_request_has_a_host() {
    // An ALB health check, as AWS documents it: only a User-Agent, and no domain name.
    let health_check = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/lambda-target/abc"}},
        "httpMethod": "GET",
        "path": "/",
        "queryStringParameters": {},
        "headers": {"user-agent": "ELB-HealthChecker/2.0"},
        "body": "",
        "isBase64Encoded": false
    });
    let req = tr(&health_check);
    assert_eq!(all(&req, "host"), ["localhost"]);
    assert_eq!(header(&req, "user-agent"), Some("ELB-HealthChecker/2.0"));

    // The event's Host first, then the domain name, then localhost.
    let event = set(
        http_v2_event(),
        "headers",
        json!({"host": "www.example.com"}),
    );
    assert_eq!(all(&tr(&event), "host"), ["www.example.com"]);
    let event = set(http_v2_event(), "headers", json!({}));
    assert_eq!(
        all(&tr(&event), "host"),
        ["r3pmxmplak.execute-api.us-east-2.amazonaws.com"]
    );
    for domain in [json!(null), json!(""), json!("bad\nname")] {
        let event = with(event.clone(), "/requestContext/domainName", domain.clone());
        assert_eq!(all(&tr(&event), "host"), ["localhost"], "{domain}");
    }
    // Payload 1.0 and REST without headers.
    let event = set(rest_event(), "headers", json!(null));
    let event = set(event, "multiValueHeaders", json!(null));
    let event = set(event, "requestContext", json!({"path": "/pets/42"}));
    assert_eq!(all(&tr(&event), "host"), ["localhost"]);
}

#[test]
fn event_forwarding_headers_are_kept() {
    let event = with(http_v2_event(), "/headers/host", json!("www.example.com"));
    let event = with(
        event,
        "/headers/x-forwarded-for",
        json!("198.51.100.1, 10.0.0.1"),
    );
    let req = tr(&event);
    assert_eq!(header(&req, "host"), Some("www.example.com"));
    assert_eq!(
        header(&req, "x-forwarded-for"),
        Some("198.51.100.1, 10.0.0.1")
    );
}

#[test]
fn wrong_types_are_event_errors_naming_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            set(http_v2_event(), "rawPath", json!(123)),
            "rawPath must be a string, got 123",
        ),
        (
            set(rest_event(), "path", json!(["/a"])),
            "path must be a string, got an array",
        ),
        (
            set(rest_event(), "httpMethod", json!(1)),
            "httpMethod must be a string, got 1",
        ),
        (
            with(
                http_v2_event(),
                "/requestContext/http/method",
                json!({"GET": 1}),
            ),
            "requestContext.http.method must be a string, got an object",
        ),
        (
            with(http_v2_event(), "/requestContext/http", json!("GET")),
            "requestContext.http must be an object, got \"GET\"",
        ),
        (
            set(rest_event(), "requestContext", json!([])),
            "requestContext must be an object, got an array",
        ),
        (
            set(http_v2_event(), "rawQueryString", json!(5)),
            "rawQueryString must be a string, got 5",
        ),
        (
            set(http_v2_event(), "version", json!(2.0)),
            "version must be a string, got 2.0",
        ),
        (
            with(rest_event(), "/requestContext/stage", json!(1)),
            "requestContext.stage must be a string, got 1",
        ),
        (
            with(rest_event(), "/requestContext/path", json!(true)),
            "requestContext.path must be a string, got true",
        ),
        (
            with(http_v2_event(), "/requestContext/domainName", json!(7)),
            "requestContext.domainName must be a string, got 7",
        ),
        (
            with(http_v2_event(), "/requestContext/http/sourceIp", json!([1])),
            "requestContext.http.sourceIp must be a string, got an array",
        ),
        (
            with(rest_event(), "/requestContext/identity", json!("x")),
            "requestContext.identity must be an object, got \"x\"",
        ),
        (
            set(rest_event(), "headers", json!("Accept: */*")),
            "headers must be an object, got \"Accept: */*\"",
        ),
        (
            set(rest_event(), "multiValueHeaders", json!([])),
            "multiValueHeaders must be an object, got an array",
        ),
        (
            set(
                set(rest_event(), "multiValueHeaders", json!(null)),
                "headers",
                json!({"Accept": ["a"]}),
            ),
            "headers[\"Accept\"] must be a string, got an array",
        ),
        (
            set(
                rest_event(),
                "multiValueHeaders",
                json!({"Accept": {"a": 1}}),
            ),
            "multiValueHeaders[\"Accept\"] must be a string, got an object",
        ),
        (
            set(
                rest_event(),
                "multiValueHeaders",
                json!({"Accept": ["a", ["b"]]}),
            ),
            "multiValueHeaders[\"Accept\"][1] must be a string, got an array",
        ),
        (
            set(
                rest_event(),
                "multiValueQueryStringParameters",
                json!("a=1"),
            ),
            "multiValueQueryStringParameters must be an object, got \"a=1\"",
        ),
        (
            set(rest_event(), "queryStringParameters", json!([["a", "1"]])),
            "queryStringParameters must be an object, got an array",
        ),
        (
            set(
                set(rest_event(), "multiValueQueryStringParameters", json!(null)),
                "queryStringParameters",
                json!({"a": {"b": 1}}),
            ),
            "queryStringParameters[\"a\"] must be a string, got an object",
        ),
        (
            set(
                alb_multi_event(),
                "multiValueQueryStringParameters",
                json!({"a": ["1", {}]}),
            ),
            "multiValueQueryStringParameters[\"a\"][1] must be a string, got an object",
        ),
        (
            set(http_v2_event(), "cookies", json!("a=1")),
            "cookies must be a list of strings, got \"a=1\"",
        ),
        (
            set(http_v2_event(), "cookies", json!(["a=1", 2])),
            "cookies[1] must be a string, got 2",
        ),
        (
            set(rest_event(), "body", json!({"name": "Rex"})),
            "body must be a string, got an object",
        ),
        (
            set(rest_event(), "isBase64Encoded", json!("false")),
            "isBase64Encoded must be true or false, got \"false\"",
        ),
    ];
    for (event, expected) in cases {
        let err = tr_err(&event);
        assert_eq!(err.kind, ErrorKind::Event, "{expected}");
        assert_eq!(err.message, expected);
    }
}

#[test]
fn nulls_stand_for_absent_fields() {
    // As AWS sends them: REST has `"multiValueQueryStringParameters": null` and the like.
    let mut event = rest_event();
    for key in [
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
        "isBase64Encoded",
    ] {
        event = set(event, key, json!(null));
    }
    let event = with(event, "/requestContext/identity", json!(null));
    let event = with(event, "/requestContext/stage", json!(null));
    let req = tr(&event);
    assert_eq!(req.uri(), "/pets/42");
    assert!(req.body().is_empty());

    let event = set(http_v2_event(), "rawQueryString", json!(null));
    let event = set(event, "cookies", json!(null));
    let event = set(event, "version", json!(null));
    let event = with(event, "/requestContext/http/sourceIp", json!(null));
    let event = with(event, "/requestContext/domainName", json!(null));
    let req = tr(&event);
    assert_eq!(req.uri(), "/my/path");
    assert_eq!(header(&req, "cookie"), None);
    let event = set(http_v2_event(), "rawPath", json!(null));
    let event = with(event, "/requestContext/stage", json!("$default"));
    assert_eq!(
        tr(&event).uri(),
        "/?parameter1=value1&parameter1=value2&parameter2=value"
    );
    // Numbers and booleans in header and query values are their JSON text.
    let event = set(
        rest_event(),
        "multiValueHeaders",
        json!({"X-N": [1, true, null]}),
    );
    let event = set(
        event,
        "multiValueQueryStringParameters",
        json!({"n": [2.5, false]}),
    );
    let req = tr(&event);
    assert_eq!(all(&req, "x-n"), ["1", "true"]);
    assert_eq!(req.uri().query(), Some("n=2.5&n=false"));
}

fn many_headers(count: usize) -> Value {
    let headers: Map<String, Value> = (0..count)
        .map(|i| (format!("x-h{i}"), json!("v")))
        .collect();
    set(
        set(rest_event(), "multiValueHeaders", json!(null)),
        "headers",
        Value::Object(headers),
    )
}

#[test]
fn oversize_headers_are_a_431_naming_the_header() {
    let big = |len: usize| {
        set(
            http_v2_event(),
            "headers",
            json!({"x-big": "b".repeat(len), "host": "h"}),
        )
    };
    let req = tr(&big(MAX_HEADER_VALUE));
    assert_eq!(header(&req, "x-big").unwrap().len(), MAX_HEADER_VALUE);
    let err = tr_err(&big(MAX_HEADER_VALUE + 1));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert_eq!(
        err.kind.refusal_status(),
        Some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    assert!(err.message.contains("x-big is 81921 bytes"), "{err}");

    // A v2 cookie array is one Cookie header.
    let cookies: Vec<String> = (0..9)
        .map(|i| format!("c{i}={}", "v".repeat(10_000)))
        .collect();
    let err = tr_err(&set(http_v2_event(), "cookies", json!(cookies)));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert!(err.message.contains("header cookie is"), "{err}");

    // The whole head: each header within its limit, together past it.
    let headers: Map<String, Value> = (0..3)
        .map(|i| (format!("x-part{i}"), json!("p".repeat(40_000))))
        .collect();
    let err = tr_err(&set(http_v2_event(), "headers", Value::Object(headers)));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert!(err.message.contains("more than the 114688 bytes"), "{err}");
    assert!(err.message.contains("the largest is x-part"), "{err}");

    // Exactly at the limit, counted as the head goes on the wire.
    let filled = |a: usize, b: usize| {
        set(
            http_v2_event(),
            "headers",
            json!({"x-fill": "f".repeat(a), "x-fill2": "f".repeat(b)}),
        )
    };
    let req = tr(&filled(0, 0));
    let head: usize = req.method().as_str().len()
        + 1
        + req.uri().to_string().len()
        + " HTTP/1.1\r\n".len()
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
            .sum::<usize>()
        + 2;
    // X-Request-Start is the only header whose length could change between two calls, and only
    // in a few thousand years.
    let fill = MAX_HEAD - head;
    let req = tr(&filled(60_000, fill - 60_000));
    assert_eq!(header(&req, "x-fill2").unwrap().len(), fill - 60_000);
    let err = tr_err(&filled(60_000, fill - 60_000 + 1));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert!(err.message.contains("the largest is x-fill "), "{err}");

    // A long name: puma reads 256 bytes.
    let name = "x".repeat(MAX_HEADER_NAME);
    assert_eq!(
        header(
            &tr(&set(http_v2_event(), "headers", json!({&name: "1"}))),
            &name
        ),
        Some("1")
    );
    let name = "x".repeat(MAX_HEADER_NAME + 1);
    let err = tr_err(&set(http_v2_event(), "headers", json!({name: "1"})));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert!(err.message.contains("257 bytes"), "{err}");

    // Too many.
    let req = tr(&many_headers(MAX_HEADER_COUNT - 1));
    assert!(req.headers().len() >= MAX_HEADER_COUNT - 1);
    let err = tr_err(&many_headers(MAX_HEADER_COUNT + 1));
    assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
    assert!(err.message.contains("1000 megamode forwards"), "{err}");
    let values: Vec<&str> = vec!["v"; MAX_HEADER_COUNT + 1];
    let event = set(rest_event(), "multiValueHeaders", json!({"x-many": values}));
    assert_eq!(tr_err(&event).kind, ErrorKind::HeadersTooLarge);
    // A client's oversize copy of a header megamode owns is dropped, not counted.
    let event = with(
        http_v2_event(),
        "/headers/x-amzn-request-context",
        json!("c".repeat(MAX_HEADER_VALUE + 1)),
    );
    assert!(
        tr(&event)
            .headers()
            .get("x-amzn-request-context")
            .unwrap()
            .len()
            < 2000
    );
}

#[test]
fn a_large_request_context_is_capped_not_a_failure() {
    let claims: Map<String, Value> = (0..400)
        .map(|i| {
            (
                format!("claim{i}"),
                json!(format!("value {i} {}", "é".repeat(20))),
            )
        })
        .collect();
    let event = with(
        http_v2_event(),
        "/requestContext/authorizer",
        json!({"jwt": {"claims": claims, "scopes": ["a"]}}),
    );
    let req = tr(&event);
    let raw = header(&req, "x-amzn-request-context").unwrap();
    assert!(raw.len() <= MAX_REQUEST_CONTEXT, "{}", raw.len());
    let context: Value = serde_json::from_str(raw).unwrap();
    // Everything but the authorizer, which says why it is not there.
    let mut expected = http_v2_event()["requestContext"].clone();
    expected["authorizer"] = context["authorizer"].clone();
    assert_eq!(context, expected);
    let why = context["authorizer"]["omitted_by_megamode"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("over the 8192 bytes of X-Amzn-Request-Context"),
        "{why}"
    );
    let Some(Notice(notice)) = req.extensions().get() else {
        panic!("no notice");
    };
    assert!(
        notice.starts_with("X-Amzn-Request-Context: the authorizer is left out"),
        "{notice}"
    );

    // Within the cap: whole, and no notice.
    let event = with(
        http_v2_event(),
        "/requestContext/authorizer",
        json!({"lambda": {"user": "u"}}),
    );
    let req = tr(&event);
    let context: Value =
        serde_json::from_str(header(&req, "x-amzn-request-context").unwrap()).unwrap();
    assert_eq!(context["authorizer"]["lambda"]["user"], "u");
    assert_eq!(req.extensions().get::<Notice>(), None);

    // Too large even without the authorizer: no header, and a notice.
    let event = with(
        http_v2_event(),
        "/requestContext/other",
        json!("o".repeat(MAX_REQUEST_CONTEXT)),
    );
    let req = tr(&event);
    assert_eq!(header(&req, "x-amzn-request-context"), None);
    let Some(Notice(notice)) = req.extensions().get() else {
        panic!("no notice");
    };
    assert!(
        notice.starts_with("X-Amzn-Request-Context is left out"),
        "{notice}"
    );
}

#[test]
fn cookies_http_forbids_are_the_same_bad_request_as_headers() {
    for bad in ["b=2\r\nX-Injected: 1", "b=2\n", "b=\u{0}", "b=\u{7f}"] {
        let event = set(http_v2_event(), "cookies", json!(["a=1", bad, "c=3"]));
        let err = tr_err(&event);
        assert_eq!(err.kind, ErrorKind::BadRequest, "{bad:?}");
        assert_eq!(
            err.kind.refusal_status(),
            Some(http::StatusCode::BAD_REQUEST)
        );
        assert!(err.message.contains("cookies[1]"), "{err}");
        assert!(err.message.contains("CR, LF, NUL"), "{err}");
    }
    // Past ASCII and tabs are allowed in header values, so in cookies too (they were all dropped
    // when one had a byte a visible-ASCII check refused).
    let event = set(http_v2_event(), "cookies", json!(["a=caf\u{e9}", "b=1\t2"]));
    let req = tr(&event);
    assert_eq!(
        req.headers().get("cookie").unwrap().as_bytes(),
        "a=caf\u{e9}; b=1\t2".as_bytes()
    );
    // Null and empty entries are skipped.
    let event = set(http_v2_event(), "cookies", json!([null, "", "a=1"]));
    assert_eq!(all(&tr(&event), "cookie"), ["a=1"]);
}

#[test]
fn cookies() {
    // The v2 array wins over a stray cookie header.
    let event = with(http_v2_event(), "/headers/cookie", json!("stale=1"));
    let req = tr(&event);
    assert_eq!(all(&req, "cookie"), ["cookie1=one; cookie2=two"]);
    // An empty array leaves the header alone.
    let event = set(event, "cookies", json!([]));
    assert_eq!(all(&tr(&event), "cookie"), ["stale=1"]);
    // No cookies at all.
    let req = tr(&set(http_v2_event(), "cookies", json!(null)));
    assert_eq!(header(&req, "cookie"), None);
    // REST: a single cookie header passes as is; repeated ones are joined.
    let event = set(
        rest_event(),
        "multiValueHeaders",
        json!({"Cookie": ["a=1; b=2"]}),
    );
    assert_eq!(all(&tr(&event), "cookie"), ["a=1; b=2"]);
    let event = set(
        event,
        "multiValueHeaders",
        json!({"Cookie": ["a=1", "b=2"], "cookie": ["c=3"]}),
    );
    assert_eq!(all(&tr(&event), "cookie"), ["a=1; b=2; c=3"]);
}

// --- Body and Content-Length ---

#[test]
fn base64_request_body() {
    let png: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
    ];
    let event = with(
        function_url_event(),
        "/body",
        json!(base64::engine::general_purpose::STANDARD.encode(png)),
    );
    let event = set(event, "isBase64Encoded", json!(true));
    let req = tr(&event);
    assert_eq!(req.body().as_ref(), png);
    assert_eq!(header(&req, "content-length"), Some("12"));

    let event = set(event, "body", json!("%%%"));
    let err = tr_err(&event);
    assert_eq!(err.kind, ErrorKind::Event);
    assert!(err.message.contains("base64"), "{err}");
}

#[test]
fn content_length_for_empty_bodies() {
    for (method, expected) in [
        ("POST", Some("0")),
        ("PUT", Some("0")),
        ("PATCH", Some("0")),
        ("GET", None),
        ("DELETE", None),
        ("HEAD", None),
        ("OPTIONS", None),
    ] {
        let event = set(rest_event(), "httpMethod", json!(method));
        let event = set(event, "body", json!(null));
        assert_eq!(header(&tr(&event), "content-length"), expected, "{method}");
    }
    // A GET with a body still says how long it is.
    let event = set(rest_event(), "httpMethod", json!("GET"));
    assert_eq!(header(&tr(&event), "content-length"), Some("14"));
}

#[test]
fn ascii_json_escapes_non_ascii_only() {
    assert_eq!(ascii_json("{\"a\":1}"), "{\"a\":1}");
    assert_eq!(ascii_json("{\"a\":\"\u{e9}\"}"), "{\"a\":\"\\u00e9\"}");
    assert_eq!(ascii_json("\"\u{1f600}\""), "\"\\ud83d\\ude00\"");
    let value: Value = serde_json::from_str(&ascii_json("\"\u{1f600}\u{4e2d}\"")).unwrap();
    assert_eq!(value, json!("\u{1f600}\u{4e2d}"));
}

#[test]
fn tenant_id_is_the_runtime_apis_never_the_clients() {
    let forged = set(
        http_v2_event(),
        "headers",
        json!({"X-Amz-Tenant-Id": "tenant-forged", "accept": "*/*"}),
    );
    let EventKind::Http(source) = classify(&forged).unwrap() else {
        panic!("not an HTTP event");
    };
    let translate_for = |tenant: Option<&str>| {
        let mut inv = invocation();
        inv.tenant_id = tenant.map(str::to_owned);
        let options = Options {
            base_path: None,
            invocation: &inv,
        };
        translate(&forged, source, &options).unwrap()
    };
    assert_eq!(
        all(&translate_for(Some("tenant-42")), "x-amz-tenant-id"),
        ["tenant-42"]
    );
    // A function without tenants: the client's copy is still removed.
    assert_eq!(header(&translate_for(None), "x-amz-tenant-id"), None);
}
