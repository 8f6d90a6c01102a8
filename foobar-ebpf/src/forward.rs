//! Sending a rewritten frame on: the kernel's FIB says which interface and next-hop MAC,
//! the frame gets those MACs, and XDP redirects it there without touching the stack.

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
};
use foobar_common::{addr::FAMILY_V4, counters::Counter};

use crate::{packet::Frame, stats::count};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;

/// Looks up the route to `dst` and redirects the frame to its egress interface and next hop.
/// Drops (counted) when the kernel has no route or no neighbour entry yet.
#[inline(never)]
pub fn redirect_to(frame: &Frame, family: u8, src: &[u32; 4], dst: &[u32; 4], protocol: u8) -> u32 {
    let ctx = frame.0;
    // SAFETY: bpf_fib_lookup is a plain C struct; all-zero is its documented "no input" state.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.l4_protocol = protocol;
    params.ifindex = ctx.ingress_ifindex() as u32;
    if family == FAMILY_V4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = src[0];
        params.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = *src;
        params.__bindgen_anon_4.ipv6_dst = *dst;
    }
    // SAFETY: `params` is a valid, initialised lookup struct of the size passed.
    let rc = unsafe { fib_lookup(ctx.ctx.cast(), &mut params, core::mem::size_of::<bpf_fib_lookup>() as i32, 0) };
    if rc != BPF_FIB_LKUP_RET_SUCCESS {
        count(Counter::LbNoRoute);
        return xdp_action::XDP_DROP;
    }
    if !frame.store(0, params.dmac) || !frame.store(6, params.smac) {
        return xdp_action::XDP_DROP;
    }
    // SAFETY: bpf_redirect only records the target for the XDP core.
    unsafe { bpf_redirect(params.ifindex, 0) as u32 }
}
