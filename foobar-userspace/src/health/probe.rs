//! The probes. Each returns a short description of what the backend answered; the caller
//! bounds its time.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::{Check, Http, Statuses, tls};

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
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no HTTP status line: {0:?}")]
    NoStatusLine(String),
    #[error("HTTP {got}, expected {expected}")]
    Status { got: u16, expected: Statuses },
    #[error("HTTP {status} but the body lacks {needle:?}")]
    Body { status: u16, needle: String },
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

pub async fn run(addr: SocketAddr, check: &Check) -> Result<String, ProbeError> {
    match check {
        Check::Tcp => tcp(addr).await,
        Check::Http(h) => http(addr, h).await,
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeError> {
    TcpStream::connect(addr).await.map_err(|e| ProbeError::Connect(e.to_string()))
}

pub async fn tcp(addr: SocketAddr) -> Result<String, ProbeError> {
    connect(addr).await.map(|_| "TCP connect".to_owned())
}

pub async fn http(addr: SocketAddr, check: &Http) -> Result<String, ProbeError> {
    let stream = connect(addr).await?;
    let host = match &check.host {
        Some(h) => h.clone(),
        None => addr.ip().to_string(),
    };
    let authority = if addr.is_ipv6() && check.host.is_none() { format!("[{host}]") } else { host.clone() };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: foobar-health-check\r\nConnection: close\r\n\r\n",
        check.path
    );
    let response = if check.tls {
        exchange(tls::connect(stream, &host).await?, &request).await?
    } else {
        exchange(stream, &request).await?
    };
    judge(&response, check)
}

/// Sends `request` and reads the response (up to [`MAX_RESPONSE`] bytes) until the server
/// closes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> Result<Vec<u8>, ProbeError> {
    stream.write_all(request.as_bytes()).await.map_err(|e| ProbeError::Send(e.to_string()))?;
    let mut response = Vec::new();
    let read = (&mut stream).take(MAX_RESPONSE).read_to_end(&mut response).await;
    // A TLS server that closes without close_notify has still said everything it meant to.
    if let Err(e) = read
        && (response.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof)
    {
        return Err(ProbeError::Read(e.to_string()));
    }
    Ok(response)
}

/// Whether `response` passes `check`: its status line, then its body.
fn judge(response: &[u8], check: &Http) -> Result<String, ProbeError> {
    let text = String::from_utf8_lossy(response);
    let line = text.lines().next().unwrap_or_default();
    let status = status_code(line).ok_or_else(|| ProbeError::NoStatusLine(line.chars().take(40).collect()))?;
    if !check.expect.contains(status) {
        return Err(ProbeError::Status { got: status, expected: check.expect });
    }
    if let Some(needle) = &check.expect_body {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !body.contains(needle.as_str()) {
            return Err(ProbeError::Body { status, needle: needle.clone() });
        }
    }
    Ok(format!("{} {status}", if check.tls { "HTTPS" } else { "HTTP" }))
}

/// The status of an HTTP/1.x status line (`HTTP/1.1 200 OK`): exactly three digits after the
/// version and one space, then a space or the end.
fn status_code(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let mut chars = rest.chars();
    chars.next().filter(char::is_ascii_digit)?;
    let rest = chars.as_str().strip_prefix(' ')?;
    let (code, after) = rest.split_at_checked(3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_real_status_line_counts() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 404"), Some(404));
        for bad in ["FOO 200", "HTTP/1.1 2000", "HTTP/1.1  200", "HTTP/2 200", "HTTP/1.1 20", "200 OK", "HTTP/1.x 200"]
        {
            assert_eq!(status_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_and_bodies_are_judged() {
        let check = |expect: &str, body: Option<&str>| Http {
            tls: false,
            path: "/".into(),
            host: None,
            expect: expect.parse().expect("statuses"),
            expect_body: body.map(str::to_owned),
        };
        let ok = b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\nmoved";
        assert_eq!(judge(ok, &check("200-399", None)), Ok("HTTP 302".into()));
        assert!(matches!(judge(ok, &check("2xx", None)), Err(ProbeError::Status { got: 302, .. })));
        assert!(matches!(judge(ok, &check("3xx", Some("gone"))), Err(ProbeError::Body { .. })));
        assert!(matches!(judge(b"FOO 200 OK\r\n\r\n", &check("2xx", None)), Err(ProbeError::NoStatusLine(_))));
    }
}
