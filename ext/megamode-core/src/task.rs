//! Tasks: the one-off jobs a deploy needs (migrations, cache warm-up), asked for by a command
//! event, `{"megamode": {"command": "bin/rails db:migrate"}}`, and run as a shell line in the app's
//! directory with the server's environment. Only tasks `MEGAMODE_COMMANDS_ALLOWED` matches in full
//! may run: the event could come from anyone allowed to invoke the function. (The server's own
//! command, `MEGAMODE_COMMAND`, is another thing: see `supervisor::launch`.)

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The most output returned (its end, where errors are); more is cut from the front.
const MAX_OUTPUT: usize = 256 * 1024;

/// The task a command event asks for: its shell line.
pub fn requested(event: &Value) -> Result<&str> {
    event
        .get("megamode")
        .and_then(|m| m.get("command"))
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            Error::event(
                "a megamode event needs {\"megamode\": {\"command\": \"...\"}} with the command to run",
            )
        })
}

/// Whether `allowed` (MEGAMODE_COMMANDS_ALLOWED) lets `task` run; none is allowed without it.
pub fn check(task: &str, allowed: Option<&regex_lite::Regex>) -> Result<()> {
    match allowed {
        Some(pattern) if pattern.is_match(task) => Ok(()),
        Some(pattern) => Err(Error::event(format!(
            "the command {task:?} does not match MEGAMODE_COMMANDS_ALLOWED ({pattern}), so it was not run"
        ))),
        None => Err(Error::event(format!(
            "the command {task:?} was not run: command events are off until \
             MEGAMODE_COMMANDS_ALLOWED names the commands that may run (a regular expression)"
        ))),
    }
}

/// Runs the shell line `task` with `sh -c` in `dir`, stdout and stderr together, for at most `limit`:
/// `{"status": exit status or null, "signal": when killed, "output": text, "timed_out": bool}`.
///
/// The task runs in a process group of its own. When the shell exits, what it left running in
/// the background is stopped: SIGTERM to the group, then SIGKILL once their output is closed or after
/// `LEFTOVER_GRACE` (within the deadline). At the deadline the whole group gets SIGKILL and
/// `timed_out` is true. Output still held open by a process that left the group is not waited for.
pub fn run(task: &str, dir: &Path, env: &[(String, String)], limit: Duration) -> Result<Value> {
    let deadline = Instant::now() + limit;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        // Both streams into one pipe, in the order they were written.
        .arg(format!("exec 2>&1\n{task}"))
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::boot(format!("cannot run {task:?} in {}: {e}", dir.display())))?;
    let pgid = child.id() as libc::pid_t;
    // If the handler's process dies while the task runs, the group goes with it. Without a
    // watchdog the task still runs, as it did.
    let watchdog = crate::supervisor::watchdog::Watchdog::start(pgid).ok();
    let mut output = Output::new(child.stdout.take().map(OwnedFd::from));

    // Until the shell exits or time is up. The shell is not reaped before the end: its pid stays
    // the group's id, so signalling the group never reaches another one.
    let timed_out = loop {
        if crate::supervisor::server::has_exited(pgid) {
            break false;
        }
        let now = Instant::now();
        if now >= deadline {
            break true;
        }
        output.read_for((deadline - now).min(TICK));
    };
    if !timed_out {
        // Background processes it left: asked to stop, then killed.
        signal_group(pgid, libc::SIGTERM);
        let until = deadline.min(Instant::now() + LEFTOVER_GRACE);
        output.read_until(until);
    }
    signal_group(pgid, libc::SIGKILL);
    drop(watchdog);
    // What the group wrote before it ended; a process outside it may hold the pipe open for ever.
    output.read_until(Instant::now() + LAST_OUTPUT);
    let status = child.wait().map_err(|e| Error::boot(e.to_string()))?;
    Ok(json!({
        "status": status.code(),
        "signal": status.signal(),
        "output": output.text(),
        "timed_out": timed_out,
    }))
}

/// How often the shell is checked for its exit while output is awaited.
const TICK: Duration = Duration::from_millis(5);
/// How long background processes a task left get between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(1);
/// How long output is awaited after the group is gone.
const LAST_OUTPUT: Duration = Duration::from_millis(100);

/// The task's output pipe and what came through it (its end, at most `MAX_OUTPUT`).
struct Output {
    pipe: Option<OwnedFd>,
    bytes: Vec<u8>,
}

impl Output {
    fn new(pipe: Option<OwnedFd>) -> Output {
        Output {
            pipe,
            bytes: Vec::new(),
        }
    }

    /// Reads what arrives within `limit` (returning early at the end of the output).
    fn read_for(&mut self, limit: Duration) {
        let Some(pipe) = &self.pipe else {
            std::thread::sleep(limit);
            return;
        };
        let mut poll = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = limit.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, millis) } <= 0 {
            return;
        }
        let mut buf = [0u8; 64 * 1024];
        // SAFETY: reads into a buffer of that length; poll said there is data or an end.
        let n = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            self.bytes.extend_from_slice(&buf[..n as usize]);
            if self.bytes.len() > 2 * MAX_OUTPUT {
                self.bytes.drain(..self.bytes.len() - MAX_OUTPUT);
            }
        } else if n == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            // The end: every writer closed it.
            self.pipe = None;
        }
    }

    /// Reads until the end of the output, or until `until`.
    fn read_until(&mut self, until: Instant) {
        while self.pipe.is_some() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            self.read_for(until - now);
        }
    }

    fn text(mut self) -> String {
        if self.bytes.len() > MAX_OUTPUT {
            self.bytes.drain(..self.bytes.len() - MAX_OUTPUT);
        }
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: the group is the task's; its leader is not reaped yet, so the id is still its.
    unsafe { libc::kill(-pgid, signal) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(pattern: &str) -> regex_lite::Regex {
        regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap()
    }

    #[test]
    fn only_allowed_tasks_run() {
        let pattern = allow(r"bin/rails db:migrate( RAILS_ENV=\w+)?");
        assert!(check("bin/rails db:migrate", Some(&pattern)).is_ok());
        let err = check("bin/rails db:migrate; rm -rf /", Some(&pattern)).unwrap_err();
        assert!(
            err.message
                .contains("does not match MEGAMODE_COMMANDS_ALLOWED"),
            "{err}"
        );
        let err = check("ls", None).unwrap_err();
        assert!(err.message.contains("MEGAMODE_COMMANDS_ALLOWED"), "{err}");
    }

    #[test]
    fn a_task_returns_its_status_and_both_streams_in_order() {
        let env = vec![("GREETING".to_string(), "hello".to_string())];
        let out = run(
            "echo $GREETING; echo oops >&2; exit 3",
            &std::env::temp_dir(),
            &env,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out["status"], 3);
        assert_eq!(out["output"], "hello\noops\n");
        assert_eq!(out["timed_out"], false);
    }

    #[test]
    fn a_task_past_its_time_is_killed_and_says_so() {
        let out = run(
            "echo started; sleep 30",
            &std::env::temp_dir(),
            &[],
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!(out["timed_out"], true);
        assert_eq!(out["signal"], libc::SIGKILL);
        assert_eq!(out["output"], "started\n");
    }

    /// What is left of a task's group (its id is the shell's pid, `$$`) once it is gone.
    fn survivors(pgid: libc::pid_t) -> Vec<i32> {
        crate::supervisor::survivors(&[pgid], Duration::from_secs(5))
    }

    fn group_of(output: &Value) -> libc::pid_t {
        let text = output["output"].as_str().unwrap();
        text.lines().next().unwrap().parse().unwrap()
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn what_a_task_leaves_running_is_stopped_when_it_ends() {
        // The background child keeps the output open: waiting for the end of the output would
        // wait for it (20 s), past the task's time.
        let out = run(
            "echo $$; echo started; (sleep 20; echo survived) &",
            &std::env::temp_dir(),
            &[],
            Duration::from_secs(3),
        )
        .unwrap();
        assert_eq!(out["status"], 0);
        assert_eq!(out["timed_out"], false);
        let output = out["output"].as_str().unwrap();
        assert!(output.ends_with("started\n"), "{output:?}");
        assert_eq!(survivors(group_of(&out)), Vec::<i32>::new());
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn a_task_cut_at_its_deadline_ends_with_its_whole_group() {
        let out = run(
            "echo $$; echo started; sleep 20 & sleep 30",
            &std::env::temp_dir(),
            &[],
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(out["timed_out"], true);
        assert_eq!(survivors(group_of(&out)), Vec::<i32>::new());
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
    fn output_held_open_outside_the_group_does_not_hold_the_result() {
        // A child in a session of its own escapes the group's signals and keeps the output open:
        // the result comes without waiting for it (it is still running then), and the test ends it.
        let out = run(
            // Waits until the child has left the group (field 5 of its stat).
            "echo $$; setsid sleep 20 & echo $!; \
             while [ \"$(cut -d' ' -f5 /proc/$!/stat)\" = $$ ]; do sleep 0.01; done",
            &std::env::temp_dir(),
            &[],
            Duration::from_secs(3),
        )
        .unwrap();
        let escaped: libc::pid_t = out["output"]
            .as_str()
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // Still that sleep: not a zombie, and the leader of a group of its own.
        let stat = std::fs::read_to_string(format!("/proc/{escaped}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.split_whitespace().collect();
        let running = fields.len() > 4
            && fields[1] == "(sleep)"
            && fields[2] != "Z"
            && fields[4] == escaped.to_string();
        // SAFETY: ends the test's own stray process.
        unsafe { libc::kill(escaped, libc::SIGKILL) };
        assert!(running, "the result came before the escaped child ended");
        assert_eq!(out["status"], 0);
    }

    #[test]
    fn the_event_must_name_a_command() {
        let event = json!({"megamode": {}});
        assert!(requested(&event).is_err());
        let event = json!({"megamode": {"command": "bin/rails db:migrate"}});
        assert_eq!(requested(&event).unwrap(), "bin/rails db:migrate");
    }
}
