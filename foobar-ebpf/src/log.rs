//! Kernel-side messages for the daemon's log (aya-log), for rare events an operator must hear
//! about.
//!
//! Deep in the call chain an event is only noted in a per-CPU slot; the entry program emits
//! it after a drop verdict, where stack is plentiful (BPF's 512 bytes are shared by the whole
//! call chain) and forwarding pays nothing. At most one message per second per CPU gets
//! through, so a misconfiguration that hits every packet cannot flood the log.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::PerCpuArray, programs::XdpContext};

/// An event waiting to be logged: what happened and its details.
pub struct Pending {
    /// 0: nothing; 1: no next hop (`a` = IPv4 destination, host order; `b` = FIB return code).
    pub kind: u32,
    pub a: u32,
    pub b: u32,
    pub last_ns: u64,
}

#[map(name = "FOOBAR_LOG_PENDING")]
static PENDING: PerCpuArray<Pending> = PerCpuArray::with_max_entries(1, 0);

const NO_NEXT_HOP: u32 = 1;

/// Notes that a next-hop lookup towards `dst` failed with `rc`.
#[inline(always)]
pub fn note_no_next_hop(dst: u32, rc: i64) {
    if let Some(p) = PENDING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; XDP is not preempted on its CPU.
        unsafe {
            (*p).kind = NO_NEXT_HOP;
            (*p).a = dst;
            (*p).b = rc as u32;
        }
    }
}

/// Logs the noted event, if any, unless one was logged on this CPU within the last second.
#[inline(never)]
pub fn emit(ctx: &XdpContext) {
    let Some(p) = PENDING.get_ptr_mut(0) else { return };
    // SAFETY: as above; bpf_ktime_get_ns has no preconditions.
    let (kind, a, b) = unsafe {
        let kind = (*p).kind;
        if kind == 0 {
            return;
        }
        (*p).kind = 0;
        let now = bpf_ktime_get_ns();
        if now.saturating_sub((*p).last_ns) < 1_000_000_000 {
            return;
        }
        (*p).last_ns = now;
        (kind, (*p).a, (*p).b)
    };
    if kind == NO_NEXT_HOP {
        // 1 blackhole, 2 unreachable, 3 prohibited, 4 not forwarded, 5 forwarding disabled,
        // 6 unsupported, 7 no neighbour, 8 fragmentation needed (include/uapi/linux/bpf.h).
        aya_log_ebpf::warn!(
            ctx,
            "no next hop towards {:i}: bpf_fib_lookup returned {} (7: the kernel has no neighbour entry yet; 5: forwarding is off on the ingress interface)",
            a,
            b
        );
    }
}
