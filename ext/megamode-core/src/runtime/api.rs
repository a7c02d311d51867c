//! A client of Lambda's Runtime API (`AWS_LAMBDA_RUNTIME_API`), over one kept-alive HTTP/1.1
//! connection: the next invocation, its response or error, and init errors, as AWS documents them
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>). Its calls run on the
//! engine's runtime, through the same connector as the proxy (`io`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::io::{self, Sender};

const VERSION: &str = "2018-06-01";

/// One invocation from `/runtime/invocation/next`.
#[derive(Debug)]
pub struct Next {
    pub request_id: String,
    pub deadline_ms: u64,
    pub function_arn: Option<String>,
    pub trace_id: Option<String>,
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
        let (status, headers, body) = self.call(Method::GET, &path, None, Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(api_error(&path, status, &body));
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
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
            body,
        })
    }

    /// Posts an invocation's result. A result Lambda refuses (over 6 MB: 413) is an `Oversize`
    /// error, for the caller to report as the invocation's error.
    pub async fn respond(&mut self, request_id: &str, body: Vec<u8>) -> Result<()> {
        let path = format!("/{VERSION}/runtime/invocation/{request_id}/response");
        let size = body.len();
        let (status, _, answer) = self
            .call(Method::POST, &path, None, Bytes::from(body))
            .await?;
        match status {
            StatusCode::ACCEPTED => Ok(()),
            StatusCode::PAYLOAD_TOO_LARGE => Err(Error::new(
                ErrorKind::Oversize,
                format!(
                    "the response is {size} bytes, more than Lambda accepts (6 MB for a synchronous invocation)"
                ),
            )),
            other => Err(api_error(&path, other, &answer)),
        }
    }

    /// An invocation's error, of any type (one of megamode's, a Ruby handler's exception class).
    pub async fn invocation_error(
        &mut self,
        request_id: &str,
        error_type: &str,
        message: &str,
    ) -> Result<()> {
        let path = format!("/{VERSION}/runtime/invocation/{request_id}/error");
        self.post_error(&path, error_type, message).await
    }

    pub async fn init_error(&mut self, error_type: &str, message: &str) -> Result<()> {
        let path = format!("/{VERSION}/runtime/init/error");
        self.post_error(&path, error_type, message).await
    }

    async fn post_error(&mut self, path: &str, error_type: &str, message: &str) -> Result<()> {
        let body = serde_json::to_vec(&ErrorBody {
            message,
            error_type,
            stack_trace: [],
        })
        .unwrap_or_default();
        let header = ("lambda-runtime-function-error-type", error_type);
        let (status, _, answer) = self
            .call(Method::POST, path, Some(header), Bytes::from(body))
            .await?;
        if status == StatusCode::ACCEPTED {
            Ok(())
        } else {
            Err(api_error(path, status, &answer))
        }
    }

    /// One request on the kept-alive connection; a connection found closed is replaced once.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        header: Option<(&str, &str)>,
        body: Bytes,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        let address = &self.address;
        for attempt in 0..2 {
            let open = match &mut self.sender {
                Some(sender) if !sender.is_closed() => sender,
                sender => sender.insert(connect(address).await?),
            };
            let mut request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::HOST, address.as_str());
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| failed(format!("cannot build a Runtime API request: {e}")))?;
            if open.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            match open.send_request(request).await {
                Ok(response) => {
                    let (parts, incoming) = response.into_parts();
                    let bytes = incoming
                        .collect()
                        .await
                        .map_err(|e| {
                            failed(format!("the Runtime API's answer to {path} broke off: {e}"))
                        })?
                        .to_bytes();
                    return Ok((parts.status, parts.headers, bytes));
                }
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
            "the Runtime API at {address} keeps closing the connection"
        )))
    }
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
            body: Bytes::new(),
        }
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
