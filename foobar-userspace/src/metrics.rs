//! The HTTP endpoint on `daemon.metrics_listen`: `GET /metrics` answers Prometheus's text
//! exposition format, `GET /` (or `/status`) the status page. Bodies come from the daemon's
//! event loop (which owns the data plane), asked over a channel per request; anything else
//! gets a 404.

use std::io;

use crate::slots::Slots;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

/// A page the endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Metrics,
    Status,
}

/// A request for a page on its way to the event loop, with where to send the body.
pub type Scrape = (Page, oneshot::Sender<String>);

pub async fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Scrapes answered at once, and how long one may take (request, body, send) before it is
/// dropped: a loop of slow or idle clients cannot pile up tasks or descriptors.
pub const SLOTS: usize = 16;
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(listener: TcpListener, scrapes: mpsc::Sender<Scrape>) {
    Slots::new("metrics", SLOTS)
        .serve(listener, |stream, _| {
            let scrapes = scrapes.clone();
            async move {
                let _ = tokio::time::timeout(ANSWER_TIMEOUT, answer(stream, scrapes)).await;
            }
        })
        .await;
}

async fn answer(mut stream: TcpStream, scrapes: mpsc::Sender<Scrape>) {
    let mut buf = [0u8; 2048];
    let Ok(n) = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await.unwrap_or(Ok(0))
    else {
        return;
    };
    let request = String::from_utf8_lossy(&buf[..n]);
    let path = request.lines().next().and_then(|l| l.strip_prefix("GET ")).and_then(|l| l.split(' ').next());
    let page = match path {
        Some("/metrics") => Some(Page::Metrics),
        Some("/" | "/status") => Some(Page::Status),
        _ => None,
    };
    let kind = match page {
        Some(Page::Status) => "text/html; charset=utf-8",
        _ => "text/plain; version=0.0.4",
    };
    let (status, body) = match page {
        Some(page) => {
            let (tx, rx) = oneshot::channel();
            match scrapes.send((page, tx)).await {
                Ok(()) => ("200 OK", rx.await.unwrap_or_default()),
                Err(_) => ("503 Service Unavailable", "foobar is shutting down\n".to_owned()),
            }
        }
        None => ("404 Not Found", "served here: /metrics (Prometheus) and / (the status page)\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// Prometheus text exposition, built family by family.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.0.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One sample; `labels` as (name, value) pairs, values escaped here.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
                .collect();
            self.0.push_str(&format!("{{{}}}", l.join(",")));
        }
        self.0.push_str(&format!(" {value}\n"));
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// Upper bounds (seconds) of the health-check latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 1.0];

/// A cumulative latency histogram.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_histograms_are_cumulative() {
        let mut e = Exposition::default();
        e.family("foobar_x_total", "counter", "An example.");
        e.sample("foobar_x_total", &[("rule", "tcp to \"a\"")], 3.0);
        assert_eq!(
            e.finish(),
            "# HELP foobar_x_total An example.\n# TYPE foobar_x_total counter\nfoobar_x_total{rule=\"tcp to \\\"a\\\"\"} 3\n"
        );
        let mut h = Histogram::default();
        h.observe(0.002);
        h.observe(0.3);
        assert_eq!(h.buckets, [0, 0, 1, 1, 1, 1, 1, 2]);
        assert_eq!(h.count, 2);
    }
}
