//! Least connections: each new flow census (about once a second) rebuilds the rings of the
//! services that balance by load, sharing the new flows expected before the next count
//! (the last second's rate) so that every backend's live flows even out.

use std::time::Instant;

use super::Daemon;

impl Daemon {
    /// Rebalances from the census when it has a count newer than the last one used; asks for
    /// a count every second while a service needs one.
    pub(super) fn rebalance(&mut self) {
        if !self.services.balances_by_load() {
            return;
        }
        let Some(count) = self.census.as_ref().and_then(crate::dataplane::census::Census::latest) else { return };
        if self.balanced_at.is_some_and(|at: Instant| at >= count.at) {
            return;
        }
        self.balanced_at = Some(count.at);
        let rates: std::collections::HashMap<u32, u64> =
            self.samples.iter().map(|(id, s)| (*id, s.new_flows_per_sec.ceil() as u64)).collect();
        let arrivals = |id: u32| rates.get(&id).copied().unwrap_or(0);
        if let Err(e) = self.services.rebalance(&mut self.dataplane, &count.flows.by_backend, arrivals) {
            tracing::warn!(error = %e, "cannot rebalance least-connections rings");
        }
    }
}
