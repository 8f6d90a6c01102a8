//! How big the data plane's tables are. The object declares default sizes; the daemon sets
//! each at load time from the config's `[capacity]`, and a table pinned by an earlier run keeps
//! the size it was made with (`pins` checks that they agree).

use foobar_common::{
    firewall::{DEFAULT_DENY_ENTRIES, DENY_V4_MAP, DENY_V6_MAP},
    lb::{
        BACKEND_STATS_MAP, BACKEND_TIMEOUTS_MAP, BACKENDS_MAP, CONNTRACK_MAP, CURSORS_MAP, DEFAULT_BACKENDS,
        DEFAULT_FLOWS, DEFAULT_NAT_BINDINGS, DEFAULT_RING_SLOTS, DEFAULT_SERVICES, DNAT_MAP, FLOOD_MAP, NAT_MAP,
        RINGS_MAP, SERVICE_KEYS_PER_SERVICE, SERVICE_STATS_MAP, SERVICES_MAP,
    },
};

/// The sizes the data plane is loaded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Services (`[[service]]` entries), each with up to [`SERVICE_KEYS_PER_SERVICE`] ports.
    pub services: u32,
    /// Backend entries over all services (a backend listed by two services counts twice).
    pub backends: u32,
    /// Tracked flows (the connection table).
    pub flows: u32,
    /// NAT bindings (one per NAT flow).
    pub nat_bindings: u32,
    /// Deny-list prefixes, for IPv4 and for IPv6 each.
    pub deny_entries: u32,
    /// Ring slots over all services: each service has two halves of its ring's size.
    pub ring_slots: u32,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            services: DEFAULT_SERVICES,
            backends: DEFAULT_BACKENDS,
            flows: DEFAULT_FLOWS,
            nat_bindings: DEFAULT_NAT_BINDINGS,
            deny_entries: DEFAULT_DENY_ENTRIES,
            ring_slots: DEFAULT_RING_SLOTS,
        }
    }
}

impl Capacity {
    /// Every table this capacity sizes: its map's name, its entries, and the `[capacity]` key
    /// that sets them.
    pub fn tables(&self) -> [(&'static str, u32, &'static str); 13] {
        [
            (SERVICES_MAP, self.services.saturating_mul(SERVICE_KEYS_PER_SERVICE), "capacity.services"),
            (CURSORS_MAP, self.services, "capacity.services"),
            (SERVICE_STATS_MAP, self.services, "capacity.services"),
            (FLOOD_MAP, self.services, "capacity.services"),
            (BACKENDS_MAP, self.backends, "capacity.backends"),
            (BACKEND_STATS_MAP, self.backends, "capacity.backends"),
            (BACKEND_TIMEOUTS_MAP, self.backends, "capacity.backends"),
            (CONNTRACK_MAP, self.flows, "capacity.flows"),
            (NAT_MAP, self.nat_bindings, "capacity.nat_bindings"),
            // One DNAT binding per flow at most.
            (DNAT_MAP, self.flows, "capacity.flows"),
            (DENY_V4_MAP, self.deny_entries, "capacity.deny_entries"),
            (DENY_V6_MAP, self.deny_entries, "capacity.deny_entries"),
            (RINGS_MAP, self.ring_slots, "capacity.ring_slots"),
        ]
    }

    /// The entries and `[capacity]` key of map `name`, if this capacity sizes it.
    pub fn of(&self, name: &str) -> Option<(u32, &'static str)> {
        self.tables().into_iter().find(|(n, ..)| *n == name).map(|(_, entries, key)| (entries, key))
    }
}
