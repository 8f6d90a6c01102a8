//! The connection table as the daemon reads it: live flows counted per service and backend
//! (for `status` and `/metrics`), and the flows of a withdrawn service forgotten; and the
//! fast path's flow cache made stale whenever the daemon changes the table.
//!
//! Both read the whole table, 4096 entries per syscall (see `batch`): for occasional calls,
//! never per packet.

use std::collections::HashMap;

use aya::maps::{self, MapData, MapError};
use foobar_common::lb::{
    CONNTRACK_MAP, DNAT_MAP, FLOOD_MAP, FLOW_CLOSING, FLOW_EPOCH_DAEMON, FLOW_EPOCH_MAP, FloodWindow, Flow, FlowKey,
    LbSettings, NatTarget, ServiceKey, flow_expired,
};

use super::{Dataplane, DataplaneError, batch};

/// Live flows, by service id and by backend id.
#[derive(Clone, Debug, Default)]
pub struct ActiveFlows {
    pub by_service: HashMap<u32, u64>,
    pub by_backend: HashMap<u32, u64>,
}

/// Counts the flows of `table` (the connection table) that are still live (no FIN or RST
/// seen, not idle past their timeout as `settings`, the data plane's map, says), per service
/// and per backend.
pub(super) fn count_active(table: &aya::maps::Map, settings: &aya::maps::Map) -> Result<ActiveFlows, DataplaneError> {
    let settings: aya::maps::Array<&aya::maps::MapData, LbSettings> = aya::maps::Array::try_from(settings)?;
    let s = settings.get(&0, 0)?;
    let now = monotonic_ns();
    let mut out = ActiveFlows::default();
    batch::for_each_entry(table, SCAN_LIMIT, |key: &FlowKey, flow: &Flow| {
        if flow.flags & FLOW_CLOSING == 0 && !flow_expired(flow, now, key.protocol, &s) {
            *out.by_service.entry(flow.service).or_default() += 1;
            *out.by_backend.entry(flow.backend).or_default() += 1;
        }
    })?;
    Ok(out)
}

/// The most connection-table entries one scan reads before it stops.
const SCAN_LIMIT: usize = 2_000_000;

impl Dataplane {
    /// Counts the tracked flows that are still live, per service and per backend (a whole
    /// scan: the daemon's event loop reads [`super::census::Census`] instead).
    pub fn active_flows(&self) -> Result<ActiveFlows, DataplaneError> {
        count_active(self.map(CONNTRACK_MAP)?, self.map(foobar_common::lb::SETTINGS_MAP)?)
    }

    /// Whether the DNAT table holds any binding (one key read, not a scan).
    pub fn dnat_bindings_exist(&self) -> Result<bool, DataplaneError> {
        let table: maps::HashMap<&MapData, FlowKey, NatTarget> = maps::HashMap::try_from(self.map(DNAT_MAP)?)?;
        Ok(table.keys().next().transpose()?.is_some())
    }

    /// Whether service `id` is under a flood of new flows now, as any CPU's window saw it (the
    /// data plane holds flood mode for a second after the rate last went over).
    pub fn under_flood(&self, id: u32) -> Result<bool, DataplaneError> {
        let windows: aya::maps::PerCpuArray<&aya::maps::MapData, FloodWindow> =
            aya::maps::PerCpuArray::try_from(self.map(FLOOD_MAP)?)?;
        let now = monotonic_ns();
        Ok(windows.get(&id, 0)?.iter().any(|w| w.until_ns > now))
    }

    /// Deletes the tracked flows addressed to any of `withdrawn` (a removed service, or a port
    /// a service no longer serves) and returns how many there were. The untrusted program
    /// forwards a tracked flow without looking its service up, so without this a withdrawn
    /// service's open connections would go on being balanced; with it their next packets reach
    /// the node's own stack, as traffic to an address that is not balanced does.
    pub fn forget_flows_to(&mut self, withdrawn: &[ServiceKey]) -> Result<usize, DataplaneError> {
        if withdrawn.is_empty() {
            return Ok(0);
        }
        let mut doomed = Vec::new();
        batch::for_each_entry(self.map(CONNTRACK_MAP)?, SCAN_LIMIT, |key: &FlowKey, _: &Flow| {
            let to_withdrawn = |s: &ServiceKey| {
                s.addr == key.dst && s.port == key.dport && s.protocol == key.protocol && s.family == key.family
            };
            if withdrawn.iter().any(to_withdrawn) {
                doomed.push(*key);
            }
        })?;
        let mut table: maps::HashMap<&mut MapData, FlowKey, Flow> =
            maps::HashMap::try_from(self.map_mut(CONNTRACK_MAP)?)?;
        for key in &doomed {
            match table.remove(key) {
                // Closed and evicted since the scan: as good as deleted.
                Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
        if !doomed.is_empty() {
            self.stale_flow_copies()?;
        }
        Ok(doomed.len())
    }

    /// Makes every copy in the fast path's per-CPU flow cache stale, after the daemon changed
    /// the connection table: the next packet of every flow asks the table again. The daemon
    /// advances its own counter (the data plane advances the other), so plain read-then-write
    /// loses no step.
    pub(crate) fn stale_flow_copies(&mut self) -> Result<(), DataplaneError> {
        let mut epoch: maps::Array<&mut MapData, u64> = maps::Array::try_from(self.map_mut(FLOW_EPOCH_MAP)?)?;
        let now = epoch.get(&FLOW_EPOCH_DAEMON, 0)?;
        epoch.set(FLOW_EPOCH_DAEMON, now.wrapping_add(1), 0)?;
        Ok(())
    }
}

/// Now on the clock the data plane stamps with (bpf_ktime_get_ns: CLOCK_MONOTONIC).
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
