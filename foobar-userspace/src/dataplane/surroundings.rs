//! What the data plane is told about the namespace it forwards in, read at start and every
//! second after: the smallest link MTU (frames that fit it skip the per-packet MTU check) and
//! whether IPv4 routing rules select by source (the next-hop cache then keys on the source).

use super::{DataplaneError, link};

/// The namespace as last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Surroundings {
    pub link_mtu_floor: u32,
    pub rules_by_source: bool,
}

impl Surroundings {
    pub fn read() -> Result<Surroundings, DataplaneError> {
        // Rules that cannot be listed are taken to choose by source: hops then stay per source,
        // as they are for IPv6, rather than the data plane not loading.
        let rules_by_source = crate::netlink::ipv4_rules_select_by_source().unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot list the routing rules; next hops stay per source");
            true
        });
        Ok(Surroundings { link_mtu_floor: link::mtu_floor().map_err(DataplaneError::LinkMtu)?, rules_by_source })
    }

    /// `LbSettings::hops_by_source`.
    pub fn hops_by_source(&self) -> u32 {
        u32::from(self.rules_by_source)
    }
}
