//! The connection table: which backend each flow goes to, with its NAT port and next hop, and
//! how long it lives. This module owns the table, the timeouts it is judged by, and every
//! change to an entry; each change keeps the fast path's per-CPU copies (`flow_cache`) right.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap},
};
use foobar_common::{
    counters::Counter,
    lb::{
        DEFAULT_FLOWS, FLOW_CLOSING, FLOW_HANDSHAKE, FLOW_OPENING, Flow, FlowKey, LbSettings, NextHop, Proxied,
        RENEW_NS, flow_expired,
    },
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, Parsed, TCP_SYN},
};

use crate::{clock::now_ns, flow_cache, stats::count};

#[map(name = "LB_CONNTRACK")]
static CONNTRACK: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(DEFAULT_FLOWS, 0);
#[map(name = "LB_SETTINGS")]
static SETTINGS: Array<LbSettings> = Array::with_max_entries(1, 0);

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// The timeouts and NAT port range userspace set (a reference, not a copy: BPF's 512-byte
/// stack is shared by the whole call chain).
#[inline(always)]
pub fn settings() -> Option<&'static LbSettings> {
    SETTINGS.get(0)
}

/// Whether `p` could belong to a tracked flow by its kind alone: TCP other than a SYN, or UDP;
/// not a later fragment, untagged. (A SYN starts a flow, even on a tuple still tracked.)
#[inline(always)]
pub fn may_continue(p: &Parsed) -> bool {
    let tcp = p.protocol == IPPROTO_TCP;
    if (!tcp && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later || p.vlans != 0 {
        return false;
    }
    !(tcp && p.tcp_flags & TCP_SYN != 0)
}

/// `key`'s entry, live or not.
#[inline(always)]
pub fn get(key: &FlowKey) -> Option<&'static Flow> {
    // SAFETY: map lookups return pointers valid for this program run.
    unsafe { CONNTRACK.get(key) }
}

/// `key`'s flow if it is tracked and has not expired at `now`, with the settings that judged it.
#[inline(always)]
pub fn live(key: &FlowKey, now: u64) -> Option<(&'static Flow, &'static LbSettings)> {
    let flow = get(key)?;
    let s = settings()?;
    if flow_expired(flow, now, key.protocol, s) {
        return None;
    }
    Some((flow, s))
}

/// Renews a flow's timestamp, at most once per [`RENEW_NS`], with the client's sequence
/// number and acknowledgement `seen` gives (read only then). Plain stores, not
/// read-modify-writes: racing CPUs write nearly the same values and any of them is right.
#[inline(always)]
pub fn touch(key: &FlowKey, flow: &Flow, now: u64, seen: impl FnOnce() -> Option<(u32, u32)>) {
    if now.saturating_sub(flow.last_seen_ns) <= RENEW_NS {
        return;
    }
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: pointer into the map value, valid for this run.
        unsafe {
            (*f).last_seen_ns = now;
            if let Some((seq, ack)) = seen() {
                (*f).client_seq = seq;
                (*f).client_ack = ack;
            }
        }
    }
}

/// Sets a flow's timestamp to `now`, whatever it was (for what is timed from a moment, such
/// as the SYN proxy's last SYN to the backend).
#[inline(always)]
pub fn stamp(key: &FlowKey, now: u64) {
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: pointer into the map value, valid for this run.
        unsafe { (*f).last_seen_ns = now };
    }
}

/// Ends a closing flow at once, keeping its entry for the flow that replaces it (its backend
/// and NAT port may be resumed): its client opened a new connection on the same tuple, so
/// whatever comes next on the tuple belongs to the new one, on every CPU. Another CPU's
/// copy of the old flow would send the new connection's segments on with the old one's
/// sequence translation (or past the SYN proxy's hold) until it went stale: it goes now.
#[inline(always)]
pub fn expire(key: &FlowKey, now: u64) {
    if let Some(f) = get(key) {
        flow_cache::retire(f.last_seen_ns, now);
    }
    stamp(key, 0);
}

/// Marks a flow closing after its FIN or RST (an idempotent store of the only flag there is),
/// and empties this CPU's copy of it: closing flows are timed by the table alone.
#[inline(always)]
pub fn close(key: &FlowKey) {
    flow_cache::forget(key);
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `touch`.
        unsafe {
            if (*f).flags & FLOW_CLOSING == 0 {
                count(Counter::LbFlowClosing);
            }
            (*f).flags |= FLOW_CLOSING;
            (*f).last_seen_ns = now_ns();
        }
    }
}

/// Clears a flow's [`FLOW_OPENING`]: it is known to be real now (the client's ACK, whose
/// acknowledgement `ack` is the first the flow knows of the backend's sequence, or a reply).
#[inline(always)]
pub fn opened(key: &FlowKey, ack: Option<u32>) {
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `touch`; racing CPUs clear the same bit and store the same number.
        unsafe {
            (*f).flags &= !FLOW_OPENING;
            if let Some(ack) = ack {
                (*f).client_ack = ack;
            }
        }
    }
}

/// Records a SYN-proxied flow's translation once its backend answered, ending its handshake.
#[inline(always)]
pub fn settle(key: &FlowKey, proxied: &Proxied) {
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `touch`; only the backend's one SYN-ACK settles a flow.
        unsafe {
            (*f).proxied = *proxied;
            (*f).flags &= !FLOW_HANDSHAKE;
        }
    }
}

/// Remembers the next hop a flow's first packet found. A plain store: CPUs racing on one new
/// flow store the same next hop.
#[inline(always)]
pub fn set_hop(key: &FlowKey, hop: NextHop) {
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `touch`.
        unsafe { (*f).hop = hop };
    }
}

/// Records a new flow. `replaced` is the last-seen time of the tuple's tracked flow (closing
/// or expired) that it replaces, if any. False when another CPU recorded the tuple first (its
/// flow is then in the table for the caller to follow).
#[inline(always)]
pub fn begin(key: &FlowKey, flow: &Flow, replaced: Option<u64>, now: u64) -> bool {
    let flags = if replaced.is_some() { BPF_ANY } else { BPF_NOEXIST };
    if CONNTRACK.insert(key, flow, flags).is_err() {
        return false;
    }
    // No copy of the tuple's last flow may outlive it, here or on another CPU.
    flow_cache::forget(key);
    if let Some(seen) = replaced {
        flow_cache::retire(seen, now);
    }
    true
}

/// Reopens the tuple's closing flow on the same backend and NAT port. Other CPUs' copies of
/// the closed flow name this backend and port too: they stay right (a SYN-proxied flow's,
/// which would not, went when the new SYN expired it).
#[inline(always)]
pub fn reopen(key: &FlowKey, flow: &Flow) -> bool {
    if CONNTRACK.insert(key, flow, BPF_ANY).is_err() {
        return false;
    }
    flow_cache::forget(key);
    true
}

/// Forgets a flow whose NAT port goes to another (its late packets must not reach the new
/// flow's backend connection).
#[inline(always)]
pub fn forget(key: &FlowKey, flow: &Flow, now: u64) {
    flow_cache::retire(flow.last_seen_ns, now);
    let _ = CONNTRACK.remove(key);
}
