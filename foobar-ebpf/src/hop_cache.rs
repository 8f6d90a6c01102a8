//! Next hops towards backends, as each CPU last asked the FIB for them: a new flow to a backend
//! reuses one found within the last second instead of a route lookup of its own (the dearest
//! helper on the new-flow path). A hop counts only for the same backend address, source address
//! and ingress interface it was found for, so a backend slot given to another address, or a
//! route chosen by source, never gets another's hop; route and neighbour changes reach new flows
//! within the second.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use foobar_common::lb::{DEFAULT_BACKENDS, NextHop};

/// How long a CPU reuses a hop it found.
const REUSE_NS: u64 = 1_000_000_000;

/// A hop and what it was found for.
pub struct KnownHop {
    dst: [u32; 4],
    src: [u32; 4],
    ingress: u32,
    hop: NextHop,
    found_ns: u64,
}

/// One slot per backend id and CPU; ids past the array (a larger `[capacity]`) always ask the FIB.
#[map(name = "LB_HOP_CACHE")]
static HOPS: PerCpuArray<KnownHop> = PerCpuArray::with_max_entries(DEFAULT_BACKENDS, 0);

/// The hop this CPU found towards backend `id` at `dst` from `src`, for a frame in on `ingress`,
/// within the last second.
#[inline(always)]
pub fn known(id: u32, dst: &[u32; 4], src: &[u32; 4], ingress: u32, now: u64) -> Option<NextHop> {
    let k = HOPS.get(id)?;
    let fresh = k.hop.ifindex != 0 && now.wrapping_sub(k.found_ns) < REUSE_NS;
    (fresh && k.ingress == ingress && k.dst == *dst && k.src == *src).then_some(k.hop)
}

/// Remembers the hop just found towards backend `id` (see [`known`]).
#[inline(always)]
pub fn remember(id: u32, dst: &[u32; 4], src: &[u32; 4], ingress: u32, hop: NextHop, now: u64) {
    let Some(k) = HOPS.get_ptr_mut(id) else { return };
    // SAFETY: this CPU's slot for the program run (XDP is not preempted on its CPU).
    unsafe { *k = KnownHop { dst: *dst, src: *src, ingress, hop, found_ns: now } };
}
