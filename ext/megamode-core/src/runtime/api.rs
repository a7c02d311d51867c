//! A client of Lambda's Runtime API (`AWS_LAMBDA_RUNTIME_API`), over one kept-alive HTTP/1.1
//! connection: the next invocation, its response or error, and init errors, as AWS documents them
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::engine::Cancel;
use crate::error::{Error, ErrorKind, Result};

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
pub struct ErrorBody<'a> {
    #[serde(rename = "errorMessage")]
    pub message: &'a str,
    #[serde(rename = "errorType")]
    pub kind: &'a str,
    #[serde(rename = "stackTrace")]
    pub stack_trace: [&'a str; 0],
}

/// `Megamode::<Class>` for an error, as `errorType`.
pub fn error_type(error: &Error) -> String {
    format!("Megamode::{}", error.kind.class_name())
}

pub struct RuntimeApi {
    address: String,
    runtime: tokio::runtime::Runtime,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl RuntimeApi {
    /// `address` is `AWS_LAMBDA_RUNTIME_API`: `host:port`.
    pub fn new(address: &str) -> Result<RuntimeApi> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::boot(format!("cannot start the Runtime API client: {e}")))?;
        Ok(RuntimeApi {
            address: address.trim_start_matches("http://").to_string(),
            runtime,
            sender: None,
        })
    }

    /// Waits for the next invocation (as long as it takes, unless cancelled).
    pub fn next(&mut self, cancel: &Cancel) -> Result<Next> {
        let path = format!("/{VERSION}/runtime/invocation/next");
        let (status, headers, body) = self.call(Method::GET, &path, None, Bytes::new(), cancel)?;
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
            Error::event("the Runtime API sent an invocation without Lambda-Runtime-Aws-Request-Id")
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

    /// Posts an invocation's result; a result Lambda refuses (over 6 MB: 413) is reported as the
    /// invocation's error instead, so the caller gets an answer that says why.
    pub fn respond(&mut self, request_id: &str, body: Vec<u8>, cancel: &Cancel) -> Result<()> {
        let path = format!("/{VERSION}/runtime/invocation/{request_id}/response");
        let size = body.len();
        let (status, _, answer) =
            self.call(Method::POST, &path, None, Bytes::from(body), cancel)?;
        match status {
            StatusCode::ACCEPTED => Ok(()),
            StatusCode::PAYLOAD_TOO_LARGE => {
                let error = Error::proxy(format!(
                    "the response is {size} bytes, more than Lambda accepts (6 MB for a synchronous invocation)"
                ));
                self.invocation_error(request_id, &error, cancel)
            }
            other => Err(api_error(&path, other, &answer)),
        }
    }

    pub fn invocation_error(
        &mut self,
        request_id: &str,
        error: &Error,
        cancel: &Cancel,
    ) -> Result<()> {
        self.typed_error(request_id, &error_type(error), &error.message, cancel)
    }

    /// An invocation's error of any type (a Ruby handler's exception class, say).
    pub fn typed_error(
        &mut self,
        request_id: &str,
        error_type: &str,
        message: &str,
        cancel: &Cancel,
    ) -> Result<()> {
        let path = format!("/{VERSION}/runtime/invocation/{request_id}/error");
        self.post_error(&path, error_type, message, cancel)
    }

    pub fn init_error(&mut self, error: &Error, cancel: &Cancel) -> Result<()> {
        let path = format!("/{VERSION}/runtime/init/error");
        self.post_error(&path, &error_type(error), &error.message, cancel)
    }

    fn post_error(
        &mut self,
        path: &str,
        class: &str,
        message: &str,
        cancel: &Cancel,
    ) -> Result<()> {
        let body = serde_json::to_vec(&ErrorBody {
            message,
            kind: class,
            stack_trace: [],
        })
        .unwrap_or_default();
        let (status, _, answer) = self.call(
            Method::POST,
            path,
            Some(("lambda-runtime-function-error-type", class)),
            Bytes::from(body),
            cancel,
        )?;
        if status == StatusCode::ACCEPTED {
            Ok(())
        } else {
            Err(api_error(path, status, &answer))
        }
    }

    /// One request on the kept-alive connection; a connection found closed is replaced once.
    fn call(
        &mut self,
        method: Method,
        path: &str,
        header: Option<(&str, &str)>,
        body: Bytes,
        cancel: &Cancel,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        let runtime = &self.runtime;
        let address = &self.address;
        let sender = &mut self.sender;
        runtime.block_on(async {
            tokio::select! {
                result = exchange(address, sender, method, path, header, body) => result,
                _ = cancel.cancelled() => Err(Error::new(ErrorKind::Interrupted, "interrupted while talking to the Runtime API")),
            }
        })
    }
}

async fn exchange(
    address: &str,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    method: Method,
    path: &str,
    header: Option<(&str, &str)>,
    body: Bytes,
) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
    for attempt in 0..2 {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            *sender = Some(connect(address).await?);
        }
        let Some(open) = sender.as_mut() else {
            continue;
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::HOST, address);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| Error::proxy(format!("cannot build a Runtime API request: {e}")))?;
        if open.ready().await.is_err() {
            *sender = None;
            continue;
        }
        match open.send_request(request).await {
            Ok(response) => {
                let (parts, incoming) = response.into_parts();
                let bytes = incoming
                    .collect()
                    .await
                    .map_err(|e| {
                        Error::proxy(format!("the Runtime API's answer to {path} broke off: {e}"))
                    })?
                    .to_bytes();
                return Ok((parts.status, parts.headers, bytes));
            }
            // Only a request that never reached the API is sent again.
            Err(e) if attempt == 0 && (e.is_canceled() || e.is_closed()) => *sender = None,
            Err(e) => {
                *sender = None;
                return Err(Error::proxy(format!(
                    "the Runtime API request {path} failed: {e}"
                )));
            }
        }
    }
    Err(Error::proxy(format!(
        "the Runtime API at {address} keeps closing the connection"
    )))
}

async fn connect(address: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await.map_err(|e| {
        Error::boot(format!(
            "cannot reach Lambda's Runtime API at {address} (AWS_LAMBDA_RUNTIME_API): {e}"
        ))
    })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::proxy(format!("cannot talk HTTP to the Runtime API: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn api_error(path: &str, status: StatusCode, body: &[u8]) -> Error {
    Error::proxy(format!(
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
