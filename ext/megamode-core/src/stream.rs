//! Streamed responses (`MEGAMODE_INVOKE_MODE=response_stream`, native loop only): the app's answer
//! goes to Lambda as it arrives, in the form AWS documents for streaming HTTP integrations
//! (Function URLs in `RESPONSE_STREAM` mode, REST APIs with `responseTransferMode: STREAM`): a JSON
//! prelude with the status, headers and cookies, eight NUL bytes, then the body. An error after the
//! first byte can no longer change the status: it goes in the request's trailers.
//!
//! The engine reads the app's body into a [`Sink`]; the Runtime API client reads the other end of
//! its channel into the POST to Lambda. The channel holds a few chunks only: when Lambda takes the
//! body more slowly than the app sends it (past 6 MB Lambda slows to 2 MB/s), the sink stops taking
//! chunks, the proxy stops reading, and the app's server waits on its socket.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::response::Parts;
use http::StatusCode;
use serde_json::{Map, Value};
use tokio::sync::mpsc::{self, OwnedPermit};

use crate::config::Statuses;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{fit::EXCERPT, Source};
use crate::proxy::Collect;

/// The most a streamed response may be, prelude included: Lambda's limit for one streamed response.
pub const LIMIT: usize = 200 * 1024 * 1024;
/// What separates the prelude from the body.
pub const DELIMITER: [u8; 8] = [0; 8];
/// The content type of a streamed HTTP response to the Runtime API.
pub const CONTENT_TYPE: &str = "application/vnd.awslambda.http-integration-response";
/// Chunks in flight between the app and Lambda. Each is what one read from the app's socket gave
/// (at most hyper's read buffer), so this bounds the memory a streamed response takes.
const IN_FLIGHT: usize = 8;

/// One piece of a streamed response, on its way to the Runtime API.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    /// The response failed after its first byte: the trailers say why, and it ends.
    Failed {
        error_type: String,
        message: String,
    },
}

/// Whether responses to events of `source` can be streamed. HTTP APIs and ALBs take only a
/// buffered response.
pub fn can_stream(source: Source) -> bool {
    matches!(source, Source::FunctionUrl | Source::RestApi)
}

/// The channel between a [`Sink`] and the Runtime API client.
pub fn channel() -> (mpsc::Sender<Piece>, mpsc::Receiver<Piece>) {
    mpsc::channel(IN_FLIGHT)
}

/// The prelude for the app's answer `head`, the delimiter included: `statusCode`, `headers`
/// (repeated names comma-joined, as a Function URL takes them) and `cookies` (every `Set-Cookie`).
pub fn prelude(head: &Parts) -> Bytes {
    let rendered = crate::events::render(Source::FunctionUrl, head, b"");
    let mut prelude = Map::new();
    for key in ["statusCode", "headers", "cookies"] {
        if let Some(value) = rendered.get(key) {
            prelude.insert(key.into(), value.clone());
        }
    }
    let json = serde_json::to_vec(&Value::Object(prelude)).unwrap_or_default();
    let mut out = BytesMut::with_capacity(json.len() + DELIMITER.len());
    out.extend_from_slice(&json);
    out.extend_from_slice(&DELIMITER);
    out.freeze()
}

/// The `errorType` Lambda is given for an error of each kind (the caller's naming).
pub type ErrorTypes<'a> = &'a dyn Fn(ErrorKind) -> &'static str;

/// Takes a response as it arrives and passes it on to the Runtime API, within [`LIMIT`].
pub struct Sink<'a> {
    tx: mpsc::Sender<Piece>,
    permit: Option<OwnedPermit<Piece>>,
    error_type: ErrorTypes<'a>,
    head_request: bool,
    failing_on: Statuses,
    failed: Option<StatusCode>,
    excerpt: Vec<u8>,
    started: bool,
    /// The prelude's bytes, which count toward [`LIMIT`] too.
    prelude: usize,
    sent: usize,
}

impl<'a> Sink<'a> {
    pub fn new(tx: mpsc::Sender<Piece>, error_type: ErrorTypes<'a>) -> Sink<'a> {
        Sink {
            tx,
            permit: None,
            error_type,
            head_request: false,
            failing_on: Statuses::default(),
            failed: None,
            excerpt: Vec::new(),
            started: false,
            prelude: 0,
            sent: 0,
        }
    }

    /// The answer to a HEAD has no body, whatever its `Content-Length` says.
    pub fn answering(&mut self, method: &http::Method) {
        self.head_request = method == http::Method::HEAD;
    }

    /// Statuses that fail the invocation (`MEGAMODE_ERROR_STATUS`): their answer is not streamed,
    /// only read for an excerpt.
    pub fn failing_on(&mut self, statuses: &Statuses) {
        self.failing_on = statuses.clone();
    }

    /// The status of an answer that fails the invocation, and the start of its body.
    pub fn failed(&self) -> Option<(StatusCode, &[u8])> {
        self.failed.map(|status| (status, &self.excerpt[..]))
    }

    /// Whether the prelude has gone out: from then on the status is fixed, and a failure can only
    /// be reported in the trailers.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Body bytes passed on so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Ends a started response with `error` in the trailers.
    pub async fn fail(&mut self, error: &Error) {
        self.permit = None;
        let piece = Piece::Failed {
            error_type: (self.error_type)(error.kind).to_string(),
            message: error.message.clone(),
        };
        // A reader that is gone has nothing left to tell.
        let _ = self.tx.send(piece).await;
    }

    /// A whole response megamode answers itself (a 502, a 504): prelude and body at once.
    pub async fn whole(&mut self, head: &Parts, body: Bytes) -> Result<()> {
        self.ready().await?;
        self.send_prelude(head)?;
        if !body.is_empty() {
            self.ready().await?;
            self.sent += body.len();
            self.send(body)?;
        }
        Ok(())
    }

    fn send_prelude(&mut self, head: &Parts) -> Result<()> {
        let prelude = prelude(head);
        self.prelude = prelude.len();
        self.send(prelude)?;
        self.started = true;
        Ok(())
    }

    fn send(&mut self, data: Bytes) -> Result<()> {
        match self.permit.take() {
            Some(permit) => {
                permit.send(Piece::Data(data));
                Ok(())
            }
            None => self
                .tx
                .try_send(Piece::Data(data))
                .map_err(|_| reader_gone()),
        }
    }

    fn over_limit(&self, size: usize, declared: bool) -> Error {
        let size = if declared {
            format!("declares {size} bytes")
        } else {
            format!("passed {size} bytes (megamode stopped it there)")
        };
        Error::new(
            ErrorKind::Oversize,
            format!(
                "the app's streamed response {size}, over the {LIMIT} bytes (200 MB) Lambda streams \
                 for one response; send larger files from S3 or another store instead"
            ),
        )
    }
}

fn reader_gone() -> Error {
    Error::new(
        ErrorKind::RuntimeApi,
        "the Runtime API stopped reading the streamed response",
    )
}

impl Collect for Sink<'_> {
    async fn ready(&mut self) -> Result<()> {
        if self.permit.is_none() {
            let permit = self
                .tx
                .clone()
                .reserve_owned()
                .await
                .map_err(|_| reader_gone())?;
            self.permit = Some(permit);
        }
        Ok(())
    }

    fn head(&mut self, head: &Parts) -> Result<()> {
        if self.failing_on.contains(head.status.as_u16()) {
            self.failed = Some(head.status);
            return Ok(());
        }
        let status = head.status.as_u16();
        let bodiless = self.head_request || status < 200 || status == 204 || status == 304;
        if let Some(length) = declared_length(&head.headers).filter(|_| !bodiless) {
            if length > LIMIT {
                return Err(self.over_limit(length, true));
            }
        }
        self.send_prelude(head)
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        if self.failed.is_some() {
            let room = EXCERPT - self.excerpt.len().min(EXCERPT);
            self.excerpt
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            if self.excerpt.len() >= EXCERPT {
                // Enough for the message; the rest is not worth the wait.
                return Err(Error::new(ErrorKind::Oversize, "the excerpt is complete"));
            }
            return Ok(());
        }
        if self.prelude + self.sent + chunk.len() > LIMIT {
            return Err(self.over_limit(self.prelude + self.sent + chunk.len(), false));
        }
        self.sent += chunk.len();
        self.send(chunk)
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::block_on;

    fn head(status: u16, headers: &[(&str, &str)]) -> Parts {
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(()).unwrap().into_parts().0
    }

    fn data(piece: Piece) -> Bytes {
        match piece {
            Piece::Data(data) => data,
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn the_prelude_is_json_with_status_headers_and_cookies_then_eight_nuls() {
        let prelude = prelude(&head(
            201,
            &[
                ("content-type", "text/event-stream"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("vary", "accept"),
                ("vary", "cookie"),
                ("connection", "keep-alive"),
            ],
        ));
        let (json, delimiter) = prelude.split_at(prelude.len() - 8);
        assert_eq!(delimiter, DELIMITER);
        let json: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "statusCode": 201,
                "headers": {"content-type": "text/event-stream", "vary": "accept, cookie"},
                "cookies": ["a=1", "b=2"]
            })
        );
    }

    #[test]
    fn only_function_urls_and_rest_apis_stream() {
        assert!(can_stream(Source::FunctionUrl));
        assert!(can_stream(Source::RestApi));
        assert!(!can_stream(Source::HttpApiV1));
        assert!(!can_stream(Source::HttpApiV2));
        assert!(!can_stream(Source::Alb { multi_value: true }));
    }

    #[test]
    fn a_sink_waits_for_its_reader_and_passes_chunks_in_order() {
        block_on(async {
            let (tx, mut rx) = channel();
            let types = |_: ErrorKind| "App.ProxyError";
            let mut sink = Sink::new(tx, &types);
            sink.ready().await.unwrap();
            sink.head(&head(200, &[])).unwrap();
            for i in 0..IN_FLIGHT - 1 {
                sink.ready().await.unwrap();
                sink.chunk(Bytes::from(vec![i as u8; 3])).unwrap();
            }
            // The channel is full: the next chunk waits until the reader takes one.
            let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), sink.ready());
            assert!(waiting.await.is_err(), "a full channel took another chunk");
            assert!(data(rx.recv().await.unwrap()).ends_with(&DELIMITER));
            sink.ready().await.unwrap();
            sink.chunk(Bytes::from_static(b"last")).unwrap();
            for i in 0..IN_FLIGHT - 1 {
                assert_eq!(data(rx.recv().await.unwrap()), vec![i as u8; 3]);
            }
            assert_eq!(data(rx.recv().await.unwrap()), &b"last"[..]);
            assert_eq!(sink.sent(), 3 * (IN_FLIGHT - 1) + 4);
        });
    }

    #[test]
    fn a_failure_after_the_first_byte_becomes_a_typed_piece() {
        block_on(async {
            let (tx, mut rx) = channel();
            let types = |kind: ErrorKind| match kind {
                ErrorKind::Timeout => "App.TimeoutError",
                _ => "App.Error",
            };
            let mut sink = Sink::new(tx, &types);
            sink.ready().await.unwrap();
            sink.head(&head(200, &[])).unwrap();
            assert!(sink.started());
            sink.fail(&Error::new(ErrorKind::Timeout, "too slow")).await;
            drop(sink);
            rx.recv().await.unwrap();
            match rx.recv().await.unwrap() {
                Piece::Failed {
                    error_type,
                    message,
                } => {
                    assert_eq!(error_type, "App.TimeoutError");
                    assert_eq!(message, "too slow");
                }
                other => panic!("{other:?}"),
            }
            assert!(rx.recv().await.is_none());
        });
    }

    #[test]
    fn past_200_mb_is_refused_before_the_prelude_when_declared_and_cut_when_sent() {
        let (tx, _rx) = mpsc::channel(64);
        let types = |_: ErrorKind| "App.ProxyError";
        let mut sink = Sink::new(tx, &types);
        let big = (LIMIT + 1).to_string();
        let error = sink
            .head(&head(200, &[("content-length", &big)]))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Oversize);
        assert!(error.message.contains("200 MB"), "{}", error.message);
        assert!(!sink.started());
        // HEAD's Content-Length describes a body that never comes.
        sink.answering(&http::Method::HEAD);
        sink.head(&head(200, &[("content-length", &big)])).unwrap();

        let (tx, _rx) = mpsc::channel(64);
        let mut sink = Sink::new(tx, &types);
        sink.head(&head(200, &[])).unwrap();
        sink.sent = LIMIT - sink.prelude - 2;
        sink.chunk(Bytes::from_static(b"ab")).unwrap();
        let error = sink.chunk(Bytes::from_static(b"c")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Oversize);
        assert!(
            error.message.contains("stopped it there"),
            "{}",
            error.message
        );
    }
}
