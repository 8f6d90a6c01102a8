//! Whether a service is under a flood of new flows: each CPU counts the service's new flows
//! in 100 ms windows against its share of `flood_new_flows`, and holds flood mode for a second
//! after the rate last went over (the daemon reads `until_ns` to say so in `status`).

use aya_ebpf::{macros::map, maps::PerCpuArray};
use foobar_common::lb::{DEFAULT_SERVICES, FloodWindow, LbSettings};

#[map(name = "LB_FLOOD")]
static FLOOD: PerCpuArray<FloodWindow> = PerCpuArray::with_max_entries(DEFAULT_SERVICES, 0);

const WINDOW_NS: u64 = 100_000_000;
const HOLD_NS: u64 = 1_000_000_000;

/// Counts one new flow of service `id` at `now` on this CPU; whether the service is under flood.
#[inline(always)]
pub fn new_flow(id: u32, now: u64, s: &LbSettings) -> bool {
    let Some(w) = FLOOD.get_ptr_mut(id) else { return false };
    // A CPU's share of the rate, per window (at least one flow).
    let per_window = u64::from(s.flood_new_flows) * WINDOW_NS / 1_000_000_000 / u64::from(s.cpus.max(1));
    // SAFETY: this CPU's slot for the program run (XDP is not preempted on its CPU).
    unsafe {
        if now.saturating_sub((*w).window_start_ns) > WINDOW_NS {
            (*w).window_start_ns = now;
            (*w).count = 0;
        }
        (*w).count += 1;
        if (*w).count > per_window.max(1) {
            (*w).until_ns = now + HOLD_NS;
        }
        now < (*w).until_ns
    }
}
