//! The probes. Each returns a short description of what it saw; the caller bounds its time.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::Check;

/// Most response bytes an HTTP check reads.
const MAX_RESPONSE: u64 = 64 * 1024;

pub async fn run(addr: SocketAddr, check: &Check) -> Result<String, String> {
    match check {
        Check::Tcp => tcp(addr).await,
        Check::Http { path, expect_status, expect_body } => {
            http(addr, path, *expect_status, expect_body.as_deref()).await
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))
}

pub async fn tcp(addr: SocketAddr) -> Result<String, String> {
    connect(addr).await.map(|_| "TCP connect".to_owned())
}

pub async fn http(
    addr: SocketAddr,
    path: &str,
    expect_status: u16,
    expect_body: Option<&str>,
) -> Result<String, String> {
    let mut stream = connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: foobar-health-check\r\nConnection: close\r\n\r\n",
        addr.ip()
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    (&mut stream).take(MAX_RESPONSE).read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "no HTTP status line".to_owned())?;
    if status != expect_status {
        return Err(format!("HTTP {status}, expected {expect_status}"));
    }
    if let Some(needle) = expect_body {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !body.contains(needle) {
            return Err(format!("HTTP {status} but the body lacks {needle:?}"));
        }
    }
    Ok(format!("HTTP {status}"))
}
