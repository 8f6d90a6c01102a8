//! The probes. Each returns a short description of what the backend answered; the caller
//! bounds its time.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::Check;

/// Most response bytes an HTTP check reads.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Why a probe failed, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("send: {0}")]
    Send(String),
    #[error("read: {0}")]
    Read(String),
    #[error("no HTTP status line")]
    NoStatusLine,
    #[error("HTTP {got}, expected {expected}")]
    Status { got: u16, expected: u16 },
    #[error("HTTP {status} but the body lacks {needle:?}")]
    Body { status: u16, needle: String },
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

pub async fn run(addr: SocketAddr, check: &Check) -> Result<String, ProbeError> {
    match check {
        Check::Tcp => tcp(addr).await,
        Check::Http { path, expect_status, expect_body } => {
            http(addr, path, *expect_status, expect_body.as_deref()).await
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeError> {
    TcpStream::connect(addr).await.map_err(|e| ProbeError::Connect(e.to_string()))
}

pub async fn tcp(addr: SocketAddr) -> Result<String, ProbeError> {
    connect(addr).await.map(|_| "TCP connect".to_owned())
}

pub async fn http(
    addr: SocketAddr,
    path: &str,
    expect_status: u16,
    expect_body: Option<&str>,
) -> Result<String, ProbeError> {
    let mut stream = connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: foobar-health-check\r\nConnection: close\r\n\r\n",
        addr.ip()
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| ProbeError::Send(e.to_string()))?;
    let mut response = Vec::new();
    (&mut stream).take(MAX_RESPONSE).read_to_end(&mut response).await.map_err(|e| ProbeError::Read(e.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(ProbeError::NoStatusLine)?;
    if status != expect_status {
        return Err(ProbeError::Status { got: status, expected: expect_status });
    }
    if let Some(needle) = expect_body {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !body.contains(needle) {
            return Err(ProbeError::Body { status, needle: needle.to_owned() });
        }
    }
    Ok(format!("HTTP {status}"))
}
