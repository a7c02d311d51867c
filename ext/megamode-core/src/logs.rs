//! The server's output: every line of its stdout and stderr, prefixed (`Rails: `, `Rack: `), written
//! to the handler's stdout, where Lambda picks it up for CloudWatch.
//!
//! Each pipe has a pump thread. `drain` lets the engine wait, before an invocation ends, until what
//! the server has already written is out, so a request's log lines land in its own invocation and
//! not in the next one (Lambda freezes the process as soon as the handler returns).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many of the last lines are kept to explain a failed boot.
pub const TAIL_LINES: usize = 50;
/// A line longer than this is cut into pieces, so a server that never prints a newline cannot grow
/// the buffer without bound.
const MAX_LINE: usize = 64 * 1024;

struct Shared {
    prefix: Vec<u8>,
    sink: RawFd,
    tail: Mutex<VecDeque<String>>,
    /// Serialises whole-line writes, so stdout and stderr lines never interleave mid-line.
    write_lock: Mutex<()>,
}

struct Pump {
    fd: RawFd,
    /// Set before each read and cleared once what was read is written: with the pipe's own count of
    /// unread bytes it tells `drain` that nothing is in flight.
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub struct LogPump {
    shared: Arc<Shared>,
    pumps: Vec<Pump>,
}

impl LogPump {
    /// Starts one pump per pipe; lines go to `sink` (the process's stdout, fd 1, in production).
    pub fn start(prefix: &str, sink: RawFd, pipes: Vec<OwnedFd>) -> LogPump {
        let shared = Arc::new(Shared {
            prefix: format!("{prefix}: ").into_bytes(),
            sink,
            tail: Mutex::new(VecDeque::with_capacity(TAIL_LINES)),
            write_lock: Mutex::new(()),
        });
        let pumps = pipes
            .into_iter()
            .map(|pipe| {
                let fd = pipe.as_raw_fd();
                let busy = Arc::new(AtomicBool::new(false));
                let thread = {
                    let shared = Arc::clone(&shared);
                    let busy = Arc::clone(&busy);
                    std::thread::Builder::new()
                        .name("megamode-logs".into())
                        .spawn(move || pump(pipe, &shared, &busy))
                        .ok()
                };
                Pump { fd, busy, thread }
            })
            .collect();
        LogPump { shared, pumps }
    }

    /// The last lines the server printed, oldest first.
    pub fn tail(&self) -> Vec<String> {
        lock(&self.shared.tail).iter().cloned().collect()
    }

    /// Waits, at most `limit`, until every byte the server has written so far is out.
    pub fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            // The pipe is read before the flag: a pump sets `busy` before it reads, so data that
            // left the pipe between the two looks is still seen as in flight.
            let settled = self
                .pumps
                .iter()
                .filter(|p| p.thread.as_ref().is_some_and(|t| !t.is_finished()))
                .all(|p| unread_bytes(p.fd) == 0 && !p.busy.load(Ordering::SeqCst));
            if settled || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Waits, at most `limit`, for the pipes to reach end of file (the server and everything it
    /// started have exited) and their last lines to be written.
    pub fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self
            .pumps
            .iter()
            .any(|p| p.thread.as_ref().is_some_and(|t| !t.is_finished()))
        {
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for pump in &mut self.pumps {
            if let Some(thread) = pump.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn pump(pipe: OwnedFd, shared: &Shared, busy: &AtomicBool) {
    let fd = pipe.as_raw_fd();
    let mut pending: Vec<u8> = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !wait_readable(fd) {
            break;
        }
        busy.store(true, Ordering::SeqCst);
        // SAFETY: `fd` is owned by `pipe`, alive for this whole function; `buf` is a valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            busy.store(false, Ordering::SeqCst);
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n as usize]);
        emit_lines(shared, &mut pending);
        busy.store(false, Ordering::SeqCst);
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        emit_lines(shared, &mut pending);
    }
    busy.store(false, Ordering::SeqCst);
}

/// Writes every complete line in `pending` and keeps the rest for the next read.
fn emit_lines(shared: &Shared, pending: &mut Vec<u8>) {
    let mut out = Vec::with_capacity(pending.len() + 64);
    let mut start = 0;
    let mut lines = Vec::new();
    while let Some(end) = next_line_end(&pending[start..]).map(|i| start + i) {
        let mut line = &pending[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        out.extend_from_slice(&shared.prefix);
        out.extend_from_slice(line);
        out.push(b'\n');
        lines.push(String::from_utf8_lossy(line).into_owned());
        start = if pending.get(end) == Some(&b'\n') {
            end + 1
        } else {
            end
        };
    }
    pending.drain(..start);
    if out.is_empty() {
        return;
    }
    {
        let _guard = lock(&shared.write_lock);
        write_all(shared.sink, &out);
    }
    let mut tail = lock(&shared.tail);
    for line in lines {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Where the next line ends: at a newline, or after `MAX_LINE` bytes without one.
fn next_line_end(bytes: &[u8]) -> Option<usize> {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => Some(i.min(MAX_LINE)),
        None if bytes.len() >= MAX_LINE => Some(MAX_LINE),
        None => None,
    }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid slice to a descriptor the embedding process owns.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Nowhere to log that logging failed; dropping the line beats blocking the server.
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn wait_readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 {
            return true;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

fn unread_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        n as usize
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;

    fn pipe() -> (std::fs::File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: two fds for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both fds are fresh and owned here.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[1]),
                OwnedFd::from_raw_fd(fds[0]),
            )
        }
    }

    #[test]
    fn lines_are_prefixed_and_drained_before_returning() {
        let (mut server_out, read_end) = pipe();
        let (sink_writer, sink_reader) = pipe();
        let mut pump = LogPump::start("Rack", sink_writer.as_raw_fd(), vec![read_end]);
        server_out.write_all(b"one\r\ntwo\npartial").unwrap();
        pump.drain(Duration::from_secs(5));
        drop(server_out);
        pump.finish(Duration::from_secs(5));
        drop(sink_writer);
        let mut text = String::new();
        std::fs::File::from(sink_reader)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "Rack: one\nRack: two\nRack: partial\n");
        assert_eq!(pump.tail(), vec!["one", "two", "partial"]);
    }

    #[test]
    fn tail_keeps_the_last_lines_only() {
        let (mut server_out, read_end) = pipe();
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let mut pump = LogPump::start("Rails", devnull.as_raw_fd(), vec![read_end]);
        for i in 0..(TAIL_LINES + 10) {
            writeln!(server_out, "line {i}").unwrap();
        }
        drop(server_out);
        pump.finish(Duration::from_secs(5));
        let tail = pump.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.first().unwrap(), "line 10");
        assert_eq!(tail.last().unwrap(), &format!("line {}", TAIL_LINES + 9));
    }

    #[test]
    fn overlong_lines_are_split() {
        assert_eq!(next_line_end(&vec![b'a'; MAX_LINE + 5]), Some(MAX_LINE));
        assert_eq!(next_line_end(b"ab\ncd"), Some(2));
        assert_eq!(next_line_end(b"abc"), None);
    }
}
