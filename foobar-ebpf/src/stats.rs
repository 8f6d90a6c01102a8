//! Per-CPU event counters (slot = [`Counter`] discriminant).

use aya_ebpf::{macros::map, maps::PerCpuArray};
use foobar_common::{
    counters::{COUNTER_SLOTS, Counter, FAST_KINDS, FastKind},
    parse::{Parsed, classify},
};

#[map(name = "FOOBAR_STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);
#[map(name = "FOOBAR_FAST_STATS")]
static FAST: PerCpuArray<u64> = PerCpuArray::with_max_entries(FAST_KINDS, 0);

/// Adds one to `c` on this CPU. Per-CPU slots need no atomics: no other CPU writes them.
#[inline(always)]
pub fn count(c: Counter) {
    if let Some(slot) = STATS.get_ptr_mut(c as u32) {
        // SAFETY: the pointer is this CPU's slot, valid for the program's run; XDP programs
        // are not preempted on a CPU, so no other writer races this increment.
        unsafe { *slot += 1 };
    }
}

/// Counts a cleanly parsed frame: received, and its layers (see `classify`).
#[inline(always)]
pub fn count_parsed(p: &Parsed) {
    count(Counter::Received);
    for c in classify(p).into_iter().flatten() {
        count(c);
    }
}

/// Counts a packet the fast path forwarded, or the firewall dropped on sight: one increment
/// standing for several counters (see `FastKind`).
#[inline(always)]
pub fn count_fast(kind: FastKind) {
    if let Some(slot) = FAST.get_ptr_mut(kind as u32) {
        // SAFETY: as in `count`.
        unsafe { *slot += 1 };
    }
}
