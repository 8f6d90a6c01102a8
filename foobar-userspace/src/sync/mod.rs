//! NAT flow sync between a cluster's nodes (`[cluster]`), as IPVS's sync daemon does: every
//! `sync_interval` each node sends its peers the NAT flows that saw traffic since it last
//! did (all of them every [`FULL_EVERY`]), signed with the cluster's key; each peer writes
//! them into its own tables marked with the sender's slot. When a node dies, ECMP moves its
//! clients to the survivors and BIRD its NAT address (each peer announces it with a longer
//! path), so the survivors carry its flows on, NATed from its address. A node that starts
//! again is sent everything at once, and the flows kept for it back, before it is announced.
//!
//! - `wire`: the datagram, its signature and the replay check.
//! - `sender`: the thread that scans for this node's flows and sends them, and deletes the
//!   bindings of peers' flows that are over.

pub mod sender;
pub mod wire;

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use foobar_common::lb::{BINDING_PEER_SHIFT, Flow, MODE_NAT, NatKey, NatTarget};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use self::wire::{Entry, Header, Key, Refused, Replay};
use crate::{
    config::Config,
    dataplane::{
        Dataplane,
        services::{Mode, Services},
    },
    net::words,
};

/// How often every live flow is sent again, moved or not: a peer that restarted, or missed
/// a datagram, has them all again within this.
pub const FULL_EVERY: Duration = Duration::from_secs(10);
/// How often bindings held for peers whose flows are over are deleted.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The shortest key the cluster's secret may be.
const MIN_KEY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cluster.sync_key_file {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error(
        "cluster.sync_key_file {path} holds {len} bytes; the key must be at least {MIN_KEY} (e.g. `head -c 32 /dev/urandom`)"
    )]
    ShortKey { path: PathBuf, len: usize },
    #[error("cannot listen for the cluster's flows on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("flow sync: {0}")]
    Dataplane(crate::dataplane::DataplaneError),
    #[error("cannot start the flow sync's sender: {0}")]
    Thread(std::io::Error),
}

/// Another node of the cluster.
#[derive(Debug)]
pub struct Peer {
    pub name: String,
    pub slot: u32,
    pub sync: SocketAddr,
    pub nat_address: IpAddr,
    pub nat_ports: [u16; 2],
    replay: Replay,
    /// When a datagram from it was last taken in.
    heard: Option<Instant>,
    /// Whether it has sent every live flow it has since this node started.
    full: bool,
}

/// This node's part in the cluster, read from the config (and its key file).
pub struct Settings {
    pub slot: u32,
    /// This node's own NAT ports: the flows a peer sends back must use them.
    pub nat_ports: [u16; 2],
    pub listen: SocketAddr,
    pub nat_address: IpAddr,
    pub interval: Duration,
    pub peers: Vec<Peer>,
    key: Key,
}

impl Settings {
    /// This node's cluster settings, if the config has a `[cluster]`; reads the key file.
    pub fn of(config: &Config) -> Result<Option<Settings>, SyncError> {
        let Some(c) = &config.cluster else { return Ok(None) };
        // The config's checks made sure this node is listed.
        let Some((slot, me)) = c.node(&config.daemon.node()) else { return Ok(None) };
        let path = c.sync_key_file.get_ref();
        let secret = std::fs::read(path).map_err(|source| SyncError::KeyFile { path: path.clone(), source })?;
        if secret.len() < MIN_KEY {
            return Err(SyncError::ShortKey { path: path.clone(), len: secret.len() });
        }
        let peers = c
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32 + 1, n))
            .filter(|(s, _)| *s != slot)
            .map(|(slot, n)| Peer {
                name: n.name.get_ref().clone(),
                slot,
                sync: *n.sync.get_ref(),
                nat_address: *n.nat_address.get_ref(),
                nat_ports: *n.nat_ports.get_ref(),
                replay: Replay::default(),
                heard: None,
                full: false,
            })
            .collect();
        Ok(Some(Settings {
            slot,
            nat_ports: *me.nat_ports.get_ref(),
            listen: *me.sync.get_ref(),
            nat_address: *me.nat_address.get_ref(),
            interval: c.sync_interval.get_ref().0,
            peers,
            key: Key::new(&secret),
        }))
    }

    /// Every node's NAT address by slot, this node's included, for the data plane.
    pub fn nat_addresses(&self) -> Vec<(u32, IpAddr)> {
        let mut out: Vec<(u32, IpAddr)> = self.peers.iter().map(|p| (p.slot, p.nat_address)).collect();
        out.push((self.slot, self.nat_address));
        out
    }
}

/// What the sync has done since the daemon started, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub flows_sent: u64,
    pub datagrams_sent: u64,
    pub send_failures: u64,
    pub flows_adopted: u64,
    /// Flows a peer sent that this node holds as its own (ECMP sent the client here first).
    pub flows_kept_own: u64,
    /// Flows of a service or backend this node does not have, or outside the sender's ports.
    pub flows_unknown: u64,
    pub refused_malformed: u64,
    pub refused_bad_tag: u64,
    pub refused_replayed: u64,
    /// Datagrams from an address that is no peer's, or naming another peer's slot.
    pub refused_stranger: u64,
    pub bindings_held: u64,
}

/// The running sync: its socket and its thread.
pub struct FlowSync {
    settings: Settings,
    socket: Arc<UdpSocket>,
    sender: sender::Sender,
    /// Per peer (as `settings.peers`): it started again, the sender owes it a full resend.
    restarted: Arc<Vec<AtomicBool>>,
    started: Instant,
    counts: Counts,
}

impl FlowSync {
    /// Listens on this node's sync address and starts its thread.
    pub async fn start(settings: Settings, dp: &Dataplane) -> Result<FlowSync, SyncError> {
        let addr = settings.listen;
        let socket = UdpSocket::bind(addr).await.map_err(|source| SyncError::Bind { addr, source })?;
        // From the same address, another port: peers know a node by its address.
        let from = SocketAddr::new(addr.ip(), 0);
        let out = std::net::UdpSocket::bind(from).map_err(|source| SyncError::Bind { addr: from, source })?;
        let epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let restarted: Arc<Vec<AtomicBool>> = Arc::new(settings.peers.iter().map(|_| AtomicBool::new(false)).collect());
        let job = sender::Job {
            tables: dp.sync_tables().map_err(SyncError::Dataplane)?,
            socket: out,
            key: settings.key.clone(),
            header: Header { slot: settings.slot, epoch, ..Header::default() },
            family: if settings.nat_address.is_ipv4() { 4 } else { 6 },
            peers: settings.peers.iter().map(|p| (p.slot, p.sync)).collect(),
            interval: settings.interval,
            restarted: restarted.clone(),
        };
        let sender = sender::Sender::start(job).map_err(SyncError::Thread)?;
        info!(listen = %addr, peers = settings.peers.len(), "flow sync running");
        let started = Instant::now();
        Ok(FlowSync { settings, socket: Arc::new(socket), sender, restarted, started, counts: Counts::default() })
    }

    pub fn socket(&self) -> Arc<UdpSocket> {
        self.socket.clone()
    }

    /// What the sync has done, sending and receiving.
    pub fn counts(&self) -> Counts {
        let sent = &self.sender.sent;
        Counts {
            flows_sent: sent.flows.load(Ordering::Relaxed),
            datagrams_sent: sent.datagrams.load(Ordering::Relaxed),
            send_failures: sent.failures.load(Ordering::Relaxed),
            bindings_held: sent.bindings_held.load(Ordering::Relaxed),
            ..self.counts
        }
    }

    /// Whether this node has every live flow its peers had for it, so it may be announced: each
    /// peer sent all of its own since this node started (and those it kept for this node),
    /// or long enough has passed for any that lives to have done so.
    pub fn settled(&self) -> bool {
        self.settings.peers.iter().all(|p| p.full) || self.started.elapsed() >= FULL_EVERY + 2 * self.settings.interval
    }

    /// Takes in one datagram from `from`: a peer's flows, written into this node's tables.
    pub fn receive(&mut self, dp: &mut Dataplane, services: &Services, datagram: &[u8], from: SocketAddr) {
        let Some(i) = self.settings.peers.iter().position(|p| p.sync.ip() == from.ip()) else {
            self.counts.refused_stranger += 1;
            return;
        };
        let peer = &mut self.settings.peers[i];
        let opened = wire::open(&self.settings.key, datagram).and_then(|(h, entries)| {
            if h.slot != peer.slot {
                return Ok(None);
            }
            if peer.replay.admit(&h)? {
                // It started again (or is heard first): it gets everything, and its own back.
                self.restarted[i].store(true, Ordering::Relaxed);
            }
            peer.heard = Some(Instant::now());
            peer.full |= h.flags & wire::FULL_DONE != 0;
            Ok(Some((h.flags, entries)))
        });
        let (flags, entries) = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                self.counts.refused_stranger += 1;
                return;
            }
            Err(r) => {
                let name = peer.name.clone();
                if self.refuse(r) {
                    warn!(peer = name, from = %from, reason = %r, "flow-sync datagram refused");
                }
                return;
            }
        };
        // This node's own flows sent back are taken as its own (slot 0), in its own ports.
        let (slot, ports, nat) = if flags & wire::YOURS != 0 {
            (0, self.settings.nat_ports, self.settings.nat_address)
        } else {
            (peer.slot, peer.nat_ports, peer.nat_address)
        };
        let family = if nat.is_ipv4() { 4 } else { 6 };
        for e in entries {
            let theirs = e.key.family == family && (ports[0]..=ports[1]).contains(&e.nat_port);
            let Some((service, backend)) = locate(services, &e).filter(|_| theirs) else {
                self.counts.flows_unknown += 1;
                continue;
            };
            let (flow, binding, target) = adoption(&e, slot, service, backend);
            match dp.adopt_flow(e.key, flow, u64::from(e.idle_ms) * 1_000_000, binding, target) {
                Ok(true) => self.counts.flows_adopted += 1,
                Ok(false) => self.counts.flows_kept_own += 1,
                Err(err) => warn!(error = %err, "cannot write a peer's flow"),
            }
        }
    }

    /// For `status`.
    pub fn status(&self) -> crate::control::protocol::SyncStatus {
        let c = self.counts();
        crate::control::protocol::SyncStatus {
            peers: self
                .settings
                .peers
                .iter()
                .map(|p| crate::control::protocol::PeerStatus {
                    name: p.name.clone(),
                    heard_ms_ago: p.heard.map(|t| t.elapsed().as_millis() as u64),
                })
                .collect(),
            flows_sent: c.flows_sent,
            flows_adopted: c.flows_adopted,
            bindings_held: c.bindings_held,
            refused: c.refused_malformed + c.refused_bad_tag + c.refused_replayed + c.refused_stranger,
        }
    }

    /// Counts a refusal; whether it is the first of its kind (worth a log line).
    fn refuse(&mut self, r: Refused) -> bool {
        let n = match r {
            Refused::Malformed => &mut self.counts.refused_malformed,
            Refused::BadTag => &mut self.counts.refused_bad_tag,
            Refused::Replayed => &mut self.counts.refused_replayed,
        };
        *n += 1;
        *n == 1
    }
}

/// This node's service and backend ids for a peer's flow: the NAT service at its VIP, port
/// and protocol, and the backend of it at the flow's backend address.
fn locate(services: &Services, e: &Entry) -> Option<(u32, u32)> {
    let k = &e.key;
    let svc = services.all().iter().find(|s| {
        s.spec.mode == Mode::Nat
            && s.spec.protocol == k.protocol
            && words(s.spec.vip) == k.dst
            && s.spec.ports.contains(&k.dport)
    })?;
    let i = svc.spec.backends.iter().position(|b| words(b.addr) == e.backend)?;
    Some((svc.id, *svc.backend_ids.get(i)?))
}

/// A peer's flow as this node's tables hold it: the connection-table entry (its next hop
/// found again by its first packet here) and the NAT binding its replies come back by.
fn adoption(e: &Entry, slot: u32, service: u32, backend: u32) -> (Flow, NatKey, NatTarget) {
    let k = &e.key;
    let flow = Flow {
        backend,
        service,
        nat_port: e.nat_port,
        flags: e.flags,
        mode: MODE_NAT,
        proxied: e.proxied,
        client_seq: e.client_seq,
        client_ack: e.client_ack,
        nat_source: slot,
        ..Flow::default()
    };
    let binding = NatKey::new(e.backend, k.dport, e.nat_port, k.protocol, k.family);
    let target = NatTarget {
        client: k.src,
        vip: k.dst,
        client_port: k.sport,
        vip_port: k.dport,
        service,
        backend,
        flags: u32::from(e.flags) | (slot << BINDING_PEER_SHIFT),
        proxied: e.proxied,
        ..NatTarget::default()
    };
    (flow, binding, target)
}

#[cfg(test)]
mod tests {
    use foobar_common::lb::FlowKey;

    use super::*;

    #[test]
    fn an_adopted_flow_goes_from_the_peers_address_and_its_binding_names_the_peer() {
        let e = Entry {
            key: FlowKey::new([1, 0, 0, 0], 40000, [2, 0, 0, 0], 80, 6, 4),
            backend: [3, 0, 0, 0],
            nat_port: 30001,
            flags: 16,
            client_seq: 5,
            client_ack: 6,
            ..Entry::default()
        };
        let (flow, binding, target) = adoption(&e, 3, 7, 9);
        assert_eq!((flow.nat_source, flow.mode, flow.backend, flow.service, flow.hop.ifindex), (3, MODE_NAT, 9, 7, 0));
        assert_eq!(binding, NatKey::new([3, 0, 0, 0], 80, 30001, 6, 4));
        assert_eq!((target.peer(), target.flags as u16, target.client_flow(6, 4)), (3, 16, e.key));
    }
}
