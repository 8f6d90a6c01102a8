//! Next hops: where a rewritten frame goes without the stack (egress interface and MACs), as
//! the kernel's FIB supplies it or a flow remembered it from its first packet, and sending it there.

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
};
use foobar_common::{
    counters::Counter,
    lb::NextHop,
    parse::{L3, Parsed},
};

use crate::{clock::now_ns, hop_cache, icmp_error, packet::Frame, stats::count};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;

/// The next hop towards `dst` (from `src`) in the kernel's FIB; `None`, counted, when there is
/// no route or no neighbour entry yet. A route lookup is the dearest helper on the path: flows
/// call it for their first packet only.
#[inline(never)]
pub fn lookup_hop(frame: &Frame, p: &Parsed, src: &[u32; 4], dst: &[u32; 4]) -> Option<NextHop> {
    let ctx = frame.0;
    // SAFETY: bpf_fib_lookup is a plain C struct; all-zero is its documented "no input" state.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.l4_protocol = p.protocol;
    params.ifindex = ctx.ingress_ifindex() as u32;
    if p.l3 == L3::Ipv4 {
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
        crate::log::note_no_next_hop(u32::from_be(dst[0]), rc);
        return None;
    }
    Some(NextHop { ifindex: params.ifindex, dmac: params.dmac, smac: params.smac })
}

/// The next hop towards backend `id` at `dst` for an IPv4 frame from any source, while no
/// routing rule chooses by source (`None` otherwise): one FIB lookup a second per backend and CPU
/// serves a flood whose every packet comes from another address.
#[inline(always)]
pub fn towards_backend_from_anyone(frame: &Frame, p: &Parsed, id: u32, dst: &[u32; 4]) -> Option<NextHop> {
    if p.l3 != L3::Ipv4 || crate::conntrack::settings().is_none_or(|s| s.hops_by_source != 0) {
        return None;
    }
    let anyone = [0u32; 4];
    let ingress = frame.0.ingress_ifindex() as u32;
    let now = now_ns();
    if let Some(hop) = hop_cache::known(id, dst, &anyone, ingress, now) {
        return Some(hop);
    }
    let hop = lookup_hop(frame, p, &p.src, dst)?;
    hop_cache::remember(id, dst, &anyone, ingress, hop, now);
    Some(hop)
}

/// Gives the frame `hop`'s MACs, takes one from its TTL, and redirects it out of `hop`'s
/// interface. A frame with no TTL left to take is dropped (the paths that can answer it with
/// time exceeded did before rewriting it: see `icmp_error`).
#[inline(always)]
pub fn send(frame: &Frame, hop: &NextHop) -> u32 {
    if !icmp_error::hop(frame) {
        count(Counter::LbTimeExceeded);
        return xdp_action::XDP_DROP;
    }
    let Some(macs) = frame.window_mut::<12>(0) else { return xdp_action::XDP_DROP };
    macs[..6].copy_from_slice(&hop.dmac);
    macs[6..].copy_from_slice(&hop.smac);
    out_of(hop.ifindex)
}

/// Redirects the frame, as it is, out of interface `ifindex`.
#[inline(always)]
pub fn out_of(ifindex: u32) -> u32 {
    // SAFETY: bpf_redirect only records the target for the XDP core.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Sends the frame back out of the interface it came in on, by redirect rather than `XDP_TX`
/// (see `refuse`). Kept a call of its own: inlined into several paths, LLVM merges their reads
/// of the context into one through an offset pointer, which the verifier refuses.
#[inline(never)]
pub fn back_out(frame: &Frame) -> u32 {
    out_of(frame.0.ingress_ifindex() as u32)
}

/// Looks up the next hop towards `dst` and sends the frame there.
#[inline(always)]
pub fn redirect_to(frame: &Frame, p: &Parsed, src: &[u32; 4], dst: &[u32; 4]) -> u32 {
    match lookup_hop(frame, p, src, dst) {
        Some(hop) => send(frame, &hop),
        None => xdp_action::XDP_DROP,
    }
}

/// The next hop back to whoever sent this frame: its source MAC, out of the interface it came in.
#[inline(always)]
pub fn hop_back(frame: &Frame) -> Option<NextHop> {
    use foobar_common::bytes::PacketBytes;
    Some(NextHop {
        ifindex: frame.0.ingress_ifindex() as u32,
        dmac: frame.load::<[u8; 6]>(6)?,
        smac: frame.load::<[u8; 6]>(0)?,
    })
}
