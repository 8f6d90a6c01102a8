//! The flow sync's thread: sending this node's flows, and deleting the bindings held for
//! peers whose flows are over. A scan of a large table takes long enough to stall the event
//! loop (as the census's does).

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc, Condvar, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tracing::warn;

use super::{
    FULL_EVERY, SWEEP_EVERY,
    wire::{self, Entry, Header, Key, MAX_ENTRIES},
};
use crate::dataplane::peer_flows::{OwnFlow, SyncTables};

/// What the sender has sent.
#[derive(Debug, Default)]
pub struct Sent {
    pub flows: AtomicU64,
    pub datagrams: AtomicU64,
    pub failures: AtomicU64,
    /// NAT bindings held for peers' live flows, as the last sweep counted them.
    pub bindings_held: AtomicU64,
}

/// What the sending thread works with.
pub struct Job {
    pub tables: SyncTables,
    pub socket: UdpSocket,
    pub key: Key,
    pub header: Header,
    /// The address family (4 or 6) of this node's NAT address: flows of the other are not sent.
    pub family: u8,
    /// Each peer's slot and sync address.
    pub peers: Vec<(u32, SocketAddr)>,
    pub interval: Duration,
    /// Per peer (as `peers`): it started a new run, so it gets a full resend now and its own
    /// flows back (set by the receiving side).
    pub restarted: Arc<Vec<AtomicBool>>,
}

/// The running sender; stopped on drop.
pub struct Sender {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    pub sent: Arc<Sent>,
}

impl Sender {
    pub fn start(job: Job) -> std::io::Result<Sender> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let sent = Arc::new(Sent::default());
        let (s, c) = (stop.clone(), sent.clone());
        let thread = std::thread::Builder::new().name("flow-sync".into()).spawn(move || run(job, &s, &c))?;
        Ok(Sender { stop, thread: Some(thread), sent })
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every `interval`, this node's flows that saw traffic since the last scan to every peer
/// (an empty datagram when none did, so the peers still hear us). Every [`FULL_EVERY`], and
/// at once when a peer starts again, every live one, then [`wire::FULL_DONE`]; a peer that
/// started again also gets back the flows held for it. Every [`SWEEP_EVERY`], the bindings of
/// peers' flows that are over deleted.
fn run(mut job: Job, stop: &(Mutex<bool>, Condvar), sent: &Sent) {
    let (mut since, mut full_at, mut swept_at) = (0, None::<Instant>, Instant::now());
    loop {
        {
            let stopped = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = stop.1.wait_timeout(stopped, job.interval).unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
        if swept_at.elapsed() >= SWEEP_EVERY {
            swept_at = Instant::now();
            match job.tables.sweep() {
                Ok(held) => sent.bindings_held.store(held, Ordering::Relaxed),
                Err(e) => warn!(error = %e, "cannot delete the bindings of peers' flows that are over"),
            }
        }
        let back: Vec<bool> = job.restarted.iter().map(|r| r.swap(false, Ordering::Relaxed)).collect();
        let full = full_at.is_none_or(|t| t.elapsed() >= FULL_EVERY) || back.contains(&true);
        let scan = job.tables.since(if full { 0 } else { since }, back.contains(&true));
        let flows = match scan {
            Ok((flows, now)) => {
                since = now;
                flows
            }
            Err(e) => {
                warn!(error = %e, "cannot read the connection table for the cluster's peers");
                continue;
            }
        };
        let everyone: Vec<SocketAddr> = job.peers.iter().map(|(_, a)| *a).collect();
        let own: Vec<Entry> =
            flows.iter().filter(|f| f.flow.nat_source == 0).filter_map(|f| entry(f, job.family)).collect();
        send(&mut job, &own, 0, &everyone, sent);
        if !full {
            continue;
        }
        full_at = Some(Instant::now());
        for (i, (slot, addr)) in job.peers.clone().into_iter().enumerate() {
            if back[i] {
                let theirs: Vec<Entry> =
                    flows.iter().filter(|f| f.flow.nat_source == slot).filter_map(|f| entry(f, job.family)).collect();
                send(&mut job, &theirs, wire::YOURS, &[addr], sent);
            }
        }
        send(&mut job, &[], wire::FULL_DONE, &everyone, sent);
    }
}

/// `entries` to `to` in signed datagrams with `flags` (one empty datagram if there are none).
fn send(job: &mut Job, entries: &[Entry], flags: u32, to: &[SocketAddr], sent: &Sent) {
    let chunks: Vec<&[Entry]> = if entries.is_empty() { vec![&[]] } else { entries.chunks(MAX_ENTRIES).collect() };
    for chunk in chunks {
        job.header.seq += 1;
        let datagram = wire::seal(&job.key, Header { flags, ..job.header }, chunk);
        for peer in to {
            let counter = if job.socket.send_to(&datagram, peer).is_ok() { &sent.datagrams } else { &sent.failures };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        sent.flows.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// A flow as its peers take it, if it is of this node's NAT address's `family`.
fn entry(f: &OwnFlow, family: u8) -> Option<Entry> {
    (f.key.family == family).then_some(Entry {
        key: f.key,
        backend: f.backend,
        proxied: f.flow.proxied,
        nat_port: f.flow.nat_port,
        flags: f.flow.flags,
        client_seq: f.flow.client_seq,
        client_ack: f.flow.client_ack,
        idle_ms: u32::try_from(f.idle_ns / 1_000_000).unwrap_or(u32::MAX),
    })
}
