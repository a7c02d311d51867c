//! What ties the app's server to the handler's process: the one thread that forks every server and
//! watchdog, and the watchdog that stops a server's whole process group when the handler dies.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

type Job = Box<dyn FnOnce() + Send>;

/// The thread that forks every server and watchdog. PR_SET_PDEATHSIG fires when the *thread* that
/// forked the child ends, not the process; forking from one thread that lives as long as the process
/// ties the child's life to the process, whichever Ruby thread happened to boot the server.
/// (Linux only: elsewhere there is no PR_SET_PDEATHSIG, and the thread changes nothing.)
static KEEPER: Mutex<Option<(u32, std::sync::mpsc::Sender<Job>)>> = Mutex::new(None);

/// Runs `job` on the spawner thread and returns its result.
pub(super) fn on_keeper<T: Send + 'static>(
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
/// reaches its end, or, on Linux, SIGPWR, its death signal, arrives) it stops the whole group:
/// SIGTERM, then SIGKILL two seconds later (nobody is left to read the server's answers), itself
/// included.
macro_rules! watchdog_script {
    ($death_trap:literal) => {
        concat!(
            "trap '' HUP INT QUIT TERM USR1 USR2\n",
            "stop() { kill -TERM 0; sleep 2; kill -KILL 0; exit 1; }\n",
            $death_trap,
            "read _\n",
            "stop\n",
        )
    };
}
#[cfg(target_os = "linux")]
const WATCHDOG_SCRIPT: &str = watchdog_script!("trap stop PWR\n");
/// Without PR_SET_PDEATHSIG (macOS, where megamode runs for development and local tools, never on
/// Lambda) nothing sends a watchdog a death signal, so none is trapped (and macOS has no SIGPWR):
/// a free signal in its place would be one nobody sends. The lifeline alone tells the watchdog.
#[cfg(not(target_os = "linux"))]
const WATCHDOG_SCRIPT: &str = LIFELINE_ONLY_SCRIPT;
/// The watchdog without a death signal; built on Linux too, for its test.
#[cfg(any(test, not(target_os = "linux")))]
const LIFELINE_ONLY_SCRIPT: &str = watchdog_script!("");
/// The watchdog's death signal, one nobody sends a server's group (see `WATCHDOG_SCRIPT`).
#[cfg(target_os = "linux")]
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
        let (read, write) = cloexec_pipe()?;
        *lifeline = Some((pid, read, write));
    }
    match lifeline.as_ref() {
        Some((_, read, _)) => read.try_clone(),
        None => Err(std::io::Error::other("no lifeline")),
    }
}

/// A pipe, both ends close-on-exec.
#[cfg(target_os = "linux")]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors on success, which are then ours alone.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created, owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pipe, both ends close-on-exec, where there is no pipe2 (macOS).
#[cfg(not(target_os = "linux"))]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    pipe_then_cloexec()
}

/// pipe, then FD_CLOEXEC on each end. A process another thread forks and execs in between inherits
/// the write end, and, with no death signal there either, watchdogs then learn of this process's
/// end only once that one has ended too: a narrow window, once per process, on a development
/// machine. Built on Linux too, for its test.
#[cfg(any(test, not(target_os = "linux")))]
fn pipe_then_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills both descriptors on success, which are then ours alone.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created, owned by nothing else.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&ends.0, &ends.1] {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(ends)
}

/// Stops a process group when the handler's process ends, however it ends (SIGKILL included).
///
/// PR_SET_PDEATHSIG on the server reaches only the process megamode started: not a server behind
/// `cd app && puma ...` (the shell gets the signal, puma does not), not one that ignores SIGTERM, not
/// what the app forked. The watchdog is a small `sh` (nothing to ship: Lambda has /bin/sh) in the
/// guarded group, a child of the handler's process forked from the spawner thread: it learns of the
/// handler's end from the end of its lifeline pipe and (on Linux) from its own death signal, and
/// then stops the whole group (`WATCHDOG_SCRIPT`). Being in the group, it keeps the group's id from
/// being reused while it lives, and it goes with the group's SIGKILL when megamode stops the group
/// itself.
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// A watchdog for the process group `pgid`, which must have a live member (or an unreaped one).
    pub fn start(pgid: libc::pid_t) -> std::io::Result<Watchdog> {
        let lifeline = lifeline()?;
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
        // Elsewhere (macOS) no death signal: the lifeline alone, and a handler that died before
        // the watchdog started has already closed its end (`read` returns at once).
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id() as libc::pid_t;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// macOS's pipe, made here: both ends close-on-exec, and it carries bytes.
    #[test]
    fn the_pipe_without_pipe2_is_close_on_exec_at_both_ends() {
        let (read, write) = pipe_then_cloexec().unwrap();
        for fd in [&read, &write] {
            // SAFETY: F_GETFD on a descriptor the test owns.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
        let mut write = std::fs::File::from(write);
        std::io::Write::write_all(&mut write, b"x").unwrap();
        let mut byte = [0u8; 1];
        std::io::Read::read_exact(&mut std::fs::File::from(read), &mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    /// The watchdog as macOS runs it, with no death signal: the end of its lifeline alone stops
    /// its whole group, what ignores SIGTERM included.
    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn without_a_death_signal_the_lifelines_end_stops_the_group() {
        let mut group = Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; sleep 60 & wait"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = group.id() as libc::pid_t;
        // The pipe2 one (this test runs on Linux): the script is what is tested, and a write end
        // another test's child inherited between pipe and fcntl would hold the lifeline open.
        let (read, write) = cloexec_pipe().unwrap();
        let mut watchdog = Command::new("/bin/sh")
            .arg("-c")
            .arg(LIFELINE_ONLY_SCRIPT)
            .arg("megamode-watchdog")
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(pgid)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            crate::supervisor::live_members(pgid).len() >= 3,
            "the shell, its sleep and the watchdog run"
        );
        drop(write);
        let survivors = crate::supervisor::survivors(&[pgid], Duration::from_secs(10));
        for &pid in &survivors {
            // SAFETY: the test's own strays, so that a failure leaves nothing running.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = group.wait();
        let _ = watchdog.wait();
        assert_eq!(
            survivors,
            Vec::<i32>::new(),
            "no process of the group is left"
        );
    }
}
