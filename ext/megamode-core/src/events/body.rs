//! Bodies in both directions: the event's `body` (maybe base64) into bytes for the app, and the
//! app's bytes into the `body`/`isBase64Encoded` pair the source reads.
//!
//! Response rule: the body goes out as plain text only when it is empty, or when all of these hold:
//! no `Content-Encoding` other than `identity`, a textual `Content-Type` (see [`is_text`]) or none
//! at all, and bytes that are valid UTF-8. Anything else is base64. A response without a
//! `Content-Type` is judged by its bytes alone: REST APIs hand a base64 body to the client
//! undecoded unless `binaryMediaTypes` matches, so base64 is kept for bodies that need it.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;
use serde_json::{Map, Value};

use super::wrong_type;
use crate::error::{Error, Result};

/// Hand-written and third-party events sometimes drop the `=` padding; the bytes are the same.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether a `Content-Type` names text that can travel as a JSON string: `text/*`, JSON, XML,
/// JavaScript, form data, YAML, GraphQL, and any `+json`/`+xml`/`+yaml` structured type (so
/// `image/svg+xml` and `application/problem+json` are text). Parameters are ignored.
pub fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    if kind.is_empty() || subtype.is_empty() {
        return false;
    }
    if kind == "text" {
        return true;
    }
    if ["+json", "+xml", "+yaml"]
        .iter()
        .any(|suffix| subtype.ends_with(suffix))
    {
        return true;
    }
    kind == "application"
        && matches!(
            subtype,
            "json"
                | "xml"
                | "javascript"
                | "ecmascript"
                | "x-javascript"
                | "x-ecmascript"
                | "x-www-form-urlencoded"
                | "graphql"
                | "x-ndjson"
                | "ndjson"
                | "jsonl"
                | "json-seq"
                | "yaml"
                | "x-yaml"
                | "toml"
                | "sql"
                | "csv"
                | "x-sh"
                | "x-httpd-php"
        )
}

/// The event's `body` as bytes: base64-decoded when `isBase64Encoded` is true, empty when absent.
pub(crate) fn request_body(event: &Map<String, Value>) -> Result<Bytes> {
    let base64 = match event.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(wrong_type("isBase64Encoded", "true or false", other)),
    };
    match event.get("body") {
        None | Some(Value::Null) => Ok(Bytes::new()),
        Some(Value::String(text)) if base64 => LENIENT
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|err| {
                Error::event(format!(
                    "the event's body is marked isBase64Encoded but is not valid base64: {err}"
                ))
            }),
        Some(Value::String(text)) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Some(other) => Err(wrong_type("body", "a string", other)),
    }
}

/// The response body as the source's `body` string, and whether that string is base64.
pub(crate) fn response_body(headers: &HeaderMap, body: &[u8]) -> (String, bool) {
    if body.is_empty() {
        return (String::new(), false);
    }
    if !is_encoded(headers) && has_textual_type(headers) {
        if let Ok(text) = std::str::from_utf8(body) {
            return (text.to_owned(), false);
        }
    }
    (STANDARD.encode(body), true)
}

fn is_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|coding| {
            let coding = coding.trim_ascii();
            !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
        })
    })
}

fn has_textual_type(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(is_text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn event(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn textual_content_types() {
        for ct in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/PLAIN",
            "text/csv",
            "text/event-stream",
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
            "application/problem+json",
            "application/ld+json",
            "application/xml",
            "application/atom+xml",
            "application/xhtml+xml",
            "image/svg+xml",
            "application/javascript",
            "application/x-javascript",
            "application/ecmascript",
            "application/x-www-form-urlencoded",
            "application/graphql",
            "application/x-ndjson",
            "application/yaml",
            "application/x-yaml",
            " text/plain ",
        ] {
            assert!(is_text(ct), "{ct} should be text");
        }
    }

    #[test]
    fn binary_content_types() {
        for ct in [
            "",
            "application/octet-stream",
            "image/png",
            "image/jpeg",
            "application/pdf",
            "application/zip",
            "application/gzip",
            "audio/mpeg",
            "video/mp4",
            "font/woff2",
            "multipart/form-data; boundary=x",
            "application/vnd.ms-excel",
            "application/protobuf",
            "application/msgpack",
            "text",
            "/json",
            "json",
            "application/",
        ] {
            assert!(!is_text(ct), "{ct:?} should be binary");
        }
    }

    #[test]
    fn request_body_plain_base64_and_missing() {
        assert_eq!(request_body(&event(json!({}))).unwrap(), Bytes::new());
        assert_eq!(
            request_body(&event(json!({"body": null, "isBase64Encoded": true}))).unwrap(),
            Bytes::new()
        );
        assert_eq!(
            request_body(&event(json!({"body": "héllo", "isBase64Encoded": false}))).unwrap(),
            Bytes::from("héllo")
        );
        assert_eq!(
            request_body(&event(json!({"body": "aGk=", "isBase64Encoded": true}))).unwrap(),
            Bytes::from("hi")
        );
        assert_eq!(
            request_body(&event(json!({"body": "aGk", "isBase64Encoded": true}))).unwrap(),
            Bytes::from("hi"),
            "missing padding is tolerated"
        );
        let png = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
        let body = STANDARD.encode(png);
        assert_eq!(
            request_body(&event(json!({"body": body, "isBase64Encoded": true}))).unwrap(),
            Bytes::copy_from_slice(&png)
        );
        // Not base64-flagged: the string is the body, even if it looks like base64.
        assert_eq!(
            request_body(&event(json!({"body": "aGk=", "isBase64Encoded": false}))).unwrap(),
            Bytes::from("aGk=")
        );
    }

    #[test]
    fn request_body_errors() {
        let err = request_body(&event(
            json!({"body": "not base64!", "isBase64Encoded": true}),
        ))
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Event);
        assert!(err.message.contains("not valid base64"), "{err}");
        let err = request_body(&event(json!({"body": {"a": 1}}))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Event);
        assert!(err.message.contains("an object"), "{err}");
        let err = request_body(&event(json!({"body": 5}))).unwrap_err();
        assert_eq!(err.message, "body must be a string, got 5");
        // `"true"` is not true: a string flag is a mistake to report, not a plain-text body.
        let err =
            request_body(&event(json!({"body": "aGk=", "isBase64Encoded": "true"}))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Event);
        assert_eq!(
            err.message,
            "isBase64Encoded must be true or false, got \"true\""
        );
        // AWS sends null for what a request does not have.
        let body = request_body(&event(json!({"body": null, "isBase64Encoded": null}))).unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn response_body_text() {
        assert_eq!(
            response_body(
                &headers(&[("content-type", "text/html")]),
                "<p>é</p>".as_bytes()
            ),
            ("<p>é</p>".to_owned(), false)
        );
        assert_eq!(
            response_body(
                &headers(&[
                    ("content-type", "application/json"),
                    ("content-encoding", "identity")
                ]),
                b"{}"
            ),
            ("{}".to_owned(), false)
        );
        assert_eq!(
            response_body(&headers(&[]), b"no type but utf-8"),
            ("no type but utf-8".to_owned(), false)
        );
    }

    #[test]
    fn response_body_empty_is_plain() {
        assert_eq!(
            response_body(&headers(&[("content-type", "image/png")]), b""),
            (String::new(), false)
        );
        assert_eq!(
            response_body(&headers(&[("content-encoding", "gzip")]), b""),
            (String::new(), false)
        );
    }

    #[test]
    fn response_body_binary() {
        let png = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let (body, b64) = response_body(&headers(&[("content-type", "image/png")]), &png);
        assert!(b64);
        assert_eq!(STANDARD.decode(body).unwrap(), png);

        // ASCII bytes with a binary type are still base64: the type decides.
        let (body, b64) = response_body(
            &headers(&[("content-type", "application/octet-stream")]),
            b"abc",
        );
        assert!(b64);
        assert_eq!(body, "YWJj");

        // Compressed text.
        let gzip = [0x1fu8, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
        let (body, b64) = response_body(
            &headers(&[("content-type", "text/html"), ("content-encoding", "gzip")]),
            &gzip,
        );
        assert!(b64);
        assert_eq!(STANDARD.decode(body).unwrap(), gzip);

        // Even if the compressed bytes happen to be valid UTF-8.
        let (_, b64) = response_body(
            &headers(&[("content-type", "text/plain"), ("content-encoding", "br")]),
            b"abc",
        );
        assert!(b64);

        // Text type, but not UTF-8 (latin-1 é).
        let (body, b64) = response_body(
            &headers(&[("content-type", "text/plain; charset=iso-8859-1")]),
            b"caf\xe9",
        );
        assert!(b64);
        assert_eq!(STANDARD.decode(body).unwrap(), b"caf\xe9");

        // No type and not UTF-8.
        let (_, b64) = response_body(&headers(&[]), b"\xff\xfe");
        assert!(b64);
    }
}
