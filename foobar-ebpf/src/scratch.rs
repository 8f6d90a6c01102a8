//! Per-CPU scratch space for records too big for BPF's 512-byte stack (shared by the whole
//! call chain). An XDP program is not preempted on its CPU, so one slot per CPU is private
//! to the packet being processed; map helpers accept map values as keys and values directly.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use foobar_common::lb::{Flow, FlowKey, NatKey, NatTarget};

/// The records a new flow needs while it is being scheduled.
pub struct Scratch {
    pub target: NatTarget,
    pub nat_key: NatKey,
    pub holder: FlowKey,
    pub flow: Flow,
}

#[map(name = "LB_SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch slot.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    let ptr = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: the slot belongs to this CPU and this packet for the program run (see module doc).
    Some(unsafe { &mut *ptr })
}
