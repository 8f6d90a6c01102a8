//! Per-CPU counters: events (slot = [`Counter`] discriminant), the fast path's packet kinds,
//! and each service's and backend's traffic.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use foobar_common::{
    bytes::PacketBytes,
    counters::{COUNTER_SLOTS, Counter, FAST_KINDS, FastKind},
    lb::{DEFAULT_BACKENDS, DEFAULT_SERVICES, Passive, TrafficStats},
    parse::{Parsed, classify},
};

use crate::packet::Frame;

#[map(name = "FOOBAR_STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);
#[map(name = "FOOBAR_FAST_STATS")]
static FAST: PerCpuArray<u64> = PerCpuArray::with_max_entries(FAST_KINDS, 0);
/// Never read by the programs: pinned with the stateful maps, it records their layout's version.
#[map(name = "FOOBAR_LAYOUT")]
static LAYOUT: Array<u64> = Array::with_max_entries(1, 0);
#[map(name = "LB_SERVICE_STATS")]
static SERVICE_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(DEFAULT_SERVICES, 0);
#[map(name = "LB_BACKEND_STATS")]
static BACKEND_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(DEFAULT_BACKENDS, 0);
#[map(name = "LB_BACKEND_TIMEOUTS")]
static BACKEND_TIMEOUTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DEFAULT_BACKENDS, 0);

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

/// Counts a new flow for the service and its backend.
#[inline(always)]
pub fn count_new_flow(service: u32, backend: u32) {
    count(Counter::LbNewFlow);
    if let Some(st) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe { (*st).new_flows += 1 };
    }
    if let Some(st) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: as above.
        unsafe { (*st).new_flows += 1 };
    }
}

/// Counts one passive health failure of `backend`.
#[inline(never)]
pub fn count_passive(backend: u32, kind: Passive) {
    if let Some(st) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe {
            match kind {
                Passive::Refused => (*st).refused += 1,
                Passive::ResetUnanswered => (*st).reset_unanswered += 1,
                Passive::Unreachable => (*st).unreachable += 1,
            }
        }
    }
}

/// Counts one handshake `backend` left unanswered until a SYN was said again (passive health
/// evidence kept in `LB_BACKEND_TIMEOUTS`, beside the traffic counters).
#[inline(never)]
pub fn count_timeout(backend: u32) {
    if let Some(t) = BACKEND_TIMEOUTS.get_ptr_mut(backend) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe { *t += 1 };
    }
}

/// Adds the frame to its service's and backend's traffic.
#[inline(always)]
pub fn account(service: u32, backend: u32, frame: &Frame) {
    let bytes = frame.frame_len() as u64;
    if let Some(st) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe {
            (*st).packets += 1;
            (*st).bytes += bytes;
        }
    }
    if let Some(st) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: as above.
        unsafe {
            (*st).packets += 1;
            (*st).bytes += bytes;
        }
    }
}
