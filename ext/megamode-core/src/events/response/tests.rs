use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::*;

const ALL: [Source; 6] = [
    Source::RestApi,
    Source::HttpApiV1,
    Source::HttpApiV2,
    Source::FunctionUrl,
    Source::Alb { multi_value: false },
    Source::Alb { multi_value: true },
];

const PNG: [u8; 16] = [
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, b'I', b'H', b'D', b'R',
];

fn head(status: u16, headers: &[(&str, &[u8])]) -> http::response::Parts {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    builder.body(()).unwrap().into_parts().0
}

/// A typical Rails response: two cookies, a repeated non-cookie header, hop-by-hop noise.
fn rails_head() -> http::response::Parts {
    head(
        200,
        &[
            ("content-type", b"text/html; charset=utf-8"),
            (
                "set-cookie",
                b"_app_session=abc123; path=/; HttpOnly; SameSite=Lax",
            ),
            ("vary", b"Accept"),
            (
                "set-cookie",
                b"remember=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure",
            ),
            ("vary", b"Accept-Encoding"),
            ("x-request-id", b"8476a536"),
            ("connection", b"keep-alive"),
            ("keep-alive", b"timeout=5"),
            ("transfer-encoding", b"chunked"),
        ],
    )
}

const COOKIES: [&str; 2] = [
    "_app_session=abc123; path=/; HttpOnly; SameSite=Lax",
    "remember=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure",
];

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn body_text(body: Option<Body>) -> Option<String> {
    match body {
        Some(Body::Text(text)) => Some(text),
        Some(Body::Binary(bytes)) => Some(String::from_utf8(bytes).unwrap()),
        _ => None,
    }
}

// --- Shapes ---

#[test]
fn rest_and_http_v1_shape() {
    for source in [Source::RestApi, Source::HttpApiV1] {
        let out = render(source, &rails_head(), b"<h1>Hi</h1>");
        assert_eq!(
            keys(&out),
            ["statusCode", "multiValueHeaders", "body", "isBase64Encoded"]
        );
        assert_eq!(out["statusCode"], 200);
        assert_eq!(
            out["multiValueHeaders"],
            json!({
                "content-type": ["text/html; charset=utf-8"],
                "set-cookie": COOKIES,
                "vary": ["Accept", "Accept-Encoding"],
                "x-request-id": ["8476a536"]
            })
        );
        assert_eq!(out["body"], "<h1>Hi</h1>");
        assert_eq!(out["isBase64Encoded"], false);
        assert!(out.get("cookies").is_none(), "a REST API rejects cookies");
        assert!(out.get("headers").is_none());

        let aws: ApiGatewayProxyResponse = serde_json::from_value(out).unwrap();
        assert_eq!(aws.status_code, 200);
        let cookies: Vec<_> = aws
            .multi_value_headers
            .get_all("set-cookie")
            .iter()
            .collect();
        assert_eq!(cookies, COOKIES);
        assert_eq!(aws.multi_value_headers.get_all("vary").iter().count(), 2);
        assert_eq!(body_text(aws.body).as_deref(), Some("<h1>Hi</h1>"));
        assert!(!aws.is_base64_encoded);
    }
}

#[test]
fn http_v2_and_function_url_shape() {
    for source in [Source::HttpApiV2, Source::FunctionUrl] {
        let out = render(source, &rails_head(), b"<h1>Hi</h1>");
        assert_eq!(
            keys(&out),
            [
                "statusCode",
                "headers",
                "cookies",
                "body",
                "isBase64Encoded"
            ]
        );
        assert_eq!(
            out["headers"],
            json!({
                "content-type": "text/html; charset=utf-8",
                "vary": "Accept, Accept-Encoding",
                "x-request-id": "8476a536"
            })
        );
        assert_eq!(out["cookies"], json!(COOKIES));
        assert_eq!(out["body"], "<h1>Hi</h1>");
        assert_eq!(out["isBase64Encoded"], false);
    }

    let out = render(Source::HttpApiV2, &rails_head(), b"<h1>Hi</h1>");
    let aws: ApiGatewayV2httpResponse = serde_json::from_value(out).unwrap();
    assert_eq!(aws.status_code, 200);
    assert_eq!(aws.cookies, COOKIES);
    assert!(aws.headers.get("set-cookie").is_none());
    assert_eq!(aws.headers["vary"], "Accept, Accept-Encoding");
    assert_eq!(body_text(aws.body).as_deref(), Some("<h1>Hi</h1>"));

    let out = render(Source::FunctionUrl, &rails_head(), b"<h1>Hi</h1>");
    let aws: LambdaFunctionUrlResponse = serde_json::from_value(out).unwrap();
    assert_eq!(aws.status_code, 200);
    assert_eq!(aws.cookies, COOKIES);
    assert_eq!(aws.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(aws.body.as_deref(), Some("<h1>Hi</h1>"));
    assert!(!aws.is_base64_encoded);
}

#[test]
fn v2_cookies_is_present_even_when_empty() {
    let plain = head(204, &[]);
    for source in [Source::HttpApiV2, Source::FunctionUrl] {
        let out = render(source, &plain, b"");
        assert_eq!(out["cookies"], json!([]));
        assert_eq!(out["headers"], json!({}));
        assert_eq!(out["body"], "");
        assert_eq!(out["statusCode"], 204);
    }
    serde_json::from_value::<ApiGatewayV2httpResponse>(render(Source::HttpApiV2, &plain, b""))
        .unwrap();
    serde_json::from_value::<LambdaFunctionUrlResponse>(render(Source::FunctionUrl, &plain, b""))
        .unwrap();
}

#[test]
fn alb_multi_value_shape() {
    let out = render(Source::Alb { multi_value: true }, &rails_head(), b"ok");
    assert_eq!(
        keys(&out),
        [
            "statusCode",
            "statusDescription",
            "multiValueHeaders",
            "body",
            "isBase64Encoded"
        ]
    );
    assert_eq!(out["statusDescription"], "200 OK");
    assert_eq!(out["multiValueHeaders"]["set-cookie"], json!(COOKIES));
    assert_eq!(
        out["multiValueHeaders"]["vary"],
        json!(["Accept", "Accept-Encoding"])
    );

    let aws: AlbTargetGroupResponse = serde_json::from_value(out).unwrap();
    assert_eq!(aws.status_description.as_deref(), Some("200 OK"));
    let cookies: Vec<_> = aws
        .multi_value_headers
        .get_all("set-cookie")
        .iter()
        .collect();
    assert_eq!(cookies, COOKIES);
}

#[test]
fn alb_single_value_shape() {
    let out = render(Source::Alb { multi_value: false }, &rails_head(), b"ok");
    assert_eq!(
        keys(&out),
        [
            "statusCode",
            "statusDescription",
            "headers",
            "body",
            "isBase64Encoded"
        ]
    );
    assert_eq!(
        out["headers"],
        json!({
            "content-type": "text/html; charset=utf-8",
            "set-cookie": COOKIES[1],
            "vary": "Accept, Accept-Encoding",
            "x-request-id": "8476a536"
        })
    );
    let aws: AlbTargetGroupResponse = serde_json::from_value(out).unwrap();
    assert_eq!(aws.headers["set-cookie"], COOKIES[1]);
    assert_eq!(aws.status_code, 200);
}

#[test]
fn alb_status_descriptions() {
    for (status, description) in [
        (200, "200 OK"),
        (201, "201 Created"),
        (302, "302 Found"),
        (404, "404 Not Found"),
        (418, "418 I'm a teapot"),
        (502, "502 Bad Gateway"),
        (299, "299"),
    ] {
        let out = render(Source::Alb { multi_value: false }, &head(status, &[]), b"");
        assert_eq!(out["statusDescription"], description);
        assert_eq!(out["statusCode"], status);
    }
}

#[test]
fn status_codes_pass_through() {
    for status in [200, 201, 204, 301, 304, 400, 401, 422, 500, 503] {
        for source in ALL {
            let out = render(source, &head(status, &[]), b"");
            assert_eq!(out["statusCode"], status, "{source:?}");
        }
    }
}

#[test]
fn every_shape_parses_as_its_aws_type() {
    let heads = [
        rails_head(),
        head(200, &[("content-type", b"image/png")]),
        head(304, &[]),
        head(
            500,
            &[
                ("content-type", b"application/json"),
                ("set-cookie", b"a=1"),
            ],
        ),
    ];
    for head in &heads {
        for body in [&b""[..], &b"hello"[..], &PNG[..]] {
            for source in ALL {
                let out = render(source, head, body);
                let (status, b64) = match source {
                    Source::RestApi | Source::HttpApiV1 => {
                        let r: ApiGatewayProxyResponse = serde_json::from_value(out).unwrap();
                        (r.status_code, r.is_base64_encoded)
                    }
                    Source::HttpApiV2 => {
                        let r: ApiGatewayV2httpResponse = serde_json::from_value(out).unwrap();
                        (r.status_code, r.is_base64_encoded)
                    }
                    Source::FunctionUrl => {
                        let r: LambdaFunctionUrlResponse = serde_json::from_value(out).unwrap();
                        (r.status_code, r.is_base64_encoded)
                    }
                    Source::Alb { .. } => {
                        let r: AlbTargetGroupResponse = serde_json::from_value(out).unwrap();
                        (r.status_code, r.is_base64_encoded)
                    }
                };
                assert_eq!(status, i64::from(head.status.as_u16()));
                let binary_type = head
                    .headers
                    .get("content-type")
                    .is_some_and(|t| t == "image/png");
                let expected = !body.is_empty() && (body == PNG || binary_type);
                assert_eq!(b64, expected, "{source:?} {:?}", head.headers);
            }
        }
    }
}

// --- Set-Cookie, one and many ---

#[test]
fn single_set_cookie_per_source() {
    let one = head(200, &[("set-cookie", b"a=1; Path=/")]);
    for source in [
        Source::RestApi,
        Source::HttpApiV1,
        Source::Alb { multi_value: true },
    ] {
        let out = render(source, &one, b"");
        assert_eq!(
            out["multiValueHeaders"]["set-cookie"],
            json!(["a=1; Path=/"])
        );
    }
    for source in [Source::HttpApiV2, Source::FunctionUrl] {
        let out = render(source, &one, b"");
        assert_eq!(out["cookies"], json!(["a=1; Path=/"]));
        assert!(out["headers"].get("set-cookie").is_none());
    }
    let out = render(Source::Alb { multi_value: false }, &one, b"");
    assert_eq!(out["headers"]["set-cookie"], "a=1; Path=/");
}

#[test]
fn three_set_cookies_per_source() {
    let three = head(
        200,
        &[
            ("set-cookie", b"a=1"),
            ("set-cookie", b"b=2"),
            ("set-cookie", b"c=3, with comma"),
        ],
    );
    let all = json!(["a=1", "b=2", "c=3, with comma"]);
    for source in [
        Source::RestApi,
        Source::HttpApiV1,
        Source::Alb { multi_value: true },
    ] {
        assert_eq!(
            render(source, &three, b"")["multiValueHeaders"]["set-cookie"],
            all
        );
    }
    for source in [Source::HttpApiV2, Source::FunctionUrl] {
        assert_eq!(render(source, &three, b"")["cookies"], all);
    }
    assert_eq!(
        render(Source::Alb { multi_value: false }, &three, b"")["headers"]["set-cookie"],
        "c=3, with comma"
    );
}

// --- Headers ---

#[test]
fn hop_by_hop_response_headers_are_dropped() {
    let noisy = head(
        200,
        &[
            ("connection", b"keep-alive, x-hop"),
            ("keep-alive", b"timeout=5"),
            ("proxy-connection", b"keep-alive"),
            ("te", b"trailers"),
            ("trailer", b"expires"),
            ("transfer-encoding", b"chunked"),
            ("upgrade", b"h2c"),
            ("x-hop", b"1"),
            ("x-kept", b"1"),
            ("content-length", b"2"),
        ],
    );
    for source in ALL {
        let out = render(source, &noisy, b"ok");
        let headers = out
            .get("multiValueHeaders")
            .or_else(|| out.get("headers"))
            .unwrap();
        assert_eq!(keys(headers), ["x-kept", "content-length"], "{source:?}");
    }
}

#[test]
fn header_names_are_lower_case() {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        HeaderName::from_bytes(b"X-Powered-By").unwrap(),
        HeaderValue::from_static("Rack"),
    );
    let (head, ()) = response.into_parts();
    for source in ALL {
        let out = render(source, &head, b"");
        let headers = out
            .get("multiValueHeaders")
            .or_else(|| out.get("headers"))
            .unwrap();
        assert_eq!(keys(headers), ["x-powered-by"]);
    }
}

#[test]
fn non_utf8_header_values_are_read_as_latin1() {
    let latin = head(
        200,
        &[(
            "content-disposition",
            b"attachment; filename=\"caf\xe9.txt\"",
        )],
    );
    let out = render(Source::HttpApiV2, &latin, b"");
    assert_eq!(
        out["headers"]["content-disposition"],
        "attachment; filename=\"caf\u{e9}.txt\""
    );
    let utf8 = head(200, &[("x-name", "Zo\u{eb}".as_bytes())]);
    let out = render(Source::RestApi, &utf8, b"");
    assert_eq!(out["multiValueHeaders"]["x-name"], json!(["Zo\u{eb}"]));
}

// --- Bodies ---

#[test]
fn png_is_base64_everywhere() {
    let png = head(200, &[("content-type", b"image/png")]);
    for source in ALL {
        let out = render(source, &png, &PNG);
        assert_eq!(out["isBase64Encoded"], true, "{source:?}");
        assert_eq!(STANDARD.decode(out["body"].as_str().unwrap()).unwrap(), PNG);
    }
}

#[test]
fn gzip_is_base64_even_for_text() {
    let gz = head(
        200,
        &[
            ("content-type", b"application/json"),
            ("content-encoding", b"gzip"),
        ],
    );
    let bytes = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00,
    ];
    for source in ALL {
        let out = render(source, &gz, &bytes);
        assert_eq!(out["isBase64Encoded"], true);
        assert_eq!(
            STANDARD.decode(out["body"].as_str().unwrap()).unwrap(),
            bytes
        );
        // The encoding header goes along, so the client can decompress.
        let headers = out
            .get("multiValueHeaders")
            .or_else(|| out.get("headers"))
            .unwrap();
        assert!(headers.get("content-encoding").is_some());
    }
}

#[test]
fn non_utf8_text_is_base64() {
    let latin = head(200, &[("content-type", b"text/plain; charset=iso-8859-1")]);
    for source in ALL {
        let out = render(source, &latin, b"caf\xe9");
        assert_eq!(out["isBase64Encoded"], true);
        assert_eq!(
            STANDARD.decode(out["body"].as_str().unwrap()).unwrap(),
            b"caf\xe9"
        );
    }
}

#[test]
fn text_bodies_stay_text() {
    let json_head = head(200, &[("content-type", b"application/json; charset=utf-8")]);
    let body = "{\"name\":\"Zo\u{eb} \u{1f600}\",\"nl\":\"a\\nb\"}";
    for source in ALL {
        let out = render(source, &json_head, body.as_bytes());
        assert_eq!(out["isBase64Encoded"], false);
        assert_eq!(out["body"], body);
    }
    // No content type: UTF-8 is sent as text, anything else as base64.
    let bare = head(200, &[]);
    assert_eq!(render(Source::RestApi, &bare, b"plain")["body"], "plain");
    assert_eq!(
        render(Source::RestApi, &bare, b"\xff")["isBase64Encoded"],
        true
    );
}

#[test]
fn empty_body_is_an_empty_string() {
    let png = head(
        200,
        &[
            ("content-type", b"image/png"),
            ("content-encoding", b"gzip"),
        ],
    );
    for source in ALL {
        let out = render(source, &png, b"");
        assert_eq!(out["body"], "");
        assert_eq!(out["isBase64Encoded"], false);
    }
}

// --- Megamode's own responses ---

#[test]
fn error_response_in_each_shape() {
    for source in ALL {
        let out = error_response(source, StatusCode::BAD_GATEWAY, "the app is not running");
        assert_eq!(out["statusCode"], 502);
        assert_eq!(out["isBase64Encoded"], false);
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"error": "Bad Gateway", "message": "the app is not running"})
        );
        match source {
            Source::RestApi | Source::HttpApiV1 | Source::Alb { multi_value: true } => {
                assert_eq!(
                    out["multiValueHeaders"],
                    json!({"content-type": ["application/json"]})
                );
            }
            Source::HttpApiV2 | Source::FunctionUrl => {
                assert_eq!(out["headers"], json!({"content-type": "application/json"}));
                assert_eq!(out["cookies"], json!([]));
            }
            Source::Alb { multi_value: false } => {
                assert_eq!(out["headers"], json!({"content-type": "application/json"}));
            }
        }
        if let Source::Alb { .. } = source {
            assert_eq!(out["statusDescription"], "502 Bad Gateway");
        }
    }
}

#[test]
fn gateway_timeout_error_escapes_its_message() {
    let message = "no answer within 29.5 s: \"GET /slow\"\n";
    let out = error_response(Source::HttpApiV2, StatusCode::GATEWAY_TIMEOUT, message);
    assert_eq!(out["statusCode"], 504);
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "Gateway Timeout");
    assert_eq!(body["message"], message);
    serde_json::from_value::<ApiGatewayV2httpResponse>(out).unwrap();
}
