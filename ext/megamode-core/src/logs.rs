//! The server's output: every line of its stdout and stderr, prefixed (`Rails: `, `Rack: `), written
//! to the handler's stdout, where Lambda picks it up for CloudWatch.
//!
//! Each pipe has a pump thread. `drain` lets the engine wait, before an invocation ends, until what
//! the server has already written is out, so a request's log lines land in its own invocation and
//! not in the next one (Lambda freezes the process as soon as the handler returns).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};

use crate::clock::iso8601;

/// How many of the last lines are kept to explain a failed boot.
pub const TAIL_LINES: usize = 50;
/// How many of the first lines are kept too, each cut at `HEAD_LINE` bytes: the line that says why
/// a server did not boot comes before its backtrace, which can be longer than the tail.
pub const HEAD_LINES: usize = 200;
const HEAD_LINE: usize = 4096;
/// A longer line is cut here, with a marker, and the rest of it dropped: CloudWatch takes events of
/// 256 KB at most, and a server that never prints a newline must not grow the buffer without bound.
pub const MAX_LINE: usize = 256 * 1024;
const CUT_MARKER: &str = " [megamode: line cut at 256 KB]";

/// `AWS_LAMBDA_LOG_FORMAT`: Lambda's plain text, or one JSON object per line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn from_lambda(value: Option<&str>) -> LogFormat {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Where log lines go (the handler's stdout), in Lambda's format, tagged with the invocation they
/// belong to. Shared by the server's pumps and megamode's own lines.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

struct SinkInner {
    fd: RawFd,
    format: LogFormat,
    request_id: Mutex<Option<String>>,
    /// Serialises whole-line writes, so lines from stdout, stderr and megamode never interleave.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("fd", &self.inner.fd)
            .field("format", &self.inner.format)
            .finish()
    }
}

impl LogSink {
    pub fn new(fd: RawFd, format: LogFormat) -> LogSink {
        LogSink {
            inner: Arc::new(SinkInner {
                fd,
                format,
                request_id: Mutex::new(None),
                write_lock: Mutex::new(()),
            }),
        }
    }

    /// The invocation whose lines are being written now (JSON lines carry it).
    pub fn set_request_id(&self, request_id: Option<&str>) {
        *lock(&self.inner.request_id) = request_id.map(str::to_owned);
    }

    /// Writes one line from `source` (`Rails`, `Rack`, `megamode`); `line` has no newline.
    pub fn line(&self, source: &str, line: &str) {
        let mut out = Vec::with_capacity(line.len() + source.len() + 64);
        self.render(source, line, &mut out);
        let _guard = lock(&self.inner.write_lock);
        write_all(self.inner.fd, &out);
    }

    fn render(&self, source: &str, line: &str, out: &mut Vec<u8>) {
        match self.inner.format {
            LogFormat::Text => {
                out.extend_from_slice(source.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(line.as_bytes());
            }
            LogFormat::Json => {
                let mut object = Map::new();
                object.insert("timestamp".into(), iso8601(SystemTime::now()).into());
                if let Some(level) = level(line) {
                    object.insert("level".into(), level.into());
                }
                if let Some(id) = lock(&self.inner.request_id).as_deref() {
                    object.insert("requestId".into(), id.into());
                }
                object.insert("source".into(), source.into());
                object.insert("message".into(), line.into());
                let _ = serde_json::to_writer(&mut *out, &Value::Object(object));
            }
        }
        out.push(b'\n');
    }
}

/// The level of a line when it says so: Ruby's Logger (`I, [time #pid]  INFO -- :`) or a leading
/// level word (`ERROR ...`, `[WARN] ...`).
fn level(line: &str) -> Option<&'static str> {
    const LEVELS: [(&str, &str); 6] = [
        ("D", "DEBUG"),
        ("I", "INFO"),
        ("W", "WARN"),
        ("E", "ERROR"),
        ("F", "FATAL"),
        ("A", "FATAL"),
    ];
    if let Some((letter, _)) = line.split_once(", [") {
        if let Some((_, level)) = LEVELS.iter().find(|(l, _)| *l == letter) {
            return Some(level);
        }
    }
    let word = line
        .trim_start_matches(|c: char| c == '[' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?;
    ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        .into_iter()
        .find(|l| *l == word || (word == "WARNING" && *l == "WARN"))
}

struct Pump {
    fd: RawFd,
    /// Set before each read and cleared once what was read is written: with the pipe's own count of
    /// unread bytes it tells `drain` that nothing is in flight.
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What is kept of what the server printed (see `LogPump::printed`).
pub struct Printed {
    /// Its first `HEAD_LINES` lines (cut at 4 KB), then those of its last `TAIL_LINES` that come
    /// after them, in order, each once.
    pub lines: Vec<String>,
    /// Its last `TAIL_LINES` lines.
    pub tail: Vec<String>,
    /// How many lines it printed in all.
    pub written: u64,
}

/// The lines kept of what the server printed: its first and its last.
#[derive(Default)]
struct Kept {
    head: Vec<String>,
    tail: VecDeque<String>,
    /// Lines printed in all.
    written: u64,
}

pub struct LogPump {
    kept: Arc<Mutex<Kept>>,
    count: Arc<AtomicU64>,
    pumps: Vec<Pump>,
    /// Notified by a pump each time it has written what it read, so `drain` wakes at that moment
    /// rather than after a sleep (the request path waits on it).
    idle: Arc<(Mutex<()>, Condvar)>,
}

impl LogPump {
    /// Starts one pump per pipe; each line goes to `sink` from `source`.
    pub fn start(source: &str, sink: LogSink, pipes: Vec<OwnedFd>) -> LogPump {
        let kept = Arc::new(Mutex::new(Kept::default()));
        let idle = Arc::new((Mutex::new(()), Condvar::new()));
        let count = Arc::new(AtomicU64::new(0));
        let pumps = pipes
            .into_iter()
            .map(|pipe| {
                let fd = pipe.as_raw_fd();
                let busy = Arc::new(AtomicBool::new(false));
                let mut lines = Lines {
                    source: source.to_owned(),
                    sink: sink.clone(),
                    kept: Arc::clone(&kept),
                    count: Arc::clone(&count),
                    discarding: false,
                };
                let thread = {
                    let busy = Arc::clone(&busy);
                    let idle = Arc::clone(&idle);
                    std::thread::Builder::new()
                        .name("megamode-logs".into())
                        .spawn(move || pump(pipe, &mut lines, &busy, &idle))
                        .ok()
                };
                Pump { fd, busy, thread }
            })
            .collect();
        LogPump {
            kept,
            count,
            pumps,
            idle,
        }
    }

    /// Waits, at most `limit`, for the rest of the server's boot output, which a server may print
    /// after it listens (puma's "Use Ctrl-C to stop"): until a line containing `marker` (the
    /// server's known last boot line, when there is one) is out, or no line came for `quiet`. The
    /// invocation (or init) that waited for the boot waits for this too, so these lines land in it
    /// instead of in the next one.
    pub fn settle(&self, marker: Option<&str>, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut seen = self.count.load(Ordering::SeqCst);
        let mut last_line = Instant::now();
        loop {
            if marker.is_some_and(|m| lock(&self.kept).tail.iter().any(|l| l.contains(m))) {
                self.drain(deadline.saturating_duration_since(Instant::now()));
                return;
            }
            let now = Instant::now();
            let count = self.count.load(Ordering::SeqCst);
            if count != seen {
                (seen, last_line) = (count, now);
            }
            if now >= deadline || now.duration_since(last_line) >= quiet {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The last lines the server printed, oldest first.
    pub fn tail(&self) -> Vec<String> {
        lock(&self.kept).tail.iter().cloned().collect()
    }

    /// What is kept of everything the server printed, at one moment.
    pub fn printed(&self) -> Printed {
        let kept = lock(&self.kept);
        let tail_from = kept.written.saturating_sub(kept.tail.len() as u64);
        let skip = (kept.head.len() as u64).saturating_sub(tail_from) as usize;
        let mut lines = kept.head.clone();
        lines.extend(kept.tail.iter().skip(skip).cloned());
        Printed {
            lines,
            tail: kept.tail.iter().cloned().collect(),
            written: kept.written,
        }
    }

    /// Waits, at most `limit`, until every byte the server has written so far is out.
    pub fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (mutex, condvar) = &*self.idle;
        // Held while looking, so a pump that goes idle after the look cannot notify before the wait.
        let mut guard = lock(mutex);
        loop {
            // The pipe is read before the flag: a pump sets `busy` before it reads, so data that
            // left the pipe between the two looks is still seen as in flight.
            let settled = self
                .pumps
                .iter()
                .filter(|p| p.thread.as_ref().is_some_and(|t| !t.is_finished()))
                .all(|p| unread_bytes(p.fd) == 0 && !p.busy.load(Ordering::SeqCst));
            let now = Instant::now();
            if settled || now >= deadline {
                return;
            }
            // Bytes can also arrive without a pump finishing: look again soon in any case.
            let wait = (deadline - now).min(Duration::from_millis(1));
            guard = condvar
                .wait_timeout(guard, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
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

/// One pipe's bytes into lines.
struct Lines {
    source: String,
    sink: LogSink,
    kept: Arc<Mutex<Kept>>,
    /// Lines written so far, by every pipe's pump.
    count: Arc<AtomicU64>,
    /// The rest of a line that was cut is being skipped, up to its newline.
    discarding: bool,
}

impl Lines {
    /// Writes every complete line in `pending` and keeps the rest for the next read.
    fn emit(&mut self, pending: &mut Vec<u8>) {
        let mut start = 0;
        loop {
            let rest = &pending[start..];
            let newline = rest.iter().position(|&b| b == b'\n');
            match newline {
                Some(i) if self.discarding => {
                    self.discarding = false;
                    start += i + 1;
                }
                Some(i) if i <= MAX_LINE => {
                    let line = &rest[..i];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.write(&String::from_utf8_lossy(line));
                    start += i + 1;
                }
                None if self.discarding => {
                    start = pending.len();
                    break;
                }
                None if rest.len() <= MAX_LINE => break,
                // Longer than allowed, with or without its newline here yet.
                _ => {
                    let cut = String::from_utf8_lossy(&rest[..MAX_LINE]);
                    self.write(&format!("{cut}{CUT_MARKER}"));
                    self.discarding = true;
                    start += MAX_LINE;
                }
            }
        }
        pending.drain(..start);
    }

    /// The end of the pipe: a last line without a newline still counts.
    fn finish(&mut self, pending: &mut Vec<u8>) {
        if !pending.is_empty() && !self.discarding {
            pending.push(b'\n');
            self.emit(pending);
        }
    }

    fn write(&self, line: &str) {
        self.sink.line(&self.source, line);
        self.count.fetch_add(1, Ordering::SeqCst);
        let mut kept = lock(&self.kept);
        if kept.head.len() < HEAD_LINES {
            let mut end = line.len().min(HEAD_LINE);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            kept.head.push(line[..end].to_owned());
        }
        if kept.tail.len() == TAIL_LINES {
            kept.tail.pop_front();
        }
        kept.tail.push_back(line.to_owned());
        kept.written += 1;
    }
}

fn pump(pipe: OwnedFd, lines: &mut Lines, busy: &AtomicBool, idle: &(Mutex<()>, Condvar)) {
    let settle = || {
        busy.store(false, Ordering::SeqCst);
        let _guard = lock(&idle.0);
        idle.1.notify_all();
    };
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
        lines.emit(&mut pending);
        settle();
    }
    lines.finish(&mut pending);
    settle();
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

    /// Runs `write` as the server's output through a pump and returns what the sink received.
    fn pumped(format: LogFormat, write: impl FnOnce(&mut std::fs::File)) -> String {
        let (mut server_out, read_end) = pipe();
        let (sink_writer, sink_reader) = pipe();
        let sink = LogSink::new(sink_writer.as_raw_fd(), format);
        sink.set_request_id(Some("req-1"));
        let mut pump = LogPump::start("Rack", sink, vec![read_end]);
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::from(sink_reader)
                .read_to_string(&mut text)
                .unwrap();
            text
        });
        write(&mut server_out);
        drop(server_out);
        pump.finish(Duration::from_secs(10));
        drop(pump);
        drop(sink_writer);
        reader.join().unwrap()
    }

    #[test]
    fn lines_are_prefixed_and_drained_before_returning() {
        let (mut server_out, read_end) = pipe();
        let (sink_writer, sink_reader) = pipe();
        let sink = LogSink::new(sink_writer.as_raw_fd(), LogFormat::Text);
        let mut pump = LogPump::start("Rack", sink, vec![read_end]);
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

    /// The server's end of a pipe and a pump that reads it, its lines going nowhere but the tail
    /// (to /dev/null, the third: the sink writes to its descriptor as long as the test runs).
    fn pump_to_nowhere() -> (std::fs::File, LogPump, std::fs::File) {
        let (server_out, read_end) = pipe();
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let sink = LogSink::new(devnull.as_raw_fd(), LogFormat::Text);
        (
            server_out,
            LogPump::start("Rails", sink, vec![read_end]),
            devnull,
        )
    }

    #[test]
    fn settle_waits_for_a_boot_line_printed_after_the_server_listens() {
        let (mut server_out, mut pump, _devnull) = pump_to_nowhere();
        let late = |mut out: std::fs::File, lines: &'static [&'static str]| {
            std::thread::spawn(move || {
                for line in lines {
                    std::thread::sleep(Duration::from_millis(30));
                    writeln!(out, "{line}").unwrap();
                }
                out
            })
        };
        // The known last line: waited for, however long the server is quiet before it.
        let writer = late(server_out, &["* Listening", "Use Ctrl-C to stop"]);
        let long = Duration::from_secs(30);
        pump.settle(Some("Use Ctrl-C to stop"), long, long);
        assert_eq!(pump.tail().last().unwrap(), "Use Ctrl-C to stop");
        server_out = writer.join().unwrap();
        // Without one: until no line came for the quiet time.
        let writer = late(server_out, &["a", "b", "c"]);
        pump.settle(None, Duration::from_millis(500), long);
        assert_eq!(pump.tail().last().unwrap(), "c");
        drop(writer.join().unwrap());
        pump.finish(Duration::from_secs(5));
    }

    #[test]
    fn tail_keeps_the_last_lines_only() {
        let (mut server_out, mut pump, _devnull) = pump_to_nowhere();
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
    fn the_first_lines_are_kept_too_each_line_once() {
        let lines = |n: usize| (0..n).map(|i| format!("line {i}")).collect::<Vec<_>>();
        for printed in [3, HEAD_LINES + 10, HEAD_LINES + TAIL_LINES + 30] {
            let (mut server_out, mut pump, _devnull) = pump_to_nowhere();
            let all_lines = lines(printed);
            for line in &all_lines {
                writeln!(server_out, "{line}").unwrap();
            }
            drop(server_out);
            pump.finish(Duration::from_secs(5));
            let kept = pump.printed();
            assert_eq!(kept.written, printed as u64);
            assert_eq!(kept.tail, all_lines[printed.saturating_sub(TAIL_LINES)..]);
            let all = all_lines.clone();
            let mut expected = all[..printed.min(HEAD_LINES)].to_vec();
            expected.extend(
                all[printed
                    .saturating_sub(TAIL_LINES)
                    .max(HEAD_LINES)
                    .min(printed)..]
                    .iter()
                    .cloned(),
            );
            assert_eq!(kept.lines, expected, "{printed} lines printed");
        }
    }

    #[test]
    fn overlong_lines_are_cut_with_a_marker_and_the_rest_dropped() {
        let text = pumped(LogFormat::Text, |out| {
            out.write_all(&vec![b'a'; MAX_LINE + 1000]).unwrap();
            out.write_all(b"\nnext\n").unwrap();
            // Exactly the limit is not cut.
            out.write_all(&vec![b'b'; MAX_LINE]).unwrap();
            out.write_all(b"\n").unwrap();
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(
            lines[0],
            format!("Rack: {}{CUT_MARKER}", "a".repeat(MAX_LINE))
        );
        assert_eq!(lines[1], "Rack: next");
        assert_eq!(lines[2], format!("Rack: {}", "b".repeat(MAX_LINE)));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let text = pumped(LogFormat::Text, |out| {
            out.write_all(b"caf\xe9 ok\n").unwrap()
        });
        assert_eq!(text, "Rack: caf\u{fffd} ok\n");
    }

    #[test]
    fn ten_thousand_lines_arrive_whole_and_in_order() {
        let text = pumped(LogFormat::Text, |out| {
            for i in 0..10_000 {
                writeln!(out, "line {i} {}", "x".repeat(i % 300)).unwrap();
            }
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("Rack: line {i} {}", "x".repeat(i % 300)));
        }
    }

    #[test]
    fn json_format_gives_one_object_per_line_with_the_request_id() {
        let text = pumped(LogFormat::Json, |out| {
            out.write_all(b"I, [2026-11-25T14:59:55.766376 #1]  INFO -- : Started GET \"/\"\n")
                .unwrap();
            out.write_all(b"plain line\n").unwrap();
        });
        let objects: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["level"], "INFO");
        assert_eq!(objects[0]["requestId"], "req-1");
        assert_eq!(objects[0]["source"], "Rack");
        assert!(objects[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("Started GET \"/\""));
        assert!(objects[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(objects[1].get("level").is_none());
        assert_eq!(objects[1]["message"], "plain line");
    }

    #[test]
    fn levels_are_read_from_common_shapes() {
        assert_eq!(
            level("E, [2026-11-25T14:59:55 #1] ERROR -- : boom"),
            Some("ERROR")
        );
        assert_eq!(
            level("W, [2026-11-25T14:59:55 #1]  WARN -- : hm"),
            Some("WARN")
        );
        assert_eq!(level("[ERROR] failed"), Some("ERROR"));
        assert_eq!(level("WARNING: deprecated"), Some("WARN"));
        assert_eq!(level("Puma starting in single mode..."), None);
        assert_eq!(level("Information"), None);
    }

    #[test]
    fn log_format_follows_lambda() {
        assert_eq!(LogFormat::from_lambda(Some("JSON")), LogFormat::Json);
        assert_eq!(LogFormat::from_lambda(Some("Text")), LogFormat::Text);
        assert_eq!(LogFormat::from_lambda(None), LogFormat::Text);
    }
}
