//! The daemon's side of the control socket: each connection's request goes to the daemon's
//! event loop, which owns the data plane, and its answer goes back.

use std::{io, os::unix::fs::PermissionsExt, path::Path};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tracing::debug;

use super::protocol::{Request, Response};
use crate::slots::Slots;

/// A request on its way to the event loop, with where to send the answer.
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// Binds the socket at `path` (replacing a stale one, creating its directory), mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Control connections served at once; a client that connects and says nothing holds its
/// slot for at most [`REQUEST_TIMEOUT`].
pub const SLOTS: usize = 16;
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a connection waits for its answer: a switchover's catch-up takes seconds.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves connections until the task is dropped.
pub async fn serve(listener: UnixListener, calls: mpsc::Sender<Call>) {
    Slots::new("control", SLOTS)
        .serve(listener, |stream, _| {
            let calls = calls.clone();
            async move {
                if tokio::time::timeout(REQUEST_TIMEOUT + ANSWER_TIMEOUT, connection(stream, calls)).await.is_err() {
                    debug!("control connection timed out");
                }
            }
        })
        .await;
}

async fn connection(stream: UnixStream, calls: mpsc::Sender<Call>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(64 * 1024));
    if !matches!(tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await, Ok(Ok(_))) {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            debug!(?request, "control request");
            let (tx, rx) = oneshot::channel();
            if calls.send(Call { request, reply: tx }).await.is_err() {
                Response::Error { message: "foobar is shutting down".into() }
            } else {
                match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => Response::Error { message: "foobar dropped the request".into() },
                    Err(_) => Response::Error { message: format!("no answer within {ANSWER_TIMEOUT:?}") },
                }
            }
        }
        Err(e) => Response::Error { message: format!("malformed request: {e}") },
    };
    let mut out =
        serde_json::to_string(&response).unwrap_or_else(|e| format!("{{\"result\":\"error\",\"message\":\"{e}\"}}"));
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}
