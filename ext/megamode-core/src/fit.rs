//! Making a response fit what its source accepts. Lambda refuses a synchronous response over 6 MB
//! (1 MB behind an ALB), and the client then sees only an opaque error. A compressible response is
//! gzipped when the client accepts gzip; one that still does not fit becomes a 502 that says why.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};
use http::response::Parts;
use serde_json::Value;

use crate::config::Compress;
use crate::events::{self, Source};

/// A response too large for its source, even compressed where that was possible.
#[derive(Debug, PartialEq, Eq)]
pub struct Oversize {
    /// The size of the handler's result as Lambda would serialise it.
    pub size: usize,
    pub limit: usize,
    pub compressed: bool,
}

impl Oversize {
    pub fn message(&self, source: Source) -> String {
        format!(
            "the app's response is {} bytes in the shape {} takes{}, over the {} bytes Lambda \
             accepts; send large files from S3 or another store instead",
            self.size,
            source.name(),
            if self.compressed { " even gzipped" } else { "" },
            self.limit
        )
    }
}

/// The app's response in the shape `source` expects, gzipped when `compress` asks for it or when
/// that is what makes it fit.
pub fn fit(
    source: Source,
    mut head: Parts,
    body: Bytes,
    accepts_gzip: bool,
    compress: Compress,
) -> Result<Value, Oversize> {
    let can_gzip =
        accepts_gzip && compress != Compress::Off && is_compressible(&head.headers, &body);
    let eager = matches!(compress, Compress::Above(threshold) if body.len() > threshold);
    let (body, compressed) = if can_gzip && eager {
        (gzip(&mut head.headers, &body), true)
    } else {
        (body, false)
    };
    let rendered = events::render(source, &head, &body);
    let limit = source.response_limit();
    let size = payload_size(&rendered);
    if size <= limit {
        return Ok(rendered);
    }
    if can_gzip && !compressed {
        let body = gzip(&mut head.headers, &body);
        let rendered = events::render(source, &head, &body);
        let size = payload_size(&rendered);
        if size <= limit {
            return Ok(rendered);
        }
        return Err(Oversize {
            size,
            limit,
            compressed: true,
        });
    }
    Err(Oversize {
        size,
        limit,
        compressed,
    })
}

/// Whether the request's `Accept-Encoding` allows gzip (`gzip` or `*`, with a q-value above zero).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
}

/// Text-like bodies that are not encoded already: images, archives and video are compressed by
/// their own formats, and gzip would only cost time.
fn is_compressible(headers: &HeaderMap, body: &[u8]) -> bool {
    if body.is_empty() || headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(events::is_text)
}

fn gzip(headers: &mut HeaderMap, body: &[u8]) -> Bytes {
    // The fastest level: this runs while the client waits, and text still shrinks severalfold.
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    let compressed = encoder.finish().unwrap_or_default();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(compressed.len()));
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    Bytes::from(compressed)
}

/// The length of `value` as JSON, counted without building the text.
fn payload_size(value: &Value) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn head(content_type: &str) -> Parts {
        let (head, ()) = http::Response::builder()
            .status(200)
            .header("content-type", content_type)
            .body(())
            .unwrap()
            .into_parts();
        head
    }

    fn gunzip(base64: &str) -> Vec<u8> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .unwrap();
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
        out
    }

    fn html(size: usize) -> Bytes {
        Bytes::from("<p>megamode</p>\n".repeat(size / 16 + 1))
    }

    #[test]
    fn a_response_that_fits_is_left_alone() {
        let out = fit(
            Source::HttpApiV2,
            head("text/html"),
            html(10_000),
            true,
            Compress::Auto,
        )
        .unwrap();
        assert_eq!(out["isBase64Encoded"], false);
        assert!(out["headers"].get("content-encoding").is_none());
    }

    #[test]
    fn an_oversize_text_response_is_gzipped_when_the_client_accepts_it() {
        let body = html(2 * 1024 * 1024);
        let alb = Source::Alb { multi_value: false };
        let out = fit(alb, head("text/html"), body.clone(), true, Compress::Auto).unwrap();
        assert_eq!(out["isBase64Encoded"], true);
        assert_eq!(out["headers"]["content-encoding"], "gzip");
        assert_eq!(out["headers"]["vary"], "accept-encoding");
        assert_eq!(gunzip(out["body"].as_str().unwrap()), body.to_vec());
    }

    #[test]
    fn an_oversize_response_that_cannot_be_compressed_is_refused_with_its_size() {
        let body = html(2 * 1024 * 1024);
        let alb = Source::Alb { multi_value: true };
        for (accepts, compress) in [(false, Compress::Auto), (true, Compress::Off)] {
            let err = fit(alb, head("text/html"), body.clone(), accepts, compress).unwrap_err();
            assert_eq!(err.limit, 1024 * 1024);
            assert!(err.size > body.len(), "{err:?}");
            assert!(!err.compressed);
            assert!(
                err.message(alb).contains("over the 1048576 bytes"),
                "{}",
                err.message(alb)
            );
        }
        let png = Bytes::from(vec![0x89u8; 5 * 1024 * 1024]);
        let err = fit(
            Source::RestApi,
            head("image/png"),
            png,
            true,
            Compress::Auto,
        )
        .unwrap_err();
        assert!(err.size > 6 * 1024 * 1024, "base64 counts: {err:?}");
    }

    #[test]
    fn a_size_threshold_compresses_smaller_responses_too() {
        let body = html(4096);
        let out = fit(
            Source::HttpApiV2,
            head("application/json"),
            body.clone(),
            true,
            Compress::Above(1024),
        )
        .unwrap();
        assert_eq!(out["headers"]["content-encoding"], "gzip");
        assert_eq!(gunzip(out["body"].as_str().unwrap()), body.to_vec());
        let out = fit(
            Source::HttpApiV2,
            head("application/json"),
            body,
            false,
            Compress::Above(1024),
        )
        .unwrap();
        assert!(out["headers"].get("content-encoding").is_none());
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(accepts("gzip, deflate, br"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
