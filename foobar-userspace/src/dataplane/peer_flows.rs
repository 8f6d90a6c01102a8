//! The NAT flows a cluster node shares: its own, read off the connection table to send to its
//! peers, and the peers', written into its tables so that it can carry them on (from the
//! peer's NAT address, which it takes over when the peer dies).

use std::{collections::HashMap, net::IpAddr};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use foobar_common::lb::{
    BACKENDS_MAP, Backend, CONNTRACK_MAP, FLOW_HANDSHAKE, FLOW_OPENING, Flow, FlowKey, LbSettings, MODE_NAT, NAT_MAP,
    NAT_PEER_SLOTS, NAT_PEERS_MAP, NatKey, NatTarget, SETTINGS_MAP, flow_expired,
};

use super::{Dataplane, DataplaneError, batch, flows::monotonic_ns};
use crate::net::words;

/// A flow of this node's, as the scan found it.
pub struct OwnFlow {
    pub key: FlowKey,
    pub flow: Flow,
    /// Its backend's address.
    pub backend: [u32; 4],
    /// How long ago its last packet was seen.
    pub idle_ns: u64,
}

/// The most connection-table entries one scan reads.
const SCAN_LIMIT: usize = 2_000_000;

/// Handles of their own on the connection table and the backends, for the thread that scans
/// for this node's flows off the event loop.
pub struct OwnFlows {
    table: Map,
    backends: Map,
}

impl OwnFlows {
    /// This node's own NAT flows (past their handshake, not a peer's) that saw a packet at
    /// or after `since` (monotonic nanoseconds), and the time of the scan.
    pub fn since(&self, since: u64) -> Result<(Vec<OwnFlow>, u64), DataplaneError> {
        let backends: Array<&MapData, Backend> = Array::try_from(&self.backends)?;
        let mut addrs: HashMap<u32, Option<[u32; 4]>> = HashMap::new();
        let now = monotonic_ns();
        let mut out = Vec::new();
        batch::for_each_entry(&self.table, SCAN_LIMIT, |key: &FlowKey, flow: &Flow| {
            let own = flow.mode == MODE_NAT && flow.nat_source == 0;
            if !own || flow.flags & (FLOW_OPENING | FLOW_HANDSHAKE) != 0 || flow.last_seen_ns < since {
                return;
            }
            let addr =
                *addrs.entry(flow.backend).or_insert_with(|| backends.get(&flow.backend, 0).ok().map(|b| b.addr));
            if let Some(backend) = addr {
                let idle_ns = now.saturating_sub(flow.last_seen_ns);
                out.push(OwnFlow { key: *key, flow: *flow, backend, idle_ns });
            }
        })?;
        Ok((out, now))
    }
}

impl Dataplane {
    /// Handles for reading this node's own flows on another thread.
    pub fn own_flows(&self) -> Result<OwnFlows, DataplaneError> {
        Ok(OwnFlows {
            table: Map::LruHashMap(self.map_handle(CONNTRACK_MAP)?),
            backends: Map::Array(self.map_handle(BACKENDS_MAP)?),
        })
    }

    /// Tells the data plane the cluster's NAT addresses, by slot (a slot left out reads as
    /// no address).
    pub fn set_nat_peers(&mut self, peers: &[(u32, IpAddr)]) -> Result<(), DataplaneError> {
        let mut map: Array<&mut MapData, [u32; 4]> = Array::try_from(self.map_mut(NAT_PEERS_MAP)?)?;
        for slot in 1..NAT_PEER_SLOTS {
            let addr = peers.iter().find(|(s, _)| *s == slot).map_or([0; 4], |(_, a)| words(*a));
            map.set(slot, addr, 0)?;
        }
        Ok(())
    }

    /// Takes on a peer's flow `key` (its entry `flow`, last seen `idle_ns` ago) and its NAT
    /// binding; `false`, changing nothing, where this node holds the tuple as its own.
    pub fn adopt_flow(
        &mut self,
        key: FlowKey,
        mut flow: Flow,
        idle_ns: u64,
        binding: NatKey,
        target: NatTarget,
    ) -> Result<bool, DataplaneError> {
        let mut table: BpfHashMap<&mut MapData, FlowKey, Flow> = BpfHashMap::try_from(self.map_mut(CONNTRACK_MAP)?)?;
        if table.get(&key, 0).is_ok_and(|held| held.nat_source == 0) {
            return Ok(false);
        }
        flow.last_seen_ns = monotonic_ns().saturating_sub(idle_ns);
        table.insert(key, flow, 0)?;
        let mut nat: BpfHashMap<&mut MapData, NatKey, NatTarget> = BpfHashMap::try_from(self.map_mut(NAT_MAP)?)?;
        nat.insert(binding, target, 0)?;
        Ok(true)
    }

    /// The NAT bindings held for peers (what a restarted daemon has to look after).
    pub fn peer_bindings(&self) -> Result<Vec<NatKey>, DataplaneError> {
        let mut out = Vec::new();
        batch::for_each_entry(self.map(NAT_MAP)?, SCAN_LIMIT, |key: &NatKey, t: &NatTarget| {
            if t.peer() != 0 {
                out.push(*key);
            }
        })?;
        Ok(out)
    }

    /// Deletes the binding `key` held for a peer once its flow is over here: gone from the
    /// connection table, expired, or no longer the peer's. `Some(true)`: deleted; `Some(false)`:
    /// still live; `None`: no such binding for a peer.
    pub fn release_peer_binding(&mut self, key: &NatKey) -> Result<Option<bool>, DataplaneError> {
        let nat: BpfHashMap<&MapData, NatKey, NatTarget> = BpfHashMap::try_from(self.map(NAT_MAP)?)?;
        let Ok(target) = nat.get(key, 0) else { return Ok(None) };
        if target.peer() == 0 {
            return Ok(None);
        }
        let settings: Array<&MapData, LbSettings> = Array::try_from(self.map(SETTINGS_MAP)?)?;
        let s = settings.get(&0, 0)?;
        let table: BpfHashMap<&MapData, FlowKey, Flow> = BpfHashMap::try_from(self.map(CONNTRACK_MAP)?)?;
        let flow_key = target.client_flow(key.protocol, key.family);
        let live = table
            .get(&flow_key, 0)
            .is_ok_and(|f| f.nat_source == target.peer() && !flow_expired(&f, monotonic_ns(), key.protocol, &s));
        if live {
            return Ok(Some(false));
        }
        let mut nat: BpfHashMap<&mut MapData, NatKey, NatTarget> = BpfHashMap::try_from(self.map_mut(NAT_MAP)?)?;
        nat.remove(key)?;
        Ok(Some(true))
    }
}
