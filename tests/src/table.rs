//! Synthetic connection-table entries, for tests and benchmarks that need a full table.

use foobar_common::lb::{Flow, FlowKey};

/// The `n`th of up to 2^24 distinct TCP flows from 198.18.0.0/15 to the lab VIP's port 80.
pub fn flow_key(n: u32) -> FlowKey {
    FlowKey {
        src: [u32::from_ne_bytes([198, 18 + (n >> 24) as u8, (n >> 16) as u8, (n >> 8) as u8]), 0, 0, 0],
        dst: [u32::from_ne_bytes([192, 0, 2, 10]), 0, 0, 0],
        sport: n as u16,
        dport: 80,
        protocol: 6,
        family: 4,
        _pad: [0; 2],
    }
}

/// A flow that stays live (seen far in the future), to backend id 0.
pub fn live_flow() -> Flow {
    Flow { backend: 0, nat_port: 0, last_seen_ns: u64::MAX / 2, ..Flow::default() }
}
