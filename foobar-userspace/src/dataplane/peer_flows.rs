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

/// Handles of their own on the tables the flow sync's thread reads off the event loop: the
/// connection table and the backends (for this node's flows), the NAT table and the timeouts
/// (for the bindings held for peers).
pub struct SyncTables {
    table: Map,
    backends: Map,
    nat: Map,
    settings: Map,
}

impl SyncTables {
    /// The NAT flows past their handshake that saw a packet at or after `since` (monotonic
    /// nanoseconds): this node's own (`nat_source` 0) and, where `peers` is set, those it
    /// holds for a peer; and the time of the scan.
    pub fn since(&self, since: u64, peers: bool) -> Result<(Vec<OwnFlow>, u64), DataplaneError> {
        let backends: Array<&MapData, Backend> = Array::try_from(&self.backends)?;
        let mut addrs: HashMap<u32, Option<[u32; 4]>> = HashMap::new();
        let now = monotonic_ns();
        let mut out = Vec::new();
        batch::for_each_entry(&self.table, SCAN_LIMIT, |key: &FlowKey, flow: &Flow| {
            let wanted = flow.mode == MODE_NAT && (flow.nat_source == 0 || peers);
            if !wanted || flow.flags & (FLOW_OPENING | FLOW_HANDSHAKE) != 0 || flow.last_seen_ns < since {
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

    /// Deletes the NAT bindings held for peers whose flows are over here (gone from the
    /// connection table, expired, or no longer the peer's); how many are still held.
    pub fn sweep(&mut self) -> Result<u64, DataplaneError> {
        let settings: Array<&MapData, LbSettings> = Array::try_from(&self.settings)?;
        let s = settings.get(&0, 0)?;
        let table: BpfHashMap<&MapData, FlowKey, Flow> = BpfHashMap::try_from(&self.table)?;
        let now = monotonic_ns();
        let (mut held, mut over) = (0, Vec::new());
        batch::for_each_entry(&self.nat, SCAN_LIMIT, |key: &NatKey, t: &NatTarget| {
            if t.peer() == 0 {
                return;
            }
            let flow = table.get(&t.client_flow(key.protocol, key.family), 0);
            if flow.is_ok_and(|f| f.nat_source == t.peer() && !flow_expired(&f, now, key.protocol, &s)) {
                held += 1;
            } else {
                over.push(*key);
            }
        })?;
        let mut nat: BpfHashMap<&mut MapData, NatKey, NatTarget> = BpfHashMap::try_from(&mut self.nat)?;
        for key in over {
            // Gone meanwhile is as good as deleted.
            let _ = nat.remove(&key);
        }
        Ok(held)
    }
}

impl Dataplane {
    /// Handles for the flow sync's thread.
    pub fn sync_tables(&self) -> Result<SyncTables, DataplaneError> {
        Ok(SyncTables {
            table: Map::LruHashMap(self.map_handle(CONNTRACK_MAP)?),
            backends: Map::Array(self.map_handle(BACKENDS_MAP)?),
            nat: Map::HashMap(self.map_handle(NAT_MAP)?),
            settings: Map::Array(self.map_handle(SETTINGS_MAP)?),
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
}
