//! The services userspace publishes: service entries by (VIP, port, protocol), their rings of
//! backend ids, round-robin cursors, the backends themselves, and the VIP filter that settles
//! most addresses that are no VIP on one array read.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use foobar_common::lb::{
    Backend, DEFAULT_BACKENDS, DEFAULT_RING_SLOTS, DEFAULT_SERVICES, DNAT_IN_USE_SLOT, SERVICE_KEYS_PER_SERVICE,
    ServiceInfo, ServiceKey, VIP_FILTER_SLOTS, vip_slot,
};

use crate::atomic;

#[map(name = "LB_SERVICES")]
static SERVICES: HashMap<ServiceKey, ServiceInfo> =
    HashMap::with_max_entries(DEFAULT_SERVICES * SERVICE_KEYS_PER_SERVICE, 0);
/// Backend ids: every service's two ring halves, each a slice userspace allocates.
#[map(name = "LB_RINGS")]
static RINGS: Array<u32> = Array::with_max_entries(DEFAULT_RING_SLOTS, 0);
/// Per-service round-robin cursor, advanced with an atomic add.
#[map(name = "LB_CURSORS")]
static CURSORS: Array<u64> = Array::with_max_entries(DEFAULT_SERVICES, 0);
#[map(name = "LB_BACKENDS")]
static BACKENDS: Array<Backend> = Array::with_max_entries(DEFAULT_BACKENDS, 0);
/// Nonzero at the slot of every VIP (see `vip_slot`), and at [`DNAT_IN_USE_SLOT`].
#[map(name = "LB_VIP_FILTER")]
static VIP_FILTER: Array<u32> = Array::with_max_entries(VIP_FILTER_SLOTS + 1, 0);

/// Whether `addr`'s VIP-filter slot is set; false proves `addr` is no VIP.
#[inline(always)]
pub fn maybe_vip(addr: &[u32; 4]) -> bool {
    VIP_FILTER.get(vip_slot(addr)).is_some_and(|&v| v != 0)
}

/// Whether DNAT bindings may exist; false proves no packet is a DNAT reply.
#[inline(always)]
pub fn dnat_in_use() -> bool {
    VIP_FILTER.get(DNAT_IN_USE_SLOT).is_some_and(|&v| v != 0)
}

/// The service published under `key`.
#[inline(always)]
pub fn find(key: &ServiceKey) -> Option<&'static ServiceInfo> {
    // SAFETY: map lookups return pointers valid for this program run; values are read in place.
    unsafe { SERVICES.get(key) }
}

/// Backend `id`'s entry.
#[inline(always)]
pub fn backend(id: u32) -> Option<&'static Backend> {
    BACKENDS.get(id)
}

/// The backend id in slot `slot` of `svc`'s live ring half.
#[inline(always)]
pub fn ring_member(svc: &ServiceInfo, slot: u32) -> Option<u32> {
    RINGS.get(svc.ring_offset + slot).copied()
}

/// Takes `svc`'s next round-robin turn: an atomic add on its cursor, so CPUs never share one.
#[inline(always)]
pub fn next_turn(svc: &ServiceInfo) -> Option<u64> {
    let cursor = CURSORS.get_ptr_mut(svc.id)?;
    // SAFETY: the cursor is an aligned u64 map value; every user adds atomically.
    Some(unsafe { atomic::fetch_add(cursor, 1) })
}
