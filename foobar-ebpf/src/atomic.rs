//! Atomic operations on shared map values.
//!
//! The bpfel target declares no compare-and-swap, which leaves every read-modify-write
//! method out of `core::sync::atomic`; BPF cpu v3 has the instructions, so the compiler
//! intrinsics are used directly. Callers pass pointers to aligned 64-bit map values that
//! every writer updates only through these functions.

use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xadd};

/// Adds `v` to `*slot` and returns the previous value.
///
/// Sequentially consistent on purpose: with relaxed ordering LLVM's BPF backend emits the
/// non-fetching `lock +=` even when the result is used, and the "previous value" is garbage
/// (seen here as every new flow getting the same NAT port). SeqCst selects `atomic64_fetch_add`.
///
/// # Safety
/// `slot` must point to an aligned `u64` valid for the program run.
#[inline(always)]
pub unsafe fn fetch_add(slot: *mut u64, v: u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(slot, v) }
}

/// Reads `*slot`. An aligned 64-bit load is atomic on BPF (and LLVM cannot select an
/// explicit atomic load before cpu v4).
///
/// # Safety
/// As for [`fetch_add`].
#[inline(always)]
pub unsafe fn load(slot: *mut u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::read_volatile(slot) }
}

/// Replaces `*slot` with `new` if it still holds `old`; true on success.
///
/// # Safety
/// As for [`fetch_add`].
#[inline(always)]
pub unsafe fn compare_swap(slot: *mut u64, old: u64, new: u64) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe { atomic_cxchg::<u64, { AtomicOrdering::Relaxed }, { AtomicOrdering::Relaxed }>(slot, old, new).1 }
}
