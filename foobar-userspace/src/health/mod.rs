//! Health checks: one task per backend, probing every `interval`, each probe bounded by
//! `timeout`, so a hung backend costs its own task at most the timeout and never delays
//! another. Checkers only probe: each raw result goes to the daemon's event loop, whose
//! per-backend record keeps the hysteresis (`rise`, `fall`), the last result and the latency.
//!
//! - `hysteresis`: the rise/fall state machine.
//! - `probe`: the TCP and HTTP probes.

mod hysteresis;
pub mod probe;

use std::{net::SocketAddr, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

pub use self::{hysteresis::Hysteresis, probe::ProbeError};

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The backend accepts a TCP connection.
    Tcp,
    /// An HTTP GET answers with `expect_status` (and a body containing `expect_body`).
    Http { path: String, expect_status: u16, expect_body: Option<String> },
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
