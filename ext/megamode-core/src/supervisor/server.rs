//! The app's server process: spawning it with the environment it needs, knowing the moment it is
//! ready (or that it died), and stopping it with everything it started.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::launch::{Health, Launch};
use super::watchdog::{on_keeper, Watchdog};
use crate::error::{Error, Result};
use crate::listen::{Stream, Target};
use crate::logs::{LogPump, Printed};

/// How often readiness is polled: the port of a booting server, and whether it has exited.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How often a listening server is asked its readiness path, and how long one answer may take.
const HEALTH_EVERY: Duration = Duration::from_millis(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stopping server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the last output of a server that died is awaited, to explain why it died.
const LAST_WORDS: Duration = Duration::from_millis(100);
/// How many of its last lines a boot error gives after the cause it leads with (all that are kept,
/// `TAIL_LINES`, without one).
const CONTEXT_LINES: usize = 20;

/// A server that did not boot or died: why, in the app's own words when its output says (the line
/// the error leads with), and megamode's account (status, command, last lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub cause: Option<String>,
    pub context: String,
}

impl Failure {
    /// The cause first, then the context: what Lambda's console shows of a `BootError`.
    pub fn message(&self) -> String {
        match &self.cause {
            Some(cause) => format!("{cause}\n({})", self.context),
            None => self.context.clone(),
        }
    }
}

pub struct Server {
    child: Child,
    launch: Launch,
    logs: LogPump,
    spawned_at: Instant,
    exit: Option<ExitStatus>,
    /// Stops the server's group if the handler's process dies; dismissed once megamode stopped it.
    watchdog: Option<Watchdog>,
    /// When the server became ready, as its readiness watcher saw it.
    readiness: Arc<Readiness>,
    /// Why it did not boot or died, once that is known.
    failure: Option<Failure>,
}

/// What the readiness watcher found: the moment the server was first ready, and whether to stop
/// looking (the server exited or is being stopped).
#[derive(Default)]
struct Readiness {
    at: Mutex<Option<Instant>>,
    over: AtomicBool,
    /// Whether the watcher is still polling; until it stops, its answer is the one to wait for.
    watching: AtomicBool,
    /// Wakes a waiting `wait_ready` the moment the watcher has an answer.
    answered: tokio::sync::Notify,
}

impl Server {
    pub fn spawn(launch: Launch) -> Result<Server> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&launch.command)
            .current_dir(&launch.dir)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env(launch.target.env().0, launch.target.env().1)
            .env(crate::lifecycle::TOKEN_VARIABLE, &launch.lifecycle_token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that stopping it reaches puma's workers and anything the
            // command line started, not only the shell.
            .process_group(0);
        // macOS has no PR_SET_PDEATHSIG: there the server's shell is not told itself when
        // megamode's process dies, only the watchdog (below) stops its group then. megamode runs
        // on Lambda (Linux); on macOS only for development and local tools.
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    // If megamode's process dies (SIGKILL included), the server is told to stop
                    // too, so it never outlives the environment as an orphan.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    if libc::getppid() != parent {
                        // The parent died before the line above took effect.
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        let mut child = on_keeper(move || command.spawn()).map_err(|e| {
            Error::boot(format!(
                "cannot start the app's server `{}` in {}: {e}",
                launch.command,
                launch.dir.display()
            ))
        })?;
        let pipes: Vec<OwnedFd> = [
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ]
        .into_iter()
        .flatten()
        .collect();
        let spawned_at = Instant::now();
        let logs = LogPump::start(&launch.log_prefix, launch.logs.clone(), pipes);
        let watchdog = match Watchdog::start(child.id() as libc::pid_t) {
            Ok(watchdog) => Some(watchdog),
            Err(e) => {
                // What is left without it: the death signal above, which only Linux has.
                let left = if cfg!(target_os = "linux") {
                    "the server's own process is still told to stop then"
                } else {
                    "nothing stops the server then on this system"
                };
                launch.logs.line(
                    "megamode",
                    &format!(
                        "cannot start the watchdog that stops the app's server if this process dies \
                         ({e}); {left}"
                    ),
                );
                None
            }
        };
        let readiness = Arc::new(Readiness::default());
        watch_readiness(
            child.id() as libc::pid_t,
            &launch,
            spawned_at,
            Arc::clone(&readiness),
        );
        Ok(Server {
            child,
            launch,
            logs,
            spawned_at,
            exit: None,
            watchdog,
            readiness,
            failure: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self) -> &Target {
        &self.launch.target
    }

    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// When the server was first ready (listening, or healthy with a readiness path), seen by a
    /// watcher that polls from the spawn on, whether or not anyone waits for the server yet: a
    /// server booted at init and first used much later still has its own boot time.
    pub fn ready_at(&self) -> Option<Instant> {
        *crate::logs::lock(&self.readiness.at)
    }

    /// How it was started: its command, directory and environment.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    pub fn logs(&self) -> &LogPump {
        &self.logs
    }

    /// The exit status, once the server has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
            if self.exit.is_some() {
                self.readiness.over.store(true, Ordering::SeqCst);
            }
        }
        self.exit
    }

    /// The exit status, when the server exits within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Polls until the server accepts a connection, and returns that connection so the first
    /// request needs no new one. Fails at once when the server exits, and after `limit`.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Stream> {
        let deadline = self.spawned_at + limit;
        loop {
            if let Some(status) = self.exited() {
                return Err(self.died(status));
            }
            // The readiness watcher polls already: one connection is made once it has seen the
            // server ready (or has stopped looking), not a second poll beside its own.
            let watched =
                self.readiness.watching.load(Ordering::SeqCst) && self.ready_at().is_none();
            if !watched {
                if let Ok(stream) = self.launch.target.connect().await {
                    return Ok(stream);
                }
            }
            if Instant::now() >= deadline {
                // A server that listens but never answered its readiness path healthy is told
                // apart from one that never listened.
                if watched {
                    if let Ok(stream) = self.launch.target.connect().await {
                        return Ok(stream);
                    }
                }
                return Err(self.timed_out(limit));
            }
            if watched {
                tokio::select! {
                    _ = self.readiness.answered.notified() => {}
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            } else {
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }

    /// The error for a server that exited: the cause its output gives first, then its status and
    /// last lines, so the cause is in the message and not only somewhere in the log.
    pub fn died(&mut self, status: ExitStatus) -> Error {
        self.logs.finish(LAST_WORDS);
        let booting = self.ready_at().is_none();
        let printed = self.logs.printed();
        let cause = self.cause(&printed, booting);
        let context = format!(
            "the app's server {}{}; command `{}` in {}{}",
            describe(status),
            if booting { " while booting" } else { "" },
            self.launch.command,
            self.launch.dir.display(),
            last_lines(&printed, cause.is_some())
        );
        self.failed(cause, context)
    }

    fn timed_out(&mut self, limit: Duration) -> Error {
        self.stop();
        let printed = self.logs.printed();
        let cause = self.cause(&printed, true);
        let context = format!(
            "the app's server did not listen on {} within {:.1} s; command `{}` in {}; \
             raise MEGAMODE_BOOT_TIMEOUT if it needs longer, or check that it binds to ${}{}",
            self.launch.target,
            limit.as_secs_f64(),
            self.launch.command,
            self.launch.dir.display(),
            self.launch.target.env().0,
            last_lines(&printed, cause.is_some())
        );
        self.failed(cause, context)
    }

    fn failed(&mut self, cause: Option<String>, context: String) -> Error {
        let failure = Failure { cause, context };
        let error = Error::boot(failure.message());
        self.failure = Some(failure);
        error
    }

    /// Why the server did not boot or died, the last time `died` or a boot timeout said.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The cause the server's output gives: from all that is kept of it for a server that never
    /// became ready (the cause comes before a backtrace that may be longer than the tail), from its
    /// last lines for one that died while serving.
    fn cause(&self, printed: &Printed, booting: bool) -> Option<String> {
        let lines = if booting {
            &printed.lines
        } else {
            &printed.tail
        };
        super::cause::find(lines, &self.launch.dir).map(|cause| cause.to_string())
    }

    /// SIGKILL to the whole process group at once, for a server that no longer answers.
    pub fn kill(&mut self) {
        self.readiness.over.store(true, Ordering::SeqCst);
        self.signal_group(libc::SIGKILL);
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
        self.watchdog = None;
        self.logs.finish(LAST_WORDS);
        self.remove_socket();
    }

    fn remove_socket(&self) {
        if let Target::Unix(path) = &self.launch.target {
            let _ = std::fs::remove_file(path);
        }
    }

    /// SIGTERM to the whole process group, SIGKILL after a grace period; waits for the exit.
    pub fn stop(&mut self) {
        self.readiness.over.store(true, Ordering::SeqCst);
        if self.exited().is_some() {
            // What is left of the group (the watchdog keeps its id from being reused until then).
            self.signal_group(libc::SIGKILL);
            self.watchdog = None;
            return;
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Whatever is left of the group (a worker that ignored SIGTERM, the server itself, the
        // watchdog).
        self.signal_group(libc::SIGKILL);
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
        self.watchdog = None;
        self.logs.finish(LAST_WORDS);
        self.remove_socket();
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), signal);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Its last lines: all that are kept, or, after a cause, the last `CONTEXT_LINES`.
fn last_lines(printed: &Printed, after_cause: bool) -> String {
    let tail = &printed.tail;
    if tail.is_empty() {
        return "; it printed nothing".to_string();
    }
    let shown = if after_cause {
        &tail[tail.len().saturating_sub(CONTEXT_LINES)..]
    } else {
        &tail[..]
    };
    let mut text = if printed.written as usize > shown.len() {
        format!(
            "; its last {} of {} output lines (the log has them all):",
            shown.len(),
            printed.written
        )
    } else {
        format!("; its {} output lines:", shown.len())
    };
    for line in shown {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// Starts the thread that records when the server at `launch.target` is first ready: it polls every
/// `POLL_EVERY` (a connection, then the readiness path when there is one, every `HEALTH_EVERY`)
/// until then, or until the server exits, is stopped, or its boot time is over.
fn watch_readiness(
    pid: libc::pid_t,
    launch: &Launch,
    spawned_at: Instant,
    readiness: Arc<Readiness>,
) {
    let target = launch.target.clone();
    let health = launch.health.clone();
    let deadline = spawned_at + launch.boot_timeout;
    // Without the thread, the first request's wait polls for itself; only boot_ms is less exact.
    readiness.watching.store(true, Ordering::SeqCst);
    let watcher = Arc::clone(&readiness);
    let spawned = std::thread::Builder::new()
        .name("megamode-readiness".into())
        .spawn(move || {
            while !watcher.over.load(Ordering::SeqCst)
                && Instant::now() < deadline
                && !has_exited(pid)
            {
                match probe(&target, health.as_ref()) {
                    Probe::Ready => {
                        *crate::logs::lock(&watcher.at) = Some(Instant::now());
                        break;
                    }
                    Probe::Unhealthy => std::thread::sleep(HEALTH_EVERY),
                    Probe::NotListening => std::thread::sleep(POLL_EVERY),
                }
            }
            watcher.watching.store(false, Ordering::SeqCst);
            // A permit is kept when nobody waits yet, so the answer is never missed.
            watcher.answered.notify_one();
        });
    if spawned.is_err() {
        readiness.watching.store(false, Ordering::SeqCst);
    }
}

enum Probe {
    NotListening,
    Unhealthy,
    Ready,
}

/// Whether the server at `target` accepts a connection and, with `health`, answers it healthy.
fn probe(target: &Target, health: Option<&Health>) -> Probe {
    match target {
        Target::Tcp(addr) => match std::net::TcpStream::connect(addr) {
            Ok(stream) => probe_health(stream, health),
            Err(_) => Probe::NotListening,
        },
        Target::Unix(path) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => probe_health(stream, health),
            Err(_) => Probe::NotListening,
        },
    }
}

/// One `GET` of the readiness path over `stream`, judged by the status line.
fn probe_health<S: Read + Write + Timeouts>(mut stream: S, health: Option<&Health>) -> Probe {
    let Some(health) = health else {
        return Probe::Ready;
    };
    // A path that cannot go in a request line as it is: the engine's own check says why.
    if health
        .path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Probe::Unhealthy;
    }
    stream.set_timeouts(Some(HEALTH_TIMEOUT));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        health.path
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Probe::Unhealthy;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    // "HTTP/1.1 200 OK"
    let status = std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(status) if health.statuses.contains(status) => Probe::Ready,
        _ => Probe::Unhealthy,
    }
}

trait Timeouts {
    fn set_timeouts(&self, limit: Option<Duration>);
}

impl Timeouts for std::net::TcpStream {
    fn set_timeouts(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
        let _ = self.set_write_timeout(limit);
    }
}

impl Timeouts for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
        let _ = self.set_write_timeout(limit);
    }
}

/// Whether the child `pid` has exited, without reaping it (its `Child` does that).
pub(crate) fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: waitid with WNOWAIT only looks; siginfo_t is plain data.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // ECHILD: already reaped.
        r != 0 || info.si_pid() != 0
    }
}

/// "exited with status 1", "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".to_string(),
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::block_on;
    use crate::supervisor::launch::Health;
    use crate::supervisor::{live_members, survivors};
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    /// Tests that pick ports run one at a time: two free_port calls in a row may return the same port.
    static PORTS: Mutex<()> = Mutex::new(());

    fn ports() -> std::sync::MutexGuard<'static, ()> {
        PORTS.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn launch(command: &str) -> Launch {
        Launch {
            command: command.to_string(),
            dir: std::env::temp_dir(),
            env: Vec::new(),
            target: Target::free_port().unwrap(),
            log_prefix: "Rack".to_string(),
            logs: {
                let devnull = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .unwrap();
                let fd = std::os::fd::IntoRawFd::into_raw_fd(devnull);
                crate::logs::LogSink::new(fd, crate::logs::LogFormat::Text)
            },
            health: None,
            boot_timeout: Duration::from_secs(30),
            lifecycle_token: "0".repeat(32),
        }
    }

    #[test]
    fn a_server_that_exits_during_boot_is_reported_with_status_and_output() {
        let _ports = ports();
        let mut server =
            Server::spawn(launch("echo 'cannot load such file -- rails' >&2; exit 3")).unwrap();
        let err = block_on(server.wait_ready(Duration::from_secs(30))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Boot);
        assert!(err.message.contains("exited with status 3"), "{err}");
        assert!(
            err.message.contains("cannot load such file -- rails"),
            "{err}"
        );
    }

    #[test]
    fn a_server_that_dies_booting_leads_with_the_apps_cause_even_past_its_last_lines() {
        let _ports = ports();
        // puma's real output for a Rails initializer's ENV.fetch: its cause is on line 7 of 55,
        // before the last 50.
        let sample = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/boot/puma5-rails61-env-fetch.txt"
        );
        // The app is where the sample says it was, here.
        let app = std::env::temp_dir().join(format!("megamode-cause-{}", std::process::id()));
        std::fs::create_dir_all(&app).unwrap();
        let mut l = launch(&format!(
            "sed 's#/tmp/megamode/app-b1#{}#' '{sample}' >&2; exit 1",
            app.display()
        ));
        l.dir = app.clone();
        let mut server = Server::spawn(l).unwrap();
        let err = block_on(server.wait_ready(Duration::from_secs(30))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Boot);
        let lead = "KeyError: key not found: \"UNSET_PAYMENTS_API_KEY\" \
                    (config/initializers/megamode_test.rb:1)\n\
                    On Lambda: set UNSET_PAYMENTS_API_KEY in the function's environment \
                    (the template's Environment: Variables).\n\
                    (the app's server exited with status 1 while booting; command `sed";
        assert!(err.message.starts_with(lead), "{err}");
        assert!(
            err.message
                .contains("; its last 20 of 55 output lines (the log has them all):\n"),
            "{err}"
        );
        assert!(
            err.message.ends_with("/usr/bin/puma:25:in `<main>')"),
            "{err}"
        );
        assert_eq!(
            server.failure().and_then(|f| f.cause.as_deref()),
            err.message.split_once("\n(").map(|(cause, _)| cause)
        );
        drop(server);
        std::fs::remove_dir(&app).unwrap();
    }

    #[test]
    fn a_server_that_never_listens_times_out_with_advice() {
        let _ports = ports();
        let mut server = Server::spawn(launch("sleep 30")).unwrap();
        let err = block_on(server.wait_ready(Duration::from_millis(200))).unwrap_err();
        assert!(err.message.contains("MEGAMODE_BOOT_TIMEOUT"), "{err}");
        assert!(
            server.exited().is_some(),
            "the server is stopped after a timeout"
        );
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn a_listening_server_is_ready_and_stop_ends_its_whole_group() {
        let _ports = ports();
        // The test listens on the port itself; the server is a shell with a background child,
        // and stopping must reach both.
        let l = launch("sleep 60 & wait");
        let Target::Tcp(addr) = l.target else {
            panic!("not TCP")
        };
        let _listener = std::net::TcpListener::bind(addr).unwrap();
        let mut server = Server::spawn(l).unwrap();
        let stream = block_on(server.wait_ready(Duration::from_secs(30))).unwrap();
        drop(stream);
        let pgid = server.pid() as libc::pid_t;
        server.stop();
        assert_eq!(
            survivors(&[pgid], Duration::from_secs(5)),
            Vec::<i32>::new(),
            "no process of the server's group is left"
        );
    }

    #[test]
    fn readiness_is_timed_when_the_server_listens_not_when_someone_asks() {
        let _ports = ports();
        let l = launch("sleep 60");
        let Target::Tcp(addr) = l.target else {
            panic!("not TCP")
        };
        let mut server = Server::spawn(l).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let listening_from = Instant::now();
        let _listener = std::net::TcpListener::bind(addr).unwrap();
        // Idle, as between Megamode.boot at init and the first event.
        std::thread::sleep(Duration::from_secs(1));
        let asked_at = Instant::now();
        drop(block_on(server.wait_ready(Duration::from_secs(30))).unwrap());
        let ready_at = server.ready_at().expect("the watcher saw it listen");
        assert!(ready_at >= listening_from, "not before it listened");
        assert!(ready_at < asked_at, "seen while nobody asked");
        assert!(server.spawned_at() < listening_from);
    }

    #[test]
    fn with_a_readiness_path_ready_means_healthy() {
        let _ports = ports();
        let mut l = launch("sleep 60");
        l.health = Some(Health {
            path: "/up".to_string(),
            // The default: a success or a redirect.
            statuses: crate::config::Config::from_lookup(|_| None)
                .unwrap()
                .readiness_statuses,
        });
        let Target::Tcp(addr) = l.target else {
            panic!("not TCP")
        };
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let server = Server::spawn(l).unwrap();
        // The "app": 503 twice, then 200; says what it was asked.
        let app = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for status in [
                "503 Service Unavailable",
                "503 Service Unavailable",
                "200 OK",
            ] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).unwrap();
                asked.push(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
                let answered_at = Instant::now();
                conn.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                )
                .unwrap();
                if status == "200 OK" {
                    return (asked, answered_at);
                }
            }
            unreachable!()
        });
        let (asked, healthy_from) = app.join().unwrap();
        assert_eq!(asked, vec!["GET /up HTTP/1.1"; 3]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.ready_at().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(server.ready_at().expect("healthy") >= healthy_from);
    }

    /// Servers whose group PR_SET_PDEATHSIG on the shell alone would not stop: a shell that runs
    /// the server without `exec`, a server that ignores SIGTERM, a server with a child of its own.
    const STUBBORN: [&str; 3] = [
        "cd / && sleep 60",
        "trap '' TERM; while :; do sleep 1; done",
        "sleep 60 & exec sleep 61",
    ];

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn a_handler_killed_outright_takes_every_servers_whole_group_with_it() {
        if std::env::var_os("MEGAMODE_TEST_HANDLER").is_some() {
            // The handler's part, in a process of its own: start the servers, say their groups,
            // and wait to be killed.
            let servers: Vec<Server> = STUBBORN
                .iter()
                .map(|command| Server::spawn(launch(command)).unwrap())
                .collect();
            // Time for the shells to set their traps, so the kill finds them running.
            std::thread::sleep(Duration::from_millis(300));
            let pgids: Vec<String> = servers.iter().map(|s| s.pid().to_string()).collect();
            println!("groups: {}", pgids.join(" "));
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let mut handler = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "supervisor::server::tests::a_handler_killed_outright_takes_every_servers_whole_group_with_it",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MEGAMODE_TEST_HANDLER", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(handler.stdout.take().unwrap());
        let mut groups = Vec::new();
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0 {
            // After libtest's "test ... " on the same line.
            if let Some((_, list)) = line.trim().split_once("groups: ") {
                groups = list
                    .split(' ')
                    .map(|g| g.parse::<libc::pid_t>().unwrap())
                    .collect();
                break;
            }
            line.clear();
        }
        assert_eq!(
            groups.len(),
            STUBBORN.len(),
            "the handler started its servers"
        );
        for &pgid in &groups {
            assert!(!live_members(pgid).is_empty(), "group {pgid} runs");
        }
        handler.kill().unwrap();
        handler.wait().unwrap();
        // SIGTERM, then SIGKILL two seconds later for what ignored it.
        let survivors = survivors(&groups, Duration::from_secs(10));
        for &pid in &survivors {
            // SAFETY: the test's own strays, so that a failure leaves nothing running.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert_eq!(
            survivors,
            Vec::<i32>::new(),
            "no process of the servers' groups is left"
        );
    }
}
