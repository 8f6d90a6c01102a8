//! The hook for routing daemons other than BIRD (ExaBGP, GoBGP, FRR): `announce.command` run
//! as `PROGRAM ARGS... announce NAME` or `... withdraw NAME`, without a shell, for at most
//! [`TIMEOUT`]; exit status 0 means done. It runs again at every reassertion, so it must be
//! idempotent, as `gobgp global rib add` and ExaBGP's `announce route` are.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long the command may run before it is killed and counted as failed.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How much of the command's output is kept for the log and `status`.
const KEPT: usize = 400;

/// Why the command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{line}`: {source}")]
    Spawn { line: String, source: std::io::Error },
    #[error("`{line}` failed ({status}): {output}")]
    Failed { line: String, status: ExitStatus, output: String },
    #[error("`{line}` did not finish within {TIMEOUT:?} and was killed")]
    Timeout { line: String },
}

/// Runs `command` with `announce NAME` or `withdraw NAME` added; what it printed.
pub fn run(command: &[String], name: &str, announce: bool) -> Result<String, CommandError> {
    let verb = if announce { "announce" } else { "withdraw" };
    let line = format!("{} {verb} {name}", command.join(" "));
    let (program, args) = command
        .split_first()
        .ok_or_else(|| CommandError::Spawn { line: line.clone(), source: std::io::ErrorKind::InvalidInput.into() })?;
    let mut child = Command::new(program)
        .args(args)
        .args([verb, name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Spawn { line: line.clone(), source })?;
    // Both pipes drained while it runs, so a chatty command never blocks on a full pipe.
    let readers = [drain(child.stdout.take()), drain(child.stderr.take())];
    let status = wait(&mut child, TIMEOUT);
    // A process the command left in the background may hold the pipes open: its output is
    // not waited for beyond a moment.
    let grace = Instant::now();
    while readers.iter().any(|r| !r.is_finished()) && grace.elapsed() < Duration::from_millis(500) {
        thread::sleep(Duration::from_millis(5));
    }
    let output = readers.map(|r| if r.is_finished() { r.join().unwrap_or_default() } else { String::new() }).join(" ");
    let output = kept(output.trim());
    match status {
        Some(status) if status.success() => Ok(output),
        Some(status) => Err(CommandError::Failed { line, status, output }),
        None => Err(CommandError::Timeout { line }),
    }
}

/// A thread reading `pipe` to its end.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The child's exit status, or `None` once `within` passed (the child then killed and reaped).
fn wait(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if started.elapsed() < within => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The output's first [`KEPT`] bytes (at a character boundary), its lines joined.
fn kept(output: &str) -> String {
    let mut end = output.len().min(KEPT);
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    output[..end].lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        ["/bin/sh", "-c", script, "hook"].map(str::to_owned).to_vec()
    }

    #[test]
    fn the_verb_and_name_come_last_and_failures_say_why() {
        assert_eq!(
            run(&sh("echo \"$0 $1 $2\""), "192.0.2.10/32", true).ok().as_deref(),
            Some("hook announce 192.0.2.10/32")
        );
        assert_eq!(run(&sh("echo $1"), "www", false).ok().as_deref(), Some("withdraw"));
        let failed = run(&sh("echo no route >&2; exit 3"), "www", true).expect_err("exit 3");
        assert!(failed.to_string().contains("exit status: 3") && failed.to_string().contains("no route"), "{failed}");
        let missing = run(&["/nonexistent/gobgp".to_owned()], "www", true).expect_err("no program");
        assert!(matches!(missing, CommandError::Spawn { .. }), "{missing}");
    }

    #[test]
    fn a_hung_command_is_killed() {
        let started = Instant::now();
        let hung = run(&sh("exec sleep 30"), "www", true).expect_err("hung");
        assert!(matches!(hung, CommandError::Timeout { .. }), "{hung}");
        assert!(started.elapsed() < TIMEOUT + Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
