//! The hop to the app: HTTP/1.1 over one kept-alive loopback connection.
//!
//! Lambda runs one request at a time per environment, so one connection is the whole pool. It can go
//! stale while the environment is frozen (the server closes idle connections), and a request sent
//! just as the server closes it is lost, which for a POST cannot safely be sent again. So a
//! connection idle for longer than `REUSE_WITHIN` (well under the keep-alive timeouts servers use:
//! puma 20 s, WEBrick 15 s, nginx 75 s) is replaced before use; one that is younger is checked for a
//! close the server already sent, or bytes it sent unasked (which the next request would read as
//! its answer); and an idempotent request that still fails on a reused connection before a single
//! byte of an answer came back is sent again once on a new one. Once any byte came back the app has
//! seen the request: sending it again could run a DELETE twice.
//!
//! The body is handed to a [`Collect`] as it arrives, which may stop reading it (a response larger
//! than Lambda accepts), so memory stays bounded whatever the app sends.

use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::response::Parts;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::io::{self, Sender, MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS};
use crate::listen::{Stream, Target};

/// How long a connection may sit idle and still be reused. A new loopback connection costs about
/// 100 us; a lost request costs the client an error.
pub const REUSE_WITHIN: Duration = Duration::from_secs(2);
/// Receives a response's body as it arrives. An error stops reading: the rest of the body is never
/// read, and the connection, left mid-response, is not reused.
pub trait Collect {
    /// Waits until the collector can take the head or the next chunk. A collector that passes the
    /// body on as it arrives (a streamed response) waits here while its reader is behind, so the
    /// app's body is not read faster than it is sent on: backpressure, not a buffer.
    fn ready(&mut self) -> impl std::future::Future<Output = Result<()>> {
        std::future::ready(Ok(()))
    }
    /// The head has arrived; the body follows.
    fn head(&mut self, head: &Parts) -> Result<()>;
    fn chunk(&mut self, chunk: Bytes) -> Result<()>;
}

/// Keeps a body of at most `limit` bytes.
pub struct UpTo {
    limit: usize,
    body: Vec<u8>,
}

impl UpTo {
    pub fn new(limit: usize) -> UpTo {
        UpTo {
            limit,
            body: Vec::new(),
        }
    }

    pub fn into_body(self) -> Bytes {
        Bytes::from(self.body)
    }
}

impl Collect for UpTo {
    fn head(&mut self, _: &Parts) -> Result<()> {
        Ok(())
    }

    fn chunk(&mut self, chunk: Bytes) -> Result<()> {
        if self.body.len() + chunk.len() > self.limit {
            return Err(Error::new(
                ErrorKind::Oversize,
                format!(
                    "the app's answer is over the {} bytes Lambda accepts",
                    self.limit
                ),
            ));
        }
        self.body.extend_from_slice(&chunk);
        Ok(())
    }
}

/// Reads a body and keeps none of it (a readiness probe wants the status only).
pub struct Discard;

impl Collect for Discard {
    fn head(&mut self, _: &Parts) -> Result<()> {
        Ok(())
    }

    fn chunk(&mut self, _: Bytes) -> Result<()> {
        Ok(())
    }
}

struct Connection {
    sender: Sender,
    /// The socket under `sender`, kept to peek at it; valid while `sender` is open, because the
    /// socket and the sender's other half are dropped together when the connection ends.
    fd: RawFd,
    /// Bytes read from the socket so far: whether a failed request got any answer at all.
    received: Arc<AtomicU64>,
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

    /// Sends `request` and hands the body to `collect`; the head comes back.
    pub async fn send(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
    ) -> Result<Parts> {
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
        match (self.exchange(request, collect).await, retry) {
            (
                Err(Failure {
                    answered: false, ..
                }),
                Some(again),
            ) => {
                self.connection = None;
                self.exchange(again, collect).await.map_err(|f| f.error)
            }
            (result, _) => result.map_err(|f| f.error),
        }
    }

    async fn exchange(
        &mut self,
        request: Request<Bytes>,
        collect: &mut impl Collect,
    ) -> Result<Parts, Failure> {
        let mut connection = match self.connection.take() {
            Some(c) => c,
            None => self.connect().await.map_err(Failure::unanswered)?,
        };
        let before = connection.received.load(Ordering::Relaxed);
        let answered = |c: &Connection| c.received.load(Ordering::Relaxed) != before;
        let (head, body) = request.into_parts();
        let request = Request::from_parts(head, Full::new(body));
        let response = match connection.sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                return Err(Failure {
                    answered: answered(&connection),
                    error: unanswered(&e),
                })
            }
        };
        let (head, mut body) = response.into_parts();
        let answered = Failure::answered;
        collect.ready().await.map_err(answered)?;
        collect.head(&head).map_err(answered)?;
        loop {
            collect.ready().await.map_err(answered)?;
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|e| {
                answered(Error::upstream(format!(
                    "the app's server broke off its response: {e}"
                )))
            })?;
            if let Ok(data) = frame.into_data() {
                collect.chunk(data).map_err(answered)?;
            }
        }
        connection.last_used = Instant::now();
        self.connection = Some(connection);
        Ok(head)
    }

    async fn connect(&mut self) -> Result<Connection> {
        let stream = self.target.connect().await.map_err(|e| {
            Error::upstream(format!(
                "cannot connect to the app's server at {}: {e}",
                self.target
            ))
        })?;
        self.handshake(stream).await
    }

    async fn handshake(&mut self, stream: Stream) -> Result<Connection> {
        let fd = stream.as_raw_fd();
        let received = Arc::new(AtomicU64::new(0));
        let sender = match stream {
            Stream::Tcp(stream) => io::handshake(Counted::new(stream, &received)).await,
            Stream::Unix(stream) => io::handshake(Counted::new(stream, &received)).await,
        }
        .map_err(|e| Error::upstream(format!("cannot talk HTTP to the app's server: {e}")))?;
        self.opened += 1;
        Ok(Connection {
            sender,
            fd,
            received,
            last_used: Instant::now(),
        })
    }
}

/// Why the app's server gave no response megamode could read. hyper reports a head with too many
/// header lines and one with too many bytes as one error, so the message names both limits. Its
/// `is_parse_too_large` comes only with its server half, which megamode does not build, so the
/// error is known by its text (the proxy's tests notice if a new hyper words it otherwise).
fn unanswered(e: &hyper::Error) -> Error {
    if e.is_parse() && e.to_string() == "message head is too large" {
        return Error::upstream(format!(
            "the app's response head is larger than megamode reads: more than \
             {MAX_RESPONSE_HEADERS} header lines or {MAX_RESPONSE_HEAD} bytes ({e})"
        ));
    }
    Error::upstream(format!("the app's server did not answer: {e}"))
}

/// A failed exchange, and whether any byte of an answer had come back: only a request that got
/// nothing back may be sent again.
struct Failure {
    answered: bool,
    error: Error,
}

impl Failure {
    fn answered(error: Error) -> Failure {
        Failure {
            answered: true,
            error,
        }
    }

    fn unanswered(error: Error) -> Failure {
        Failure {
            answered: false,
            error,
        }
    }
}

/// A socket that counts the bytes read from it.
struct Counted<S> {
    inner: S,
    received: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    fn new(inner: S, received: &Arc<AtomicU64>) -> Counted<S> {
        Counted {
            inner,
            received: Arc::clone(received),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.received.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether this idle connection is unusable: the server has closed it (a FIN or a reset is
/// waiting), or sent bytes no request asked for (a body longer than its `Content-Length`, a 408
/// before closing), which the next request would read as its answer.
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
        n if n >= 0 => true,
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
    use crate::io::block_on;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener};

    /// Reads one request's head and body; false when the client closed the connection.
    fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> bool {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return false;
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
        true
    }

    /// Writes a 200 whose body is `answer`.
    fn respond(writer: &mut impl Write, answer: &str) {
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
    }

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
                for _ in 0..per_connection {
                    if !read_request(&mut reader) {
                        // The client closed this connection: on to the next one.
                        break;
                    }
                    let answer = format!("connection {n}");
                    respond(&mut writer, &answer);
                }
            }
        });
        addr
    }

    /// A server that answers the first request of its first connection, then writes `second` in
    /// answer to the next one and closes; later connections are answered "again". Counts the
    /// requests it read.
    fn answers_badly(second: &'static [u8]) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut writer) = stream else { return };
                let mut reader = BufReader::new(writer.try_clone().unwrap());
                for request in 0.. {
                    if !read_request(&mut reader) {
                        break;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    if n == 0 && request == 1 {
                        let _ = writer.write_all(second);
                        break;
                    }
                    let answer = if n == 0 { "first" } else { "again" };
                    respond(&mut writer, answer);
                }
            }
        });
        (addr, seen)
    }

    /// The body of the answer to `request`.
    async fn fetch(proxy: &mut Proxy, request: Request<Bytes>) -> Result<Bytes> {
        let mut body = UpTo::new(1024 * 1024);
        proxy.send(request, &mut body).await?;
        Ok(body.into_body())
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
                let body = fetch(&mut proxy, get("/")).await.unwrap();
                assert_eq!(body, "connection 0");
            }
            assert_eq!(proxy.connections_opened(), 1);
        });
    }

    #[test]
    fn a_connection_the_server_closed_is_replaced_without_failing_a_request() {
        let addr = server(1, 3);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "connection 0");
            // The server has closed connection 0; a POST must not be lost to that.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let post = Request::post("/")
                .header("host", "x")
                .body(Bytes::from("a=1"))
                .unwrap();
            assert_eq!(fetch(&mut proxy, post).await.unwrap(), "connection 1");
            assert_eq!(proxy.connections_opened(), 2);
        });
    }

    #[test]
    fn a_connection_idle_past_the_reuse_window_is_replaced_before_use() {
        let addr = server(100, 2);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "connection 0");
            tokio::time::sleep(REUSE_WITHIN + std::time::Duration::from_millis(100)).await;
            let post = Request::post("/")
                .header("host", "x")
                .body(Bytes::from("a=1"))
                .unwrap();
            assert_eq!(fetch(&mut proxy, post).await.unwrap(), "connection 1");
        });
    }

    #[test]
    fn a_request_the_app_began_to_answer_is_never_sent_again() {
        let broken: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
            b"HTTP/1.1 2OO Nope\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ];
        for second in broken {
            let (addr, seen) = answers_badly(second);
            block_on(async {
                let mut proxy = Proxy::new(Target::Tcp(addr));
                assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "first");
                let delete = Request::delete("/posts/1")
                    .header("host", "x")
                    .body(Bytes::new())
                    .unwrap();
                let err = fetch(&mut proxy, delete).await.unwrap_err();
                assert_eq!(err.kind, crate::ErrorKind::Upstream, "{err}");
            });
            let answer = String::from_utf8_lossy(second);
            assert_eq!(
                seen.load(Ordering::SeqCst),
                2,
                "sent again after {answer:?}"
            );
        }
    }

    #[test]
    fn a_request_that_got_no_answer_on_a_reused_connection_is_sent_again() {
        // The server closes the connection as the request arrives: the stale-connection race.
        let (addr, seen) = answers_badly(b"");
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "first");
            assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "again");
        });
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn bytes_the_server_sent_on_an_idle_connection_are_never_taken_for_the_next_answer() {
        // After its answer the server sends more (a body longer than its Content-Length, a 408
        // before it closes): on a reused connection the next request would get that as its answer.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut writer) = stream else { return };
                let mut reader = BufReader::new(writer.try_clone().unwrap());
                while read_request(&mut reader) {
                    let answer = format!("connection {n}");
                    respond(&mut writer, &answer);
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(20));
                        let _ =
                            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale");
                    }
                }
            }
        });
        // One runtime, idle between the requests, as between two invocations.
        let runtime = crate::io::new_runtime().unwrap();
        let mut proxy = Proxy::new(Target::Tcp(addr));
        let first = runtime.block_on(fetch(&mut proxy, get("/"))).unwrap();
        assert_eq!(first, "connection 0");
        std::thread::sleep(Duration::from_millis(100));
        let second = runtime.block_on(fetch(&mut proxy, get("/"))).unwrap();
        assert_eq!(second, "connection 1");
    }

    #[test]
    fn a_response_with_hundreds_of_headers_is_read() {
        let addr = answers_with_cookies(300, &format!("{}; path=/", "v".repeat(40)));
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            let mut body = UpTo::new(1024);
            let head = proxy.send(get("/"), &mut body).await.unwrap();
            assert_eq!(head.headers.get_all("set-cookie").iter().count(), 300);
            assert_eq!(body.into_body(), "ok");
        });
    }

    /// A server that answers its first request with `lines` `set-cookie` lines, each
    /// `c<n>=<value>`, and the body `ok`.
    fn answers_with_cookies(lines: usize, value: &str) -> SocketAddr {
        let value = value.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            read_request(&mut reader);
            let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
            for n in 0..lines {
                head.push_str(&format!("set-cookie: c{n}={value}\r\n"));
            }
            let mut writer = stream;
            // The proxy may hang up mid-head on a head past its limits.
            let _ = write!(writer, "{head}\r\nok");
        });
        addr
    }

    #[test]
    fn a_response_with_too_many_header_lines_is_an_error_naming_the_limit() {
        // The limit itself passes (content-length is one of the lines).
        let addr = answers_with_cookies(MAX_RESPONSE_HEADERS - 1, "v");
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            let head = proxy.send(get("/"), &mut UpTo::new(1024)).await.unwrap();
            assert_eq!(head.headers.len(), MAX_RESPONSE_HEADERS);
        });
        let addr = answers_with_cookies(MAX_RESPONSE_HEADERS, "v");
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            let err = proxy
                .send(get("/"), &mut UpTo::new(1024))
                .await
                .unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Upstream, "{err}");
            assert!(err.message.contains("more than 1000 header lines"), "{err}");
        });
    }

    #[test]
    fn a_collector_that_refuses_stops_the_read_and_the_connection() {
        let addr = server(100, 2);
        block_on(async {
            let mut proxy = Proxy::new(Target::Tcp(addr));
            let err = proxy.send(get("/"), &mut UpTo::new(4)).await.unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Oversize);
            // The connection it left mid-response is not reused.
            assert_eq!(fetch(&mut proxy, get("/")).await.unwrap(), "connection 1");
        });
    }

    #[test]
    fn an_unreachable_server_is_a_proxy_error() {
        let target = Target::free_port().unwrap();
        let err = block_on(fetch(&mut Proxy::new(target), get("/"))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Upstream);
    }
}
