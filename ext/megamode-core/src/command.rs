//! Command events: `{"megamode": {"command": "bin/rails db:migrate"}}` runs a command in the app's
//! directory with the server's environment, for the one-off tasks a deploy needs (migrations, cache
//! warm-up). Only commands `MEGAMODE_COMMANDS_ALLOWED` matches in full may run: the event could come
//! from anyone allowed to invoke the function.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The most output returned (its end, where errors are); more is cut from the front.
const MAX_OUTPUT: usize = 256 * 1024;

/// The command an event asks for.
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

/// Whether `allowed` (MEGAMODE_COMMANDS_ALLOWED) lets `command` run; none is allowed without it.
pub fn check(command: &str, allowed: Option<&regex_lite::Regex>) -> Result<()> {
    match allowed {
        Some(pattern) if pattern.is_match(command) => Ok(()),
        Some(pattern) => Err(Error::event(format!(
            "the command {command:?} does not match MEGAMODE_COMMANDS_ALLOWED ({pattern}), so it was not run"
        ))),
        None => Err(Error::event(format!(
            "the command {command:?} was not run: command events are off until \
             MEGAMODE_COMMANDS_ALLOWED names the commands that may run (a regular expression)"
        ))),
    }
}

/// Runs `command` with `sh -c` in `dir`, stdout and stderr together, for at most `limit`:
/// `{"status": exit status or null, "signal": when killed, "output": text, "timed_out": bool}`.
pub fn run(command: &str, dir: &Path, env: &[(String, String)], limit: Duration) -> Result<Value> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        // Both streams into one pipe, in the order they were written.
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::boot(format!("cannot run {command:?} in {}: {e}", dir.display())))?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output.extend_from_slice(&buf[..n]);
                if output.len() > 2 * MAX_OUTPUT {
                    output.drain(..output.len() - MAX_OUTPUT);
                }
            }
        }
        output
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::boot(e.to_string()))? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: signals the command's own process group.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            break child.wait().map_err(|e| Error::boot(e.to_string()))?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut output = reader.join().unwrap_or_default();
    if output.len() > MAX_OUTPUT {
        output.drain(..output.len() - MAX_OUTPUT);
    }
    Ok(json!({
        "status": status.code(),
        "signal": status.signal(),
        "output": String::from_utf8_lossy(&output),
        "timed_out": timed_out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(pattern: &str) -> regex_lite::Regex {
        regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap()
    }

    #[test]
    fn only_allowed_commands_run() {
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
    fn a_command_returns_its_status_and_both_streams_in_order() {
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
    fn a_command_past_its_time_is_killed_and_says_so() {
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

    #[test]
    fn the_event_must_name_a_command() {
        let event = json!({"megamode": {}});
        assert!(requested(&event).is_err());
        let event = json!({"megamode": {"command": "bin/rails db:migrate"}});
        assert_eq!(requested(&event).unwrap(), "bin/rails db:migrate");
    }
}
