//! Making a response fit what its source accepts. Lambda refuses a synchronous response over 6 MB
//! (1 MB behind an ALB), and the client then sees only an opaque error. A compressible response is
//! gzipped when the client accepts gzip; one that still does not fit becomes a 502 that says why.
//!
//! The body is read through a [`Collector`], which stops as soon as the response cannot fit: an app
//! that sends 300 MB, or never stops, must not take the function's memory with it.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderValue};
use http::response::Parts;
use http::StatusCode;
use serde_json::Value;

use super::{self as events, Source};
use crate::config::{Compress, Statuses};
use crate::error::{Error, ErrorKind, Result};
use crate::proxy::Collect;

/// How much larger than the source's limit a compressible body may be, when the client accepts
/// gzip: what gzip's fastest level can win back. HTML and JSON shrink five to ten times; a body
/// that needs more than this is not one to send through Lambda.
pub const GZIP_WIN_BACK: usize = 16;

/// A response too large for its source, even compressed where that was possible.
#[derive(Debug, PartialEq, Eq)]
pub struct Oversize {
    /// The size of the handler's result as Lambda would serialise it, or, when reading stopped
    /// early, how many bytes of the body had been read.
    pub size: usize,
    pub limit: usize,
    pub compressed: bool,
    /// Whether reading the body stopped at `size` bytes (so the whole is larger).
    pub cut: bool,
}

impl Oversize {
    pub fn message(&self, source: Source) -> String {
        let size = if self.cut {
            format!(
                "more than {} bytes (megamode stopped reading it there)",
                self.size
            )
        } else {
            format!("{} bytes in the shape {} takes", self.size, source.name())
        };
        format!(
            "the app's response is {size}{}, over the {} bytes Lambda accepts; send large files \
             from S3 or another store instead",
            if self.compressed { " even gzipped" } else { "" },
            self.limit
        )
    }
}

/// Reads a response's body for `source`: whole while it can fit, gzipped as it arrives once it is
/// too large for the source but compressible and the client accepts gzip, and not at all past what
/// could fit.
pub struct Collector {
    source: Source,
    accepts_gzip: bool,
    compress: Compress,
    can_gzip: bool,
    /// Whether the request was a HEAD, whose answer has no body whatever its headers say.
    head_request: bool,
    /// Statuses that make the invocation fail (`MEGAMODE_ERROR_STATUS`): their body is only
    /// read for an excerpt, however large, and never refused.
    failing_on: Statuses,
    failed: Option<StatusCode>,
    received: usize,
    body: Collected,
}

/// How much of the body of an answer that fails the invocation is kept, for its error message.
pub const EXCERPT: usize = 500;

enum Collected {
    Plain(Vec<u8>),
    Gzipped(GzEncoder<Vec<u8>>),
}

/// A body read by a [`Collector`].
pub struct Body {
    pub bytes: Bytes,
    /// Whether `bytes` is the app's body gzipped (the headers do not say so yet).
    pub gzipped: bool,
}

impl Collector {
    pub fn new(source: Source, accepts_gzip: bool, compress: Compress) -> Collector {
        Collector {
            source,
            accepts_gzip,
            compress,
            can_gzip: false,
            head_request: false,
            failing_on: Statuses::default(),
            failed: None,
            received: 0,
            body: Collected::Plain(Vec::new()),
        }
    }

    /// Tells the collector the request's method: the answer to a HEAD has no body, and its
    /// `Content-Length` is the length of the body a GET would have had.
    pub fn answering(mut self, method: &http::Method) -> Collector {
        self.head_request = method == http::Method::HEAD;
        self
    }

    /// Tells the collector which statuses fail the invocation (`MEGAMODE_ERROR_STATUS`).
    pub fn failing_on(mut self, statuses: &Statuses) -> Collector {
        self.failing_on = statuses.clone();
        self
    }

    /// The status of an answer that fails the invocation; the body is then its excerpt.
    pub fn failed(&self) -> Option<StatusCode> {
        self.failed
    }

    pub fn finish(self) -> Body {
        match self.body {
            Collected::Plain(bytes) => Body {
                bytes: Bytes::from(bytes),
                gzipped: false,
            },
            Collected::Gzipped(encoder) => Body {
                bytes: Bytes::from(encoder.finish().unwrap_or_default()),
                gzipped: true,
            },
        }
    }

    /// The most body bytes worth reading.
    fn max_read(&self) -> usize {
        let limit = self.source.response_limit();
        if self.can_gzip {
            limit.saturating_mul(GZIP_WIN_BACK)
        } else {
            limit
        }
    }

    fn oversize(&self, size: usize, cut: bool) -> Error {
        let oversize = Oversize {
            size,
            limit: self.source.response_limit(),
            compressed: matches!(self.body, Collected::Gzipped(_)),
            cut,
        };
        Error::new(ErrorKind::Oversize, oversize.message(self.source))
    }
}

impl Collect for Collector {
    fn head(&mut self, head: &Parts) -> Result<()> {
        if self.failing_on.contains(head.status.as_u16()) {
            self.failed = Some(head.status);
            return Ok(());
        }
        self.can_gzip = self.accepts_gzip
            && self.compress != Compress::Off
            && is_compressible_kind(&head.headers);
        // These answers carry no body (RFC 9110 6.4.1): a `Content-Length` there describes the
        // representation, not bytes that will come.
        let status = head.status.as_u16();
        if self.head_request || status < 200 || status == 204 || status == 304 {
            return Ok(());
        }
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(length) = declared {
            if length > self.max_read() {
                return Err(self.oversize(length, true));
            }
            if let Collected::Plain(body) = &mut self.body {
                // Bounded by the limit, not by what the header claims.
                body.reserve(length.min(self.source.response_limit()));
            }
        }
        Ok(())
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        if self.failed.is_some() {
            if let Collected::Plain(body) = &mut self.body {
                body.extend_from_slice(
                    &chunk[..chunk.len().min(EXCERPT - body.len().min(EXCERPT))],
                );
                if body.len() >= EXCERPT {
                    // Enough for the message; the rest is not worth the wait.
                    return Err(Error::new(ErrorKind::Oversize, "the excerpt is complete"));
                }
            }
            return Ok(());
        }
        self.received = self.received.saturating_add(chunk.len());
        if self.received > self.max_read() {
            return Err(self.oversize(self.received, true));
        }
        let limit = self.source.response_limit();
        match &mut self.body {
            Collected::Plain(body) => {
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    if !self.can_gzip {
                        return Err(self.oversize(self.received, true));
                    }
                    let mut encoder = encoder(body.len());
                    // Writing to a Vec cannot fail.
                    let _ = encoder.write_all(body);
                    self.body = Collected::Gzipped(encoder);
                }
            }
            Collected::Gzipped(encoder) => {
                let _ = encoder.write_all(&chunk);
                // Gzipped bytes go out base64-encoded: 4 characters for every 3 bytes.
                if encoder.get_ref().len() > limit / 4 * 3 {
                    return Err(self.oversize(self.received, true));
                }
            }
        }
        Ok(())
    }
}

/// The app's response in the shape `source` expects, gzipped when `compress` asks for it or when
/// that is what makes it fit.
pub fn fit(
    source: Source,
    mut head: Parts,
    body: Body,
    accepts_gzip: bool,
    compress: Compress,
) -> Result<Value, Oversize> {
    if body.gzipped {
        mark_gzipped(&mut head.headers, body.bytes.len());
        return rendered_within_limit(source, &head, &body.bytes, true);
    }
    let body = body.bytes;
    let can_gzip =
        accepts_gzip && compress != Compress::Off && is_compressible(&head.headers, &body);
    let eager = matches!(compress, Compress::Above(threshold) if body.len() > threshold);
    let (body, compressed) = if can_gzip && eager {
        (gzip(&mut head.headers, &body), true)
    } else {
        (body, false)
    };
    match rendered_within_limit(source, &head, &body, compressed) {
        Err(_) if can_gzip && !compressed => {
            let body = gzip(&mut head.headers, &body);
            rendered_within_limit(source, &head, &body, true)
        }
        result => result,
    }
}

/// The response rendered for `source`, or how far it is over the source's limit.
fn rendered_within_limit(
    source: Source,
    head: &Parts,
    body: &[u8],
    compressed: bool,
) -> Result<Value, Oversize> {
    let rendered = events::render(source, head, body);
    let size = payload_size(&rendered);
    let limit = source.response_limit();
    if size <= limit {
        return Ok(rendered);
    }
    Err(Oversize {
        size,
        limit,
        compressed,
        cut: false,
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
    !body.is_empty() && is_compressible_kind(headers)
}

/// Whether the headers describe a text body not encoded already.
fn is_compressible_kind(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(events::is_text)
}

fn gzip(headers: &mut HeaderMap, body: &[u8]) -> Bytes {
    let mut encoder = encoder(body.len());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    let compressed = encoder.finish().unwrap_or_default();
    mark_gzipped(headers, compressed.len());
    Bytes::from(compressed)
}

fn encoder(body_len: usize) -> GzEncoder<Vec<u8>> {
    // The fastest level: this runs while the client waits, and text still shrinks severalfold.
    GzEncoder::new(Vec::with_capacity(body_len / 4), Compression::fast())
}

fn mark_gzipped(headers: &mut HeaderMap, length: usize) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
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
    use http::Method;
    use std::io::Read;

    /// `fit` for a body read whole.
    fn fit(
        source: Source,
        head: Parts,
        body: Bytes,
        accepts_gzip: bool,
        compress: Compress,
    ) -> Result<Value, Oversize> {
        let body = Body {
            bytes: body,
            gzipped: false,
        };
        super::fit(source, head, body, accepts_gzip, compress)
    }

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

    /// Feeds `collector` the head and `chunk` until it refuses or `total` bytes went in; the bytes
    /// that went in.
    fn feed(collector: &mut Collector, head: &Parts, chunk: &Bytes, total: usize) -> Result<usize> {
        collector.head(head)?;
        let mut fed = 0;
        while fed < total {
            collector.chunk(chunk.clone())?;
            fed += chunk.len();
        }
        Ok(fed)
    }

    #[test]
    fn an_endless_body_is_read_no_further_than_the_source_accepts() {
        let chunk = Bytes::from(vec![0x89u8; 64 * 1024]);
        for (source, content_type) in [
            (Source::HttpApiV2, "image/png"),
            (Source::Alb { multi_value: true }, "image/png"),
        ] {
            let mut collector = Collector::new(source, true, Compress::Auto);
            let err = feed(&mut collector, &head(content_type), &chunk, usize::MAX).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Oversize);
            assert!(err.message.contains("stopped reading"), "{err}");
            let Collected::Plain(kept) = &collector.body else {
                panic!("binary is never gzipped")
            };
            assert!(kept.len() <= source.response_limit() + chunk.len());
        }
        // Text the client cannot take gzipped stops at the limit too.
        let text = html(64 * 1024);
        let mut collector = Collector::new(Source::RestApi, false, Compress::Auto);
        let err = feed(&mut collector, &head("text/html"), &text, usize::MAX).unwrap_err();
        assert!(err.message.contains("more than 6"), "{err}");
    }

    #[test]
    fn a_large_text_body_is_gzipped_as_it_arrives_and_fits() {
        let chunk = html(64 * 1024);
        let mut collector = Collector::new(Source::HttpApiV2, true, Compress::Auto);
        let fed = feed(&mut collector, &head("text/html"), &chunk, 20 * 1024 * 1024).unwrap();
        let body = collector.finish();
        assert!(body.gzipped);
        assert!(body.bytes.len() < 6 * 1024 * 1024);
        let out = super::fit(
            Source::HttpApiV2,
            head("text/html"),
            body,
            true,
            Compress::Auto,
        )
        .unwrap();
        assert_eq!(out["headers"]["content-encoding"], "gzip");
        let unzipped = gunzip(out["body"].as_str().unwrap());
        assert_eq!(unzipped.len(), fed);
        assert_eq!(&unzipped[..chunk.len()], &chunk[..]);
    }

    #[test]
    fn even_gzip_stops_at_what_it_could_win_back() {
        let chunk = Bytes::from(vec![b'a'; 1024 * 1024]);
        let alb = Source::Alb { multi_value: false };
        let mut collector = Collector::new(alb, true, Compress::Auto);
        let err = feed(&mut collector, &head("text/plain"), &chunk, usize::MAX).unwrap_err();
        assert!(err.message.contains("stopped reading"), "{err}");
        assert!(collector.received <= alb.response_limit() * GZIP_WIN_BACK + chunk.len());
    }

    #[test]
    fn a_declared_length_past_what_could_fit_is_refused_before_the_body() {
        let (mut parts, ()) = http::Response::builder()
            .header("content-type", "application/zip")
            .header("content-length", "314572800")
            .body(())
            .unwrap()
            .into_parts();
        let mut collector = Collector::new(Source::HttpApiV2, true, Compress::Auto);
        let err = collector.head(&parts).unwrap_err();
        assert!(err.message.contains("more than 314572800 bytes"), "{err}");
        // A claim of any size reserves no more than the limit.
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(u64::MAX));
        let mut collector = Collector::new(Source::HttpApiV2, true, Compress::Auto);
        assert!(collector.head(&parts).is_err());
    }

    #[test]
    fn a_declared_length_on_an_answer_without_a_body_is_no_reason_to_refuse() {
        // A HEAD answer, a 304 and a 204 describe a body they do not carry (RFC 9110 8.6): a HEAD
        // for a 10 MB page is a few hundred bytes.
        let answer = |status: u16| {
            let (parts, ()) = http::Response::builder()
                .status(status)
                .header("content-type", "application/zip")
                .header("content-length", "10485760")
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        let alb = Source::Alb { multi_value: false };
        let mut collector = Collector::new(alb, false, Compress::Auto).answering(&Method::HEAD);
        collector.head(&answer(200)).unwrap();
        let out = super::fit(alb, answer(200), collector.finish(), false, Compress::Auto).unwrap();
        assert_eq!(out["statusCode"], 200);
        assert_eq!(out["headers"]["content-length"], "10485760");
        for status in [204, 304] {
            let mut collector = Collector::new(alb, false, Compress::Auto).answering(&Method::GET);
            collector.head(&answer(status)).unwrap();
        }
        // A GET's 200 still is refused before its body.
        let mut collector = Collector::new(alb, false, Compress::Auto).answering(&Method::GET);
        assert!(collector.head(&answer(200)).is_err());
    }

    #[test]
    fn an_answer_that_fails_the_invocation_is_read_for_its_excerpt_only_however_large() {
        let statuses = crate::config::Config::from_lookup(|name| match name {
            "MEGAMODE_APP_ROOT" => Some("/x".to_string()),
            "MEGAMODE_ERROR_STATUS" => Some("500".to_string()),
            _ => None,
        })
        .unwrap()
        .error_statuses;
        let (mut parts, ()) = http::Response::builder()
            .status(500)
            .header("content-type", "text/html")
            .header("content-length", "314572800")
            .body(())
            .unwrap()
            .into_parts();
        let mut collector =
            Collector::new(Source::HttpApiV2, true, Compress::Auto).failing_on(&statuses);
        let err = feed(&mut collector, &parts, &html(64 * 1024), usize::MAX).unwrap_err();
        assert_eq!(collector.failed(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(err.message.contains("excerpt"), "{err}");
        let body = collector.finish();
        assert!(!body.gzipped);
        assert_eq!(body.bytes.len(), EXCERPT);
        assert!(body.bytes.starts_with(b"<p>megamode</p>"));
        // Other statuses are read as before.
        parts.status = StatusCode::OK;
        let mut collector =
            Collector::new(Source::HttpApiV2, true, Compress::Auto).failing_on(&statuses);
        assert!(collector.head(&parts).is_err());
        assert_eq!(collector.failed(), None);
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
