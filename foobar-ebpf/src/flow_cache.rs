//! A per-CPU exact-match cache of recently forwarded IPv4 flows, in front of the connection
//! table, for the fast path.
//!
//! Why: the connection table is a kernel hash map, and its lookup is a chain of kernel calls
//! (hash the 40-byte key, walk the bucket, compare keys). On a CPU with the "safe RET"
//! speculation mitigation every return is expensive, and that chain was the largest single
//! cost of an established packet. An array slot is read inline by the JIT: hash the tuple,
//! compare it, done. (Open vSwitch's exact-match cache is the same idea.) Slots are small
//! (72 bytes) and few, so that they stay in the CPU's own cache and a miss costs little on
//! top of the table.
//!
//! The table stays the truth; the cache only remembers what the table said, for at most
//! [`RECHECK_NS`] and never past the flow's idle timeout. A packet whose slot holds its flow,
//! under the current epoch and in time, is forwarded from the copy; anything else asks the
//! table, which renews the flow (as before, at most once a second) and refills the slot.
//! What can make a copy wrong:
//! - the flow closes: a FIN or RST never uses the cache, marking the flow closing empties
//!   this CPU's slot, and closing flows are not cached; another CPU's copy forwards to the
//!   same backend for at most `RECHECK_NS`, as the table would during `closing_ns`.
//! - the tuple starts a new flow: the scheduler empties this CPU's slot, and when the new flow
//!   replaces a tracked one that another CPU may have a copy of (or NAT takes a closed flow's
//!   port), it advances the data plane's epoch, which makes every copy of every CPU stale.
//! - the daemon deletes or inserts flows, or changes the timeouts: it advances its own epoch.
//!
//! Flows whose next hop is not known yet are not cached (their first packet finds it).
//!
//! Packets forwarded from a copy count `lb_flow_cache_hits` (as well as `lb_established`),
//! so operators see the hit rate in `status` and `/metrics`.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use foobar_common::{
    addr::FAMILY_V4,
    lb::{
        FLOW_CACHE_SLOTS, FLOW_CLOSING, FLOW_HANDSHAKE, FLOW_OPENING, Flow, FlowKey, LbSettings, RENEW_NS, flow_timeout,
    },
};

use crate::atomic;

/// How long a copy may be used without asking the table again: the table's own renewal
/// granularity, so flows are renewed as often as without the cache.
pub const RECHECK_NS: u64 = RENEW_NS;

/// An IPv4 flow as the table held it: 72 bytes.
pub struct Cached {
    src: u32,
    dst: u32,
    /// Source port in the high half, destination port in the low.
    ports: u32,
    protocol: u32,
    /// Until when the copy may be used: the table check plus `RECHECK_NS`, or the flow's
    /// expiry under the settings of the time, whichever is earlier. 0: empty.
    good_until: u64,
    epoch: u64,
    flow: Flow,
}

#[map(name = "LB_FLOW_CACHE")]
static CACHE: PerCpuArray<Cached> = PerCpuArray::with_max_entries(FLOW_CACHE_SLOTS, 0);

/// Two counters that only grow: [0] advanced by the data plane, [1] by the daemon (each its
/// own, so neither's read-then-write can lose the other's step). A copy is good while their
/// sum is what it was when the copy was made.
#[map(name = "LB_FLOW_EPOCH")]
static EPOCH: Array<u64> = Array::with_max_entries(2, 0);

/// The current epoch: the sum of both counters.
#[inline(always)]
pub fn epoch() -> u64 {
    let dataplane = EPOCH.get(0).copied().unwrap_or(0);
    let daemon = EPOCH.get(1).copied().unwrap_or(0);
    dataplane.wrapping_add(daemon)
}

/// Both ports in one word, as `Cached::ports` holds them.
#[inline(always)]
fn ports_of(key: &FlowKey) -> u32 {
    (u32::from(key.sport) << 16) | u32::from(key.dport)
}

/// The slot an IPv4 `key` lives in. Collisions only cost misses; a key is always compared whole.
#[inline(always)]
fn slot_of(key: &FlowKey) -> u32 {
    let mixed = key.src[0] ^ key.dst[0].rotate_left(11) ^ ports_of(key);
    mixed.wrapping_mul(0x9e37_79b9) >> (32 - FLOW_CACHE_SLOTS.trailing_zeros())
}

/// Whether `c` holds the IPv4 flow `key` (the rest of an IPv4 key's address words are zero).
#[inline(always)]
fn holds(c: &Cached, key: &FlowKey) -> bool {
    let diff = (c.src ^ key.src[0]) | (c.dst ^ key.dst[0]) | (c.ports ^ ports_of(key));
    diff == 0 && c.protocol == u32::from(key.protocol)
}

/// This CPU's copy of the IPv4 flow `key`, if it is good at `now` (see the module doc).
#[inline(always)]
pub fn get(key: &FlowKey, now: u64) -> Option<&'static Flow> {
    let c = CACHE.get(slot_of(key))?;
    if now > c.good_until || !holds(c, key) || c.epoch != epoch() {
        return None;
    }
    Some(&c.flow)
}

/// Remembers the IPv4 flow `flow`, just read from the table at `now` when the epoch was
/// `epoch` (read before the table, so that a change made in between leaves the copy stale,
/// never wrong). `opens`: the packet being forwarded shows an opening flow real (the client's
/// ACK), so the copy is of the flow as it is about to be.
#[inline(always)]
pub fn put(key: &FlowKey, flow: &Flow, now: u64, epoch: u64, s: &LbSettings, opens: bool) {
    // Flows not settled yet are timed, and changed, by the table alone.
    if flow.flags & (FLOW_CLOSING | FLOW_HANDSHAKE) != 0 || flow.hop.ifindex == 0 {
        return;
    }
    if flow.flags & FLOW_OPENING != 0 && !opens {
        return;
    }
    let expires = flow.last_seen_ns.saturating_add(flow_timeout(flow, key.protocol, s));
    if let Some(c) = CACHE.get_ptr_mut(slot_of(key)) {
        // SAFETY: this CPU's slot, for this program run (XDP is not preempted on its CPU).
        unsafe {
            *c = Cached {
                src: key.src[0],
                dst: key.dst[0],
                ports: ports_of(key),
                protocol: u32::from(key.protocol),
                good_until: expires.min(now + RECHECK_NS),
                epoch,
                flow: Flow { flags: flow.flags & !FLOW_OPENING, ..*flow },
            }
        };
    }
}

/// Empties this CPU's slot of `key`, if it holds `key`.
#[inline(always)]
pub fn forget(key: &FlowKey) {
    if key.family != FAMILY_V4 {
        return;
    }
    if let Some(c) = CACHE.get_ptr_mut(slot_of(key)) {
        // SAFETY: as in `put`.
        unsafe {
            if holds(&*c, key) {
                (*c).good_until = 0;
            }
        }
    }
}

/// Called when a flow of the table, last seen at `last_seen_ns`, is replaced or removed:
/// makes every CPU's copies stale if any CPU may still use a copy of it.
///
/// A copy is used for at most `RECHECK_NS` after the table was asked, and asking renews the
/// table's flow when it is a second old: so a flow quiet in the table for longer than twice
/// that has no usable copy anywhere, and nothing needs forgetting. That is the common case
/// (NAT ports are reused after `nat_reuse_ns`, 2 s; tuples after a close), which keeps epoch
/// steps, each a miss for every cached flow, rare.
#[inline(always)]
pub fn retire(last_seen_ns: u64, now: u64) {
    if now.saturating_sub(last_seen_ns) > 2 * RECHECK_NS {
        return;
    }
    if let Some(slot) = EPOCH.get_ptr_mut(0) {
        // SAFETY: an aligned u64 map value that every writer in the data plane advances atomically.
        unsafe { atomic::fetch_add(slot, 1) };
    }
}
