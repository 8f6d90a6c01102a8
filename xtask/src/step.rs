//! Running the external commands a task is made of, each announced and timed.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, bail};

/// Runs `f` as a named step, printing its name first and its duration after.
pub fn timed<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    eprintln!("==> {name}");
    let start = Instant::now();
    let out = f().with_context(|| format!("step failed: {name}"))?;
    eprintln!("    {name}: done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(out)
}

/// Runs a command with inherited output; an unsuccessful exit is an error naming the command.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.stdin(Stdio::null()).status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
