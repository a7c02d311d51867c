//! The app's server process: which command runs it, spawning it with the environment it needs,
//! knowing the moment it is ready (or that it died), and stopping it with everything it started.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Statuses;
use crate::error::{Error, Result};
use crate::listen::{Stream, Target};
use crate::logs::{LogPump, LogSink};

/// How often readiness is polled: the port of a booting server, and whether it has exited.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How often a listening server is asked its readiness path, and how long one answer may take.
const HEALTH_EVERY: Duration = Duration::from_millis(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stopping server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the last output of a server that died is awaited, to explain why it died.
const LAST_WORDS: Duration = Duration::from_millis(100);

/// Everything needed to start the server.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Run by `sh -c`, so it may use `$PORT` and shell syntax.
    pub command: String,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Where the server is told to listen (`$PORT` or `$MEGAMODE_SOCKET`).
    pub target: Target,
    pub log_prefix: String,
    /// Where the server's lines go (the handler's stdout).
    pub logs: LogSink,
    /// With `MEGAMODE_READINESS_PATH`: ready means that path answers healthy, not only listening.
    pub health: Option<Health>,
    /// How long the server may take to become ready (`MEGAMODE_BOOT_TIMEOUT`).
    pub boot_timeout: Duration,
}

/// `MEGAMODE_READINESS_PATH` and the statuses that count as healthy.
#[derive(Clone, Debug)]
pub struct Health {
    pub path: String,
    pub statuses: Statuses,
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
}

/// What the readiness watcher found: the moment the server was first ready, and whether to stop
/// looking (the server exited or is being stopped).
#[derive(Default)]
struct Readiness {
    at: Mutex<Option<Instant>>,
    over: AtomicBool,
}

/// The command that serves the app at `root` when `MEGAMODE_COMMAND` is not set: puma through
/// bundler when the app has a Gemfile (rackup when its lockfile has no puma), else the system's puma,
/// else its rackup. `exec`, so the server is the process megamode started and signals reach it.
/// With `unix`, puma listens on `$MEGAMODE_SOCKET` (rackup cannot, so it keeps `$PORT`).
pub fn default_command(root: &Path, unix: bool) -> Result<String> {
    if !root.join("config.ru").is_file() {
        return Err(Error::boot(format!(
            "there is no config.ru in {}: set MEGAMODE_APP_ROOT to your app's directory, or \
             MEGAMODE_COMMAND to the command that serves it on $PORT",
            root.display()
        )));
    }
    let puma = if unix {
        "puma --bind unix://$MEGAMODE_SOCKET config.ru"
    } else {
        "puma --bind tcp://127.0.0.1:$PORT config.ru"
    };
    let rackup = "rackup --host 127.0.0.1 --port $PORT config.ru";
    if root.join("Gemfile").is_file() {
        let lock = std::fs::read_to_string(root.join("Gemfile.lock")).unwrap_or_default();
        let has_puma = uses_puma(&lock);
        let server = if has_puma { puma } else { rackup };
        return Ok(format!("exec bundle exec {server}"));
    }
    for (program, command) in [("puma", puma), ("rackup", rackup)] {
        if find_in_path(program).is_some() {
            return Ok(format!("exec {command}"));
        }
    }
    Err(Error::boot(
        "found neither puma nor rackup on PATH to serve the app: add puma to the app's Gemfile, \
         install it, or set MEGAMODE_COMMAND",
    ))
}

fn uses_puma(lockfile: &str) -> bool {
    lockfile
        .lines()
        .any(|l| l.trim_start().starts_with("puma "))
}

/// Whether the default command for the app at `root` is puma, which can listen on a Unix socket.
pub fn default_is_puma(root: &Path) -> bool {
    if root.join("Gemfile").is_file() {
        uses_puma(&std::fs::read_to_string(root.join("Gemfile.lock")).unwrap_or_default())
    } else {
        find_in_path("puma").is_some()
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that stopping it reaches puma's workers and anything the
            // command line started, not only the shell.
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // If megamode's process dies (SIGKILL included), the server is told to stop too,
                // so it never outlives the environment as an orphan.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != parent {
                    // The parent died before the line above took effect.
                    libc::_exit(1);
                }
                Ok(())
            });
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
                launch.logs.line(
                    "megamode",
                    &format!(
                        "cannot start the watchdog that stops the app's server if this process dies \
                         ({e}); the server's own process is still told to stop then"
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
            if let Ok(stream) = self.launch.target.connect().await {
                return Ok(stream);
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(limit));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The error for a server that exited: its status and its last lines, so the cause is in the
    /// message and not only somewhere in the log.
    pub fn died(&mut self, status: ExitStatus) -> Error {
        self.logs.finish(LAST_WORDS);
        Error::boot(format!(
            "the app's server {} (command `{}` in {}){}",
            describe(status),
            self.launch.command,
            self.launch.dir.display(),
            self.last_lines()
        ))
    }

    fn timed_out(&mut self, limit: Duration) -> Error {
        self.stop();
        Error::boot(format!(
            "the app's server did not listen on {} within {:.1} s (command `{}` in {}); \
             raise MEGAMODE_BOOT_TIMEOUT if it needs longer, or check that it binds to ${}{}",
            self.launch.target,
            limit.as_secs_f64(),
            self.launch.command,
            self.launch.dir.display(),
            self.launch.target.env().0,
            self.last_lines()
        ))
    }

    fn last_lines(&self) -> String {
        let tail = self.logs.tail();
        if tail.is_empty() {
            return "; it printed nothing".to_string();
        }
        let mut text = format!("; its last {} output lines:", tail.len());
        for line in tail {
            text.push_str("\n  ");
            text.push_str(&line);
        }
        text
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
    // Without the thread, the first request's wait tells readiness; only boot_ms is less exact.
    let _ = std::thread::Builder::new()
        .name("megamode-readiness".into())
        .spawn(move || {
            while !readiness.over.load(Ordering::SeqCst)
                && Instant::now() < deadline
                && !has_exited(pid)
            {
                match probe(&target, health.as_ref()) {
                    Probe::Ready => {
                        *crate::logs::lock(&readiness.at) = Some(Instant::now());
                        return;
                    }
                    Probe::Unhealthy => std::thread::sleep(HEALTH_EVERY),
                    Probe::NotListening => std::thread::sleep(POLL_EVERY),
                }
            }
        });
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

type Job = Box<dyn FnOnce() + Send>;

/// The thread that forks every server and watchdog. PR_SET_PDEATHSIG fires when the *thread* that
/// forked the child ends, not the process; forking from one thread that lives as long as the process
/// ties the child's life to the process, whichever Ruby thread happened to boot the server.
static KEEPER: Mutex<Option<(u32, std::sync::mpsc::Sender<Job>)>> = Mutex::new(None);

/// Runs `job` on the spawner thread and returns its result.
fn on_keeper<T: Send + 'static>(
    job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (reply, answer) = std::sync::mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(job());
    });
    let mut keeper = crate::logs::lock(&KEEPER);
    let pid = std::process::id();
    // After a fork the keeper thread is the parent's and does not exist here: start our own.
    if keeper.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("megamode-spawner".into())
            .spawn(move || {
                for job in inbox {
                    job();
                }
            })?;
        *keeper = Some((pid, jobs));
    }
    let sent = keeper
        .as_ref()
        .is_some_and(|(_, jobs)| jobs.send(job).is_ok());
    drop(keeper);
    let gone = || std::io::Error::other("the spawner thread is gone");
    if !sent {
        return Err(gone());
    }
    answer.recv().unwrap_or_else(|_| Err(gone()))
}

/// What a watchdog runs (`sh -c`, in the group it guards; its stdin is the lifeline). It ignores
/// the SIGTERM the group gets when megamode stops it (and the signals an app may send its own
/// group), and dies with the group's SIGKILL. When the handler's process is gone (the lifeline
/// reaches its end, or SIGPWR, its death signal, arrives) it stops the whole group: SIGTERM, then
/// SIGKILL two seconds later (nobody is left to read the server's answers), itself included.
const WATCHDOG_SCRIPT: &str = "trap '' HUP INT QUIT TERM USR1 USR2\n\
     stop() { kill -TERM 0; sleep 2; kill -KILL 0; exit 1; }\n\
     trap stop PWR\n\
     read _\n\
     stop\n";
/// The watchdog's death signal, one nobody sends a server's group (see `WATCHDOG_SCRIPT`).
const WATCHDOG_DEATH_SIGNAL: libc::c_int = libc::SIGPWR;

/// The pipe whose end tells watchdogs that this process is gone: this process alone holds the
/// write end (close-on-exec, so no server inherits it), each watchdog reads the other. Made again
/// in a forked child, which must not keep its parent's end open for nothing.
static LIFELINE: Mutex<Option<(u32, OwnedFd, OwnedFd)>> = Mutex::new(None);

/// A new descriptor for the lifeline's read end.
fn lifeline() -> std::io::Result<OwnedFd> {
    let mut lifeline = crate::logs::lock(&LIFELINE);
    let pid = std::process::id();
    if lifeline.as_ref().is_none_or(|(owner, _, _)| *owner != pid) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills both descriptors on success, which are then ours alone.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just created, owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        *lifeline = Some((pid, read, write));
    }
    match lifeline.as_ref() {
        Some((_, read, _)) => read.try_clone(),
        None => Err(std::io::Error::other("no lifeline")),
    }
}

/// Stops a process group when the handler's process ends, however it ends (SIGKILL included).
///
/// PR_SET_PDEATHSIG on the server reaches only the process megamode started: not a server behind
/// `cd app && puma ...` (the shell gets the signal, puma does not), not one that ignores SIGTERM, not
/// what the app forked. The watchdog is a small `sh` (nothing to ship: Lambda has /bin/sh) in the
/// guarded group, a child of the handler's process forked from the spawner thread: it learns of the
/// handler's end from the end of its lifeline pipe and from its own death signal, and then stops the
/// whole group (`WATCHDOG_SCRIPT`). Being in the group, it keeps the group's id from being reused
/// while it lives, and it goes with the group's SIGKILL when megamode stops the group itself.
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// A watchdog for the process group `pgid`, which must have a live member (or an unreaped one).
    pub fn start(pgid: libc::pid_t) -> std::io::Result<Watchdog> {
        let lifeline = lifeline()?;
        let parent = std::process::id() as libc::pid_t;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("megamode-watchdog")
            .current_dir("/")
            // Only what finds `sleep`: nothing of the handler's environment is needed.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::from(lifeline))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(pgid);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, WATCHDOG_DEATH_SIGNAL);
                if libc::getppid() != parent {
                    // The handler died before the line above took effect: nothing to wait for.
                    libc::kill(0, libc::SIGKILL);
                }
                Ok(())
            });
        }
        let child = on_keeper(move || command.spawn())?;
        Ok(Watchdog { child })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Failures in a row after which restarts stop until `COOL_DOWN` has passed.
const MAX_FAILURES: u32 = 5;
const COOL_DOWN: Duration = Duration::from_secs(30);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// When to start a server again after it failed (exited during boot, never became ready, or died
/// while serving): after a pause that doubles with each failure in a row, and, after
/// `MAX_FAILURES`, not before a cool-down, with an error that says why, instead of a hot loop.
#[derive(Debug, Default)]
pub struct Restarts {
    failures: u32,
    last: Option<(Instant, String)>,
}

impl Restarts {
    pub fn failed(&mut self, why: &str) {
        self.failures += 1;
        self.last = Some((Instant::now(), why.to_string()));
    }

    /// The app served a request: whatever failed before is over.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.last = None;
    }

    /// How long to wait before the next start, or the error that refuses it for now.
    pub fn next_start(&self, now: Instant) -> Result<Duration> {
        let Some((at, why)) = &self.last else {
            return Ok(Duration::ZERO);
        };
        let since = now.saturating_duration_since(*at);
        if self.failures >= MAX_FAILURES && since < COOL_DOWN {
            return Err(Error::boot(format!(
                "the app's server failed {} times in a row, so megamode waits {} s before starting \
                 it again ({:.0} s to go); the last failure: {why}",
                self.failures,
                COOL_DOWN.as_secs(),
                (COOL_DOWN - since).as_secs_f64().ceil()
            )));
        }
        let pause = Duration::from_millis(100)
            .saturating_mul(1 << (self.failures.saturating_sub(1)).min(16))
            .min(MAX_PAUSE);
        Ok(pause.saturating_sub(since))
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

/// The processes of a group that are not zombies, from /proc.
#[cfg(test)]
pub(crate) fn live_members(pgid: libc::pid_t) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name's closing parenthesis: state, ppid, pgrp, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            pids.push(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::block_on;

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
                LogSink::new(fd, crate::logs::LogFormat::Text)
            },
            health: None,
            boot_timeout: Duration::from_secs(30),
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
        // Killed processes linger as zombies until their new parent reaps them; those are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            live_members(pgid),
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
                "supervisor::tests::a_handler_killed_outright_takes_every_servers_whole_group_with_it",
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
        let deadline = Instant::now() + Duration::from_secs(10);
        let left = || -> Vec<i32> { groups.iter().flat_map(|&g| live_members(g)).collect() };
        while !left().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let survivors = left();
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

    #[test]
    fn restarts_pause_longer_after_each_failure_then_stop_with_the_reason() {
        let mut restarts = Restarts::default();
        let now = Instant::now();
        assert_eq!(restarts.next_start(now).unwrap(), Duration::ZERO);
        let mut pauses = Vec::new();
        for i in 0..MAX_FAILURES - 1 {
            restarts.failed(&format!("exit {i}"));
            let at = restarts.last.as_ref().unwrap().0;
            pauses.push(restarts.next_start(at).unwrap());
        }
        assert_eq!(pauses, [100, 200, 400, 800].map(Duration::from_millis));
        restarts.failed("exited with status 1: cannot load such file -- rails");
        let at = restarts.last.as_ref().unwrap().0;
        let err = restarts
            .next_start(at + Duration::from_secs(1))
            .unwrap_err();
        assert!(err.message.contains("failed 5 times in a row"), "{err}");
        assert!(
            err.message.contains("cannot load such file -- rails"),
            "{err}"
        );
        // After the cool-down, one more try, after the longest pause at most.
        assert!(restarts.next_start(at + COOL_DOWN).unwrap() <= MAX_PAUSE);
        restarts.succeeded();
        assert_eq!(restarts.next_start(at).unwrap(), Duration::ZERO);
    }

    #[test]
    fn default_command_follows_the_app() {
        let dir = std::env::temp_dir().join(format!("megamode-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = default_command(&dir, false).unwrap_err();
        assert!(err.message.contains("config.ru"), "{err}");
        std::fs::write(dir.join("config.ru"), "run ->(_) { [200, {}, []] }").unwrap();
        std::fs::write(dir.join("Gemfile"), "gem 'puma'").unwrap();
        std::fs::write(
            dir.join("Gemfile.lock"),
            "GEM\n  specs:\n    puma (6.4.0)\n",
        )
        .unwrap();
        assert!(default_command(&dir, false)
            .unwrap()
            .starts_with("exec bundle exec puma --bind tcp://"));
        assert!(default_command(&dir, true)
            .unwrap()
            .starts_with("exec bundle exec puma --bind unix://$MEGAMODE_SOCKET"));
        assert!(default_is_puma(&dir));
        std::fs::write(
            dir.join("Gemfile.lock"),
            "GEM\n  specs:\n    rack (3.0.0)\n",
        )
        .unwrap();
        assert!(default_command(&dir, true)
            .unwrap()
            .starts_with("exec bundle exec rackup "));
        assert!(!default_is_puma(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
