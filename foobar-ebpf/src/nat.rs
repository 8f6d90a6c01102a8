//! The NAT table: which source port a new flow uses towards its backend, and the binding its
//! replies are translated back by (backend, backend port, NAT port → client, VIP).

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap},
};
use foobar_common::lb::{DEFAULT_NAT_BINDINGS, Flow, FlowKey, LbSettings, NatKey, NatTarget, nat_port_free};

use crate::{atomic, conntrack};

#[map(name = "LB_NAT")]
static NAT: LruHashMap<NatKey, NatTarget> = LruHashMap::with_max_entries(DEFAULT_NAT_BINDINGS, 0);
/// One shared cursor over the NAT port range.
#[map(name = "LB_NAT_CURSOR")]
static NAT_CURSOR: Array<u64> = Array::with_max_entries(1, 0);

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// The keys [`allocate_port`] works with, in the caller's per-CPU scratch (BPF's stack is
/// 512 bytes for the whole call chain).
pub struct Keys {
    binding: NatKey,
    holder: FlowKey,
}

/// The binding replies from `backend:backend_port` to NAT port `nat_port` go back by.
#[inline(always)]
pub fn binding(key: &NatKey) -> Option<&'static NatTarget> {
    // SAFETY: map lookups return pointers valid for this program run.
    unsafe { NAT.get(key) }
}

/// Picks a free NAT source port towards `backend` for the flow `key` and binds it to `target`.
///
/// Ports come from one shared cursor (an atomic add), so CPUs never hand out the same one
/// at once; a port still held by a live flow is skipped. One whose flow ended, or closed and
/// went quiet for `nat_reuse_ns`, is reused, and a closed holder is forgotten so its late
/// packets cannot reach the new flow's backend connection.
#[inline(always)]
pub fn allocate_port(
    key: &FlowKey,
    backend: &[u32; 4],
    target: &NatTarget,
    keys: &mut Keys,
    s: &LbSettings,
    now: u64,
) -> Option<u16> {
    let cursor = NAT_CURSOR.get_ptr_mut(0)?;
    if s.nat_port_count == 0 {
        return None;
    }
    for _ in 0..8 {
        // SAFETY: the cursor slot is a valid, aligned u64 in the map; every user adds atomically.
        let n = unsafe { atomic::fetch_add(cursor, 1) };
        let port = (u64::from(s.nat_port_min) + n % u64::from(s.nat_port_count)) as u16;
        keys.binding = NatKey::new(*backend, key.dport, port, key.protocol, key.family);
        if NAT.insert(&keys.binding, target, BPF_NOEXIST).is_ok() {
            return Some(port);
        }
        let Some(holder) = binding(&keys.binding) else { continue };
        keys.holder = holder.client_flow(key.protocol, key.family);
        let held = conntrack::get(&keys.holder).filter(|f| f.nat_port == port);
        let free = held.is_none_or(|f| nat_port_free(f, now, key.protocol, s));
        if free && NAT.insert(&keys.binding, target, BPF_ANY).is_ok() {
            if let Some(f) = held {
                conntrack::forget(&keys.holder, f, now);
            }
            return Some(port);
        }
    }
    None
}

/// Whether the NAT port of `old`, the closing flow of tuple `key`, still belongs to that
/// tuple towards `backend` (no other flow has taken it since), so a new flow on the same
/// tuple can have it back.
#[inline(always)]
pub fn still_holds_port(key: &FlowKey, old: &Flow, backend: &[u32; 4]) -> bool {
    let binding_key = NatKey::new(*backend, key.dport, old.nat_port, key.protocol, key.family);
    match binding(&binding_key) {
        Some(t) => t.client == key.src && t.client_port == key.sport && t.vip == key.dst,
        None => false,
    }
}
