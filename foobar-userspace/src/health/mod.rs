//! Health checks: one task per backend, probing every `interval`, each probe bounded by
//! `timeout`, so a hung backend costs its own task at most the timeout and never delays
//! another. Results pass through HAProxy-style hysteresis (`rise` successes to come up, `fall`
//! failures to go down) and go to the daemon's event loop, which owns the data plane.
//!
//! - `hysteresis`: the rise/fall state machine.
//! - `probe`: the TCP and HTTP probes.

mod hysteresis;
pub mod probe;

use std::{net::SocketAddr, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

pub use self::hysteresis::Hysteresis;
use crate::config::{Config, schema::HealthKind};

/// What to check on one backend.
#[derive(Clone, Debug)]
pub struct Target {
    pub service: String,
    pub backend: String,
    pub addr: SocketAddr,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// The state the checks start from: healthy, unless an earlier checker said otherwise.
    pub healthy: bool,
}

#[derive(Clone, Debug)]
pub enum Check {
    /// The backend accepts a TCP connection.
    Tcp,
    /// An HTTP GET answers with `expect_status` (and a body containing `expect_body`).
    Http { path: String, expect_status: u16, expect_body: Option<String> },
}

/// One probe's outcome.
#[derive(Clone, Debug)]
pub struct Probe {
    pub service: String,
    pub backend: String,
    pub ok: bool,
    /// "HTTP 200", "connect: Connection refused", "timed out after 300ms", ...
    pub detail: String,
    pub latency: Duration,
    /// `Some(healthy)` when this probe flipped the backend's state.
    pub change: Option<bool>,
}

/// Every backend the config wants checked, probing its service's first port.
pub fn targets(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &config.services {
        let (Some(h), Some(&port)) = (&s.health, s.ports.first()) else { continue };
        let check = match h.kind {
            HealthKind::Tcp => Check::Tcp,
            HealthKind::Http => {
                Check::Http { path: h.path.clone(), expect_status: h.expect_status, expect_body: h.expect_body.clone() }
            }
        };
        for b in &s.backends {
            out.push(Target {
                service: s.name.get_ref().clone(),
                backend: b.name.get_ref().clone(),
                addr: SocketAddr::new(b.address, port),
                check: check.clone(),
                interval: h.interval.0,
                timeout: h.timeout.get_ref().0,
                rise: h.rise,
                fall: h.fall,
                healthy: true,
            });
        }
    }
    out
}

/// Starts one checking task per target; they stop when their handles are aborted or the
/// event loop goes away.
pub fn spawn(targets: Vec<Target>, results: mpsc::Sender<Probe>) -> Vec<JoinHandle<()>> {
    targets.into_iter().map(|t| tokio::spawn(check_forever(t, results.clone()))).collect()
}

async fn check_forever(t: Target, results: mpsc::Sender<Probe>) {
    let mut state = Hysteresis::starting(t.rise, t.fall, t.healthy);
    let mut ticks = tokio::time::interval(t.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        let outcome = tokio::time::timeout(t.timeout, probe::run(t.addr, &t.check)).await;
        let latency = started.elapsed();
        let (ok, detail) = match outcome {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(detail)) => (false, detail),
            Err(_) => (false, format!("timed out after {:?}", t.timeout)),
        };
        let change = state.record(ok);
        let probe = Probe { service: t.service.clone(), backend: t.backend.clone(), ok, detail, latency, change };
        if results.send(probe).await.is_err() {
            return;
        }
    }
}
