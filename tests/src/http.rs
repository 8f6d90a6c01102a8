//! A minimal HTTP/1.1 client over one kept-alive TCP connection: what a test needs to hold a
//! connection open across a change (a drain, a restart) and see who answers on it; and one
//! request on a connection of its own ([`answered`]), as a client that reconnects each time.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::netns::Netns;

/// A kept-alive connection opened from inside a namespace.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects from `ns` to `addr` (the socket stays in `ns` whichever thread uses it).
    pub fn open(ns: &Netns, addr: SocketAddr) -> KeepAlive {
        let stream = {
            let _inside = ns.enter();
            TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("connect to {addr} from {}: {e}", ns.name()))
        };
        stream.set_read_timeout(Some(Duration::from_secs(3))).expect("read timeout");
        KeepAlive { reader: BufReader::new(stream) }
    }

    /// `GET path` on this connection; returns the body (panics if it cannot).
    pub fn get(&mut self, path: &str) -> String {
        self.try_get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path` on this connection: the body, or why there is none (a reset, a timeout).
    pub fn try_get(&mut self, path: &str) -> std::io::Result<String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: www.foobar.com\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().map_err(|_| std::io::Error::other("bad content-length"))?;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// One `GET /` on a new connection to `addr` (from the calling thread's namespace), given
/// `connect` to connect and `read` for the answer: whether it came back 200.
pub fn answered(addr: SocketAddr, connect: Duration, read: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, connect) else { return false };
    let _ = s.set_read_timeout(Some(read));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).is_ok() && reply.starts_with(b"HTTP/1.1 200")
}

/// How one kept-alive connection of [`keep_asking`] fared.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub requests: u64,
    /// The longest a request on it took (a takeover's stall shows here).
    pub longest: Duration,
    /// When that request was sent, after the connection opened.
    pub longest_at: Duration,
    /// Why it ended early (a reset, a 3 s timeout), if it did.
    pub failed: Option<String>,
}

/// `connections` kept-alive connections from `ns` to `addr`, each asking `GET /` every 20 ms
/// for `lasting`, on a thread of its own; joined, how each fared.
pub fn keep_asking(
    ns: &Netns,
    addr: SocketAddr,
    connections: usize,
    lasting: Duration,
) -> Vec<std::thread::JoinHandle<Held>> {
    (0..connections)
        .map(|_| {
            let ns = ns.clone();
            std::thread::spawn(move || {
                let mut c = KeepAlive::open(&ns, addr);
                let started = std::time::Instant::now();
                let mut held = Held::default();
                while started.elapsed() < lasting {
                    let asked = std::time::Instant::now();
                    if let Err(e) = c.try_get("/") {
                        let sent = asked - started;
                        held.failed = Some(format!("asked {sent:?} in, {e} after {:?}", asked.elapsed()));
                        break;
                    }
                    held.requests += 1;
                    let took = asked.elapsed();
                    if took > held.longest {
                        (held.longest, held.longest_at) = (took, asked - started);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                held
            })
        })
        .collect()
}
