//! The load balancer's clock: CLOCK_MONOTONIC nanoseconds, read at most once per timer tick
//! per CPU.
//!
//! `bpf_ktime_get_ns` is a helper call, dear on CPUs whose speculation mitigations make every
//! return expensive; `bpf_jiffies64` is inlined by the verifier into one memory load,
//! so each CPU keeps the last reading with the tick it was taken in, and only a packet that
//! sees a new tick asks for the time. Flows are timed in seconds; a tick (1-10 ms) of lag is
//! immaterial. (The SYN rate limit keeps reading the clock: its intervals can be shorter.)

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_jiffies64},
    macros::map,
    maps::PerCpuArray,
};

/// This CPU's last clock reading and the tick it was taken in.
pub struct Reading {
    jiffies: u64,
    ns: u64,
}

#[map(name = "LB_CLOCK")]
static LAST: PerCpuArray<Reading> = PerCpuArray::with_max_entries(1, 0);

/// The time in CLOCK_MONOTONIC nanoseconds, as of this CPU's first packet in the current tick.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: neither helper has preconditions; the slot belongs to this CPU for the program
    // run (XDP is not preempted on its CPU).
    unsafe {
        let tick = bpf_jiffies64();
        let Some(last) = LAST.get_ptr_mut(0) else { return bpf_ktime_get_ns() };
        if (*last).jiffies != tick || (*last).ns == 0 {
            (*last).jiffies = tick;
            (*last).ns = bpf_ktime_get_ns();
        }
        (*last).ns
    }
}
