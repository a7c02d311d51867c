//! The I/O under every blocking call of the core: one current-thread tokio runtime, made when first
//! needed, and the connector both HTTP clients use, the proxy (to the app's server) and the Runtime
//! API client (to Lambda).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};

/// The most header lines a response may have. hyper's default (100) turned a Rails response that
/// sets many cookies into a 502; past this many the answer is still a 502 that says why. Each line
/// costs a few dozen bytes of parser state per response.
pub const MAX_RESPONSE_HEADERS: usize = 1000;
/// The most bytes a response's status line and headers may take (cookies of 4 KB each included).
pub const MAX_RESPONSE_HEAD: usize = 1024 * 1024;

/// One side of an HTTP/1.1 client connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// The runtime the core's blocking calls run on, made on first use. It belongs to the process
/// that made it: after a `fork`, the child calls [`Io::forget`] and gets a new one.
#[derive(Default)]
pub struct Io {
    runtime: Option<Arc<Runtime>>,
}

impl Io {
    /// The runtime (shared, so a caller can block on it while the future borrows its owner).
    pub fn runtime(&mut self) -> Result<Arc<Runtime>> {
        if let Some(runtime) = &self.runtime {
            return Ok(Arc::clone(runtime));
        }
        let runtime = Arc::new(
            new_runtime()
                .map_err(|e| Error::boot(format!("cannot start megamode's I/O runtime: {e}")))?,
        );
        self.runtime = Some(Arc::clone(&runtime));
        Ok(runtime)
    }

    /// Leaves the runtime alone without dropping it (in a forked child it is the parent's: its
    /// threads and descriptors are not this process's to stop); the next call makes a new one.
    pub fn forget(&mut self) {
        std::mem::forget(self.runtime.take());
    }
}

/// The calling thread alone, with I/O and timers: Lambda serves one request at a time per
/// environment, so worker threads would only add hand-offs.
pub(crate) fn new_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    new_runtime().expect("a runtime").block_on(future)
}

/// A TCP connection without Nagle's delay: requests and answers are small and wanted at once.
pub async fn connect_tcp(address: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// HTTP/1.1 on a fresh connection, driven by a task of its own on the current runtime; `B` is the
/// type of the request bodies it sends (whole ones to the app, streamed ones to the Runtime API).
pub async fn handshake<S, B>(stream: S) -> hyper::Result<SendRequest<B>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = http1::Builder::new()
        .max_headers(MAX_RESPONSE_HEADERS)
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        // Its end (the peer closed, or the sender was dropped) needs no handling here: the next
        // request sees a closed sender and connects anew.
        let _ = connection.await;
    });
    Ok(sender)
}
