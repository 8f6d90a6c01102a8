//! The CLI's side of the control socket.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{Context, bail};

use super::protocol::{Request, Response};

/// Sends `request` to the daemon listening at `socket` and returns its response.
pub fn request(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "foobar is not running (nothing listens on {}); start it with `sudo foobar run --config FILE`",
            socket.display()
        ),
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("permission denied on {}: the control socket is root's, use sudo", socket.display())
        }
        _ => anyhow::anyhow!("cannot reach foobar at {}: {e}", socket.display()),
    })?;
    // A switchover waits for a replica to catch up: seconds, bounded by the daemon.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).context("send request")?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).context("read response")?;
    if reply.is_empty() {
        bail!("foobar closed the control connection without answering");
    }
    serde_json::from_str(&reply).with_context(|| format!("unreadable response from foobar: {reply}"))
}
