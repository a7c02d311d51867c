//! A client of Lambda's Runtime API (`AWS_LAMBDA_RUNTIME_API`), over one kept-alive HTTP/1.1
//! connection: the next invocation, its response or error, and init errors, as AWS documents them
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), and SnapStart's restore and
//! restore error (<https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-custom.html>). Its calls run on the
//! engine's runtime, through the same connector as the proxy (`io`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::io;
use crate::stream::{self, Piece};

type Sender = SendRequest<Outgoing>;

const VERSION: &str = "2018-06-01";

/// One invocation from `/runtime/invocation/next`.
#[derive(Debug)]
pub struct Next {
    pub request_id: String,
    pub deadline_ms: u64,
    pub function_arn: Option<String>,
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Invocation-Id` (sent since July 2026), echoed on the response or error.
    pub invocation_id: Option<String>,
    /// `Lambda-Runtime-Aws-Tenant-Id`, for a multi-tenant function.
    pub tenant_id: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` and `Lambda-Runtime-Client-Context` (an invocation from
    /// the AWS Mobile SDK), as JSON; absent when empty or not JSON.
    pub identity: Option<Value>,
    pub client_context: Option<Value>,
    pub body: Bytes,
}

impl Next {
    /// The time left until the deadline Lambda gave.
    pub fn remaining(&self) -> Duration {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Duration::from_millis(self.deadline_ms.saturating_sub(now_ms))
    }
}

/// Lambda's error shape for `/invocation/{id}/error` and `/init/error`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "errorMessage")]
    message: &'a str,
    #[serde(rename = "errorType")]
    error_type: &'a str,
    #[serde(rename = "stackTrace")]
    stack_trace: [&'a str; 0],
}

pub struct RuntimeApi {
    address: String,
    sender: Option<Sender>,
}

impl RuntimeApi {
    /// `address` is `AWS_LAMBDA_RUNTIME_API`: `host:port`.
    pub fn new(address: &str) -> RuntimeApi {
        RuntimeApi {
            address: address.trim_start_matches("http://").to_string(),
            sender: None,
        }
    }

    /// Waits for the next invocation (as long as it takes).
    pub async fn next(&mut self) -> Result<Next> {
        let path = format!("/{VERSION}/runtime/invocation/next");
        let (status, headers, body) = self.call(Method::GET, &path, &[], Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(api_error(&path, status, &body));
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let json_header = |name: &str| {
            header(name)
                .filter(|v| !v.is_empty())
                .and_then(|v| serde_json::from_str(&v).ok())
        };
        let request_id = header("lambda-runtime-aws-request-id").ok_or_else(|| {
            failed("the Runtime API sent an invocation without Lambda-Runtime-Aws-Request-Id")
        })?;
        Ok(Next {
            request_id,
            deadline_ms: header("lambda-runtime-deadline-ms")
                .and_then(|d| d.parse().ok())
                .unwrap_or(u64::MAX),
            function_arn: header("lambda-runtime-invoked-function-arn"),
            trace_id: header("lambda-runtime-trace-id"),
            invocation_id: header("lambda-runtime-invocation-id"),
            tenant_id: header("lambda-runtime-aws-tenant-id"),
            identity: json_header("lambda-runtime-cognito-identity"),
            client_context: json_header("lambda-runtime-client-context"),
            body,
        })
    }

    /// Posts an invocation's result. A result Lambda refuses (over 6 MB: 413) is an `Oversize`
    /// error, for the caller to report as the invocation's error.
    pub async fn respond(&mut self, next: &Next, body: Vec<u8>) -> Result<Posted> {
        let path = format!("/{VERSION}/runtime/invocation/{}/response", next.request_id);
        let size = body.len();
        let headers = echo(next);
        let (status, _, answer) = self
            .call(Method::POST, &path, &headers, Bytes::from(body))
            .await?;
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Err(Error::new(
                ErrorKind::Oversize,
                format!(
                    "the response is {size} bytes, more than Lambda accepts (6 MB for a synchronous invocation)"
                ),
            )),
            other => posted(&path, other, &answer),
        }
    }

    /// Streams an invocation's HTTP response as its pieces arrive on `pieces`: the POST starts with
    /// the first one (the prelude), so when none comes (the engine failed before the app
    /// answered) nothing is posted and the caller reports the error instead: `Ok(None)`.
    pub async fn respond_streamed(
        &mut self,
        next: &Next,
        mut pieces: mpsc::Receiver<Piece>,
    ) -> Result<Option<Posted>> {
        let Some(first) = pieces.recv().await else {
            return Ok(None);
        };
        let path = format!("/{VERSION}/runtime/invocation/{}/response", next.request_id);
        let mut headers = echo(next);
        headers.extend([
            ("lambda-runtime-function-response-mode", "streaming".into()),
            ("content-type", stream::CONTENT_TYPE.into()),
            (
                "trailer",
                "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body".into(),
            ),
        ]);
        let body = Outgoing::Streamed {
            first: Some(first),
            rest: pieces,
            ended: false,
        };
        let request = request(Method::POST, &path, &self.address, &headers, body)?;
        let sender = self.connection().await?;
        let (status, _, answer) = exchange(sender, request, &path).await.inspect_err(|_| {
            self.sender = None;
        })?;
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(Error::new(
                ErrorKind::Oversize,
                format!(
                    "Lambda refused the streamed response as too large: {}",
                    String::from_utf8_lossy(&answer)
                ),
            ));
        }
        posted(&path, status, &answer).map(Some)
    }

    /// An invocation's error, of any type (one of megamode's, a Ruby handler's exception class).
    pub async fn invocation_error(
        &mut self,
        next: &Next,
        error_type: &str,
        message: &str,
    ) -> Result<Posted> {
        let path = format!("/{VERSION}/runtime/invocation/{}/error", next.request_id);
        self.post_error(&path, echo(next), error_type, message)
            .await
    }

    pub async fn init_error(&mut self, error_type: &str, message: &str) -> Result<()> {
        self.phase_error("init", error_type, message).await
    }

    /// SnapStart: the init (and its before-snapshot hooks) is over. Lambda takes the snapshot while
    /// this call waits, and answers it in an environment restored from it, however much later.
    pub async fn restore_next(&mut self) -> Result<()> {
        let path = format!("/{VERSION}/runtime/restore/next");
        let (status, _, body) = self.call(Method::GET, &path, &[], Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(api_error(&path, status, &body));
        }
        Ok(())
    }

    /// SnapStart: an after-restore hook failed; Lambda fails the restore.
    pub async fn restore_error(&mut self, error_type: &str, message: &str) -> Result<()> {
        self.phase_error("restore", error_type, message).await
    }

    /// The error of a phase that is not an invocation (`init`, `restore`): `/runtime/{phase}/error`.
    async fn phase_error(&mut self, phase: &str, error_type: &str, message: &str) -> Result<()> {
        let path = format!("/{VERSION}/runtime/{phase}/error");
        match self
            .post_error(&path, Vec::new(), error_type, message)
            .await?
        {
            Posted::Accepted => Ok(()),
            Posted::Late => Err(failed(format!(
                "the Runtime API answered {path} with 410 Gone"
            ))),
        }
    }

    async fn post_error(
        &mut self,
        path: &str,
        mut headers: Vec<(&'static str, String)>,
        error_type: &str,
        message: &str,
    ) -> Result<Posted> {
        let body = error_body(error_type, message);
        if error_type_header(error_type).is_some() {
            headers.push(("lambda-runtime-function-error-type", error_type.to_owned()));
        }
        let (status, _, answer) = self
            .call(Method::POST, path, &headers, Bytes::from(body))
            .await?;
        posted(path, status, &answer)
    }

    /// The kept-alive connection, or a new one when it was closed.
    async fn connection(&mut self) -> Result<&mut Sender> {
        let usable = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            self.sender = Some(connect(&self.address).await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| failed("no connection to the Runtime API"))
    }

    /// One request on the kept-alive connection; a connection found closed is replaced once.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        for attempt in 0..2 {
            let address = self.address.clone();
            let open = match &mut self.sender {
                Some(sender) if !sender.is_closed() => sender,
                sender => sender.insert(connect(&address).await?),
            };
            let request = request(
                method.clone(),
                path,
                &address,
                headers,
                Outgoing::Whole(Some(body.clone())),
            )?;
            if open.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            match open.send_request(request).await {
                Ok(response) => return answer(response, path).await,
                // Only a request that never reached the API is sent again.
                Err(e) if attempt == 0 && (e.is_canceled() || e.is_closed()) => self.sender = None,
                Err(e) => {
                    self.sender = None;
                    return Err(failed(format!(
                        "the Runtime API request {path} failed: {e}"
                    )));
                }
            }
        }
        Err(failed(format!(
            "the Runtime API at {} keeps closing the connection",
            self.address
        )))
    }
}

/// How Lambda took a response or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    Accepted,
    /// 410 Gone: the invocation had already ended (its deadline passed, or it was answered). The
    /// loop says so and goes on to the next one.
    Late,
}

fn posted(path: &str, status: StatusCode, answer: &[u8]) -> Result<Posted> {
    match status {
        StatusCode::ACCEPTED => Ok(Posted::Accepted),
        StatusCode::GONE => Ok(Posted::Late),
        other => Err(api_error(path, other, answer)),
    }
}

/// The headers that tie a response or an error to its invocation.
fn echo(next: &Next) -> Vec<(&'static str, String)> {
    next.invocation_id
        .iter()
        .map(|id| ("lambda-runtime-invocation-id", id.clone()))
        .collect()
}

fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        message,
        error_type,
        stack_trace: [],
    })
    .unwrap_or_default()
}

fn request(
    method: Method,
    path: &str,
    address: &str,
    headers: &[(&'static str, String)],
    body: Outgoing,
) -> Result<Request<Outgoing>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, address);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    request
        .body(body)
        .map_err(|e| failed(format!("cannot build a Runtime API request: {e}")))
}

/// Sends a streamed request once: its body cannot be sent again.
async fn exchange(
    sender: &mut Sender,
    request: Request<Outgoing>,
    path: &str,
) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
    match sender.send_request(request).await {
        Ok(response) => answer(response, path).await,
        Err(e) => Err(failed(format!(
            "the Runtime API request {path} failed: {e}"
        ))),
    }
}

async fn answer(
    response: http::Response<hyper::body::Incoming>,
    path: &str,
) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
    let (parts, incoming) = response.into_parts();
    let bytes = incoming
        .collect()
        .await
        .map_err(|e| failed(format!("the Runtime API's answer to {path} broke off: {e}")))?
        .to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

/// A request body to the Runtime API: a whole one (sent with its length), or a streamed response
/// (chunked), whose failure becomes the trailers AWS documents.
pub enum Outgoing {
    Whole(Option<Bytes>),
    Streamed {
        first: Option<Piece>,
        rest: mpsc::Receiver<Piece>,
        ended: bool,
    },
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Outgoing::Whole(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            Outgoing::Streamed { first, rest, ended } => {
                if *ended {
                    return Poll::Ready(None);
                }
                let piece = match first.take() {
                    Some(piece) => Some(piece),
                    None => match rest.poll_recv(cx) {
                        Poll::Ready(piece) => piece,
                        Poll::Pending => return Poll::Pending,
                    },
                };
                Poll::Ready(match piece {
                    Some(Piece::Data(data)) => Some(Ok(Frame::data(data))),
                    Some(Piece::Failed {
                        error_type,
                        message,
                    }) => {
                        *ended = true;
                        Some(Ok(Frame::trailers(trailers(&error_type, &message))))
                    }
                    None => None,
                })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Whole(body) => body.is_none(),
            Outgoing::Streamed { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outgoing::Whole(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
            Outgoing::Streamed { .. } => SizeHint::default(),
        }
    }
}

/// The `Lambda-Runtime-Function-Error-Type` header (or trailer) of an error of type `error_type`,
/// when it can be one. The type is the caller's (a `Host`'s name for an error's kind, a Ruby
/// handler's exception class), and may be any text: one a header cannot hold (a control
/// character) is left to the error body's `errorType`, which holds any text, rather than failing
/// the request or being replaced by a name of the core's.
fn error_type_header(error_type: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(error_type).ok()
}

/// The trailers of a streamed response that failed: the error's type, and Lambda's error shape as
/// base64 (a header value cannot hold every character a message can).
fn trailers(error_type: &str, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    let body = base64::engine::general_purpose::STANDARD.encode(error_body(error_type, message));
    if let Some(kind) = error_type_header(error_type) {
        trailers.insert("lambda-runtime-function-error-type", kind);
    }
    if let Ok(body) = HeaderValue::from_str(&body) {
        trailers.insert("lambda-runtime-function-error-body", body);
    }
    trailers
}

async fn connect(address: &str) -> Result<Sender> {
    let stream = io::connect_tcp(address).await.map_err(|e| {
        failed(format!(
            "cannot reach Lambda's Runtime API at {address} (AWS_LAMBDA_RUNTIME_API): {e}"
        ))
    })?;
    io::handshake(stream)
        .await
        .map_err(|e| failed(format!("cannot talk HTTP to the Runtime API: {e}")))
}

/// The Runtime API failed, or answered what it should not.
fn failed(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::RuntimeApi, message)
}

fn api_error(path: &str, status: StatusCode, body: &[u8]) -> Error {
    failed(format!(
        "the Runtime API answered {path} with {status}: {}",
        String::from_utf8_lossy(body)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::NO_DEADLINE;
    use crate::Invocation;

    fn next(deadline_ms: u64) -> Next {
        Next {
            request_id: "r".into(),
            deadline_ms,
            function_arn: None,
            trace_id: None,
            invocation_id: None,
            tenant_id: None,
            identity: None,
            client_context: None,
            body: Bytes::new(),
        }
    }

    #[test]
    fn an_error_type_that_cannot_be_a_header_is_in_the_body_only() {
        let typed = trailers("App.TimeoutError", "too slow");
        assert_eq!(
            typed["lambda-runtime-function-error-type"],
            "App.TimeoutError"
        );
        let untyped = trailers("Zu\nlangsam", "zu langsam");
        assert!(untyped.get("lambda-runtime-function-error-type").is_none());
        let body = base64::engine::general_purpose::STANDARD
            .decode(untyped["lambda-runtime-function-error-body"].as_bytes())
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errorType"], "Zu\nlangsam");
        assert_eq!(body["errorMessage"], "zu langsam");
    }

    #[test]
    fn any_deadline_the_runtime_api_sends_makes_an_invocation() {
        // No header (or one that is not a number) is u64::MAX: no deadline to speak of.
        let far = Invocation::new("r", next(u64::MAX).remaining());
        assert!(far.remaining() > NO_DEADLINE - Duration::from_secs(3600));
        // A deadline already past: none left.
        let past = Invocation::new("r", next(0).remaining());
        assert_eq!(past.remaining(), Duration::ZERO);
    }
}
