//! The hop to the app: HTTP/1.1 over one kept-alive loopback connection.
//!
//! Lambda runs one request at a time per environment, so one connection is the whole pool. It can go
//! stale while the environment is frozen (the server closes idle connections), and a request sent
//! just as the server closes it is lost, which for a POST cannot safely be sent again. So a
//! connection idle for longer than `REUSE_WITHIN` (well under the keep-alive timeouts servers use:
//! puma 20 s, WEBrick 15 s, nginx 75 s) is replaced before use; one that is younger is checked for a
//! close the server already sent; and an idempotent request that still fails on a reused connection
//! is sent again once on a new one.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::listen::{Stream, Target};

/// How long a connection may sit idle and still be reused. A new loopback connection costs about
/// 100 us; a lost request costs the client an error.
pub const REUSE_WITHIN: Duration = Duration::from_secs(2);

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The socket under `sender`, kept to peek at it; valid while `sender` is open, because the
    /// socket and the sender's other half are dropped together when the connection ends.
    fd: RawFd,
    last_used: Instant,
}

pub struct Proxy {
    target: Target,
    connection: Option<Connection>,
    opened: u64,
}

impl Proxy {
    pub fn new(target: Target) -> Proxy {
        Proxy {
            target,
            connection: None,
            opened: 0,
        }
    }

    /// How many connections this proxy has opened (or adopted) so far.
    pub fn connections_opened(&self) -> u64 {
        self.opened
    }

    /// Takes an already connected socket (the one readiness polling opened) as the connection.
    pub async fn adopt(&mut self, stream: Stream) -> Result<()> {
        self.connection = Some(self.handshake(stream).await?);
        Ok(())
    }

    /// Forgets the connection, e.g. after a deadline cut a request off half way.
    pub fn reset(&mut self) {
        self.connection = None;
    }

    pub async fn send(&mut self, request: Request<Bytes>) -> Result<Response<Bytes>> {
        let reused = match self.connection.take() {
            Some(c)
                if c.last_used.elapsed() < REUSE_WITHIN
                    && !c.sender.is_closed()
                    && !peer_closed(c.fd) =>
            {
                self.connection = Some(c);
                true
            }
            _ => false,
        };
        let retry = (reused && is_idempotent(request.method())).then(|| copy(&request));
        match (self.exchange(request).await, retry) {
            (Err(_), Some(again)) => {
                self.connection = None;
                self.exchange(again).await
            }
            (result, _) => result,
        }
    }

    async fn exchange(&mut self, request: Request<Bytes>) -> Result<Response<Bytes>> {
        let mut connection = match self.connection.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let (head, body) = request.into_parts();
        let request = Request::from_parts(head, Full::new(body));
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| Error::proxy(format!("the app's server did not answer: {e}")))?;
        let (head, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Error::proxy(format!("the app's server broke off its response: {e}")))?
            .to_bytes();
        connection.last_used = Instant::now();
        self.connection = Some(connection);
        Ok(Response::from_parts(head, body))
    }

    async fn connect(&mut self) -> Result<Connection> {
        let stream = self.target.connect().await.map_err(|e| {
            Error::proxy(format!(
                "cannot connect to the app's server at {}: {e}",
                self.target
            ))
        })?;
        self.handshake(stream).await
    }

    async fn handshake(&mut self, stream: Stream) -> Result<Connection> {
        let fd = stream.as_raw_fd();
        let sender = match stream {
            Stream::Tcp(stream) => start(stream).await?,
            Stream::Unix(stream) => start(stream).await?,
        };
        self.opened += 1;
        Ok(Connection {
            sender,
            fd,
            last_used: Instant::now(),
        })
    }
}

/// HTTP/1.1 on a fresh connection, driven by a task of its own.
async fn start<S>(stream: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::proxy(format!("cannot talk HTTP to the app's server: {e}")))?;
    tokio::spawn(async move {
        // Its end (the server closed, or the sender was dropped) needs no handling here: the
        // next `send` sees a closed sender and connects anew.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Whether the server has already closed this idle connection (a FIN or a reset is waiting).
fn peer_closed(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: peeks at most one byte into a valid buffer, without blocking or consuming it.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => {
            let err = std::io::Error::last_os_error();
            err.kind() != std::io::ErrorKind::WouldBlock
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn copy(request: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::block_on;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener};

    /// A tiny HTTP/1.1 server on a thread, one connection at a time: answers each request with its
    /// connection's number, and closes a connection after `per_connection` requests.
    fn server(per_connection: usize, connections: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for n in 0..connections {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                'requests: for _ in 0..per_connection {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            // The client closed this connection: on to the next one.
                            break 'requests;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let answer = format!("connection {n}");
                    write!(
                        writer,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                    .unwrap();
                }
            }
        });
        addr
    }

    fn get(path: &str) -> Request<Bytes> {
        Request::get(path)
            .header("host", "x")
            .body(Bytes::new())
            .unwrap()
    }

    #[test]
    fn requests_share_one_kept_alive_connection() {
        let addr = server(100, 1);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            for _ in 0..3 {
                let response = proxy.send(get("/")).await.unwrap();
                assert_eq!(response.body(), "connection 0");
            }
            assert_eq!(proxy.connections_opened(), 1);
        });
    }

    #[test]
    fn a_connection_the_server_closed_is_replaced_without_failing_a_request() {
        let addr = server(1, 3);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            assert_eq!(proxy.send(get("/")).await.unwrap().body(), "connection 0");
            // The server has closed connection 0; a POST must not be lost to that.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let post = Request::post("/")
                .header("host", "x")
                .body(Bytes::from("a=1"))
                .unwrap();
            assert_eq!(proxy.send(post).await.unwrap().body(), "connection 1");
            assert_eq!(proxy.connections_opened(), 2);
        });
    }

    #[test]
    fn a_connection_idle_past_the_reuse_window_is_replaced_before_use() {
        let addr = server(100, 2);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            assert_eq!(proxy.send(get("/")).await.unwrap().body(), "connection 0");
            tokio::time::sleep(REUSE_WITHIN + std::time::Duration::from_millis(100)).await;
            let post = Request::post("/")
                .header("host", "x")
                .body(Bytes::from("a=1"))
                .unwrap();
            assert_eq!(proxy.send(post).await.unwrap().body(), "connection 1");
        });
    }

    #[test]
    fn an_unreachable_server_is_a_proxy_error() {
        let target = Target::free_port().unwrap();
        let err = block_on(Proxy::new(target).send(get("/"))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Proxy);
    }
}
