//! Health checks: one task per backend, probing every `interval`, each probe bounded by
//! `timeout`, so a hung backend costs its own task at most the timeout and never delays
//! another. Checkers only probe: each raw result goes to the daemon's event loop, whose
//! per-backend record keeps the hysteresis (`rise`, `fall`), the last result and the latency.
//!
//! - `hysteresis`: the rise/fall state machine.
//! - `ejection`: how long passive health keeps a backend out.
//! - `probe`: the TCP, HTTP and HTTPS probes.
//! - `statuses`: which HTTP statuses pass.
//! - `tls`: TLS for HTTPS probes.

pub mod ejection;
mod hysteresis;
pub mod probe;
pub mod statuses;
mod tls;

use std::{net::SocketAddr, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

pub use self::{hysteresis::Hysteresis, probe::ProbeError, statuses::Statuses};

/// What to check on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub backend: String,
    pub addr: SocketAddr,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Passive failures in one second that take the backend out; 0: none do.
    pub error_limit: u32,
    /// How long passive health's first ejection lasts (see [`ejection`]).
    pub ejection_time: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The backend accepts a TCP connection.
    Tcp,
    /// An HTTP GET, over TLS or not, answers as [`Http`] says.
    Http(Http),
}

/// An HTTP(S) check: `GET path` with `Host: host` answers a status in `expect` (and a body
/// containing `expect_body`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    pub tls: bool,
    pub path: String,
    /// The Host header and TLS server name; `None`: the backend's address.
    pub host: Option<String>,
    pub expect: Statuses,
    pub expect_body: Option<String>,
}

/// One probe's raw outcome.
#[derive(Clone, Debug)]
pub struct Probe {
    pub service: String,
    pub backend: String,
    /// What the backend answered ("HTTP 200", "TCP connect"), or why the probe failed.
    pub result: Result<String, ProbeError>,
    pub latency: Duration,
}

/// Starts one checking task per target; they stop when their handles are aborted or the
/// event loop goes away.
pub fn spawn(targets: &[Target], results: mpsc::Sender<Probe>) -> Vec<JoinHandle<()>> {
    targets.iter().map(|t| tokio::spawn(check_forever(t.clone(), results.clone()))).collect()
}

async fn check_forever(t: Target, results: mpsc::Sender<Probe>) {
    let mut ticks = tokio::time::interval(t.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        let result = match tokio::time::timeout(t.timeout, probe::run(t.addr, &t.check)).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::TimedOut(t.timeout)),
        };
        let probe =
            Probe { service: t.service.clone(), backend: t.backend.clone(), result, latency: started.elapsed() };
        if results.send(probe).await.is_err() {
            return;
        }
    }
}
