//! Packets of tracked flows: on to their backend (rewritten in NAT mode), and backends' NAT
//! replies back to their clients. Both note a FIN or RST, count the packet for the flow's
//! service and backend, and redirect it to the next hop without the stack.

use aya_ebpf::bindings::xdp_action;
use foobar_common::{
    counters::Counter,
    lb::{BACKEND_ABSENT, Flow, FlowKey, MODE_DSR, NatTarget},
    parse::{IPPROTO_TCP, Parsed, TCP_FIN, TCP_RST},
};

use crate::{
    conntrack,
    nexthop::{lookup_hop, redirect_to, send},
    packet::Frame,
    rewrite::{Rewrite, rewrite},
    services,
    stats::{account, count},
};

/// Whether `p` ends its flow (a FIN or RST).
#[inline(always)]
pub fn ends_flow(p: &Parsed) -> bool {
    p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0
}

/// Sends a packet of `flow` on to its backend, by the next hop its first packet asked of the
/// FIB and the flow remembers. `INLINE_REWRITE` inlines the NAT rewrite (the fast path's
/// choice; the full path calls it, keeping its own frames small: BPF's 512-byte stack is
/// shared by the whole call chain).
#[inline(always)]
pub fn to_backend<const INLINE_REWRITE: bool>(
    frame: &Frame,
    p: &Parsed,
    key: &FlowKey,
    flow: &Flow,
    family: u8,
) -> u32 {
    if ends_flow(p) {
        conntrack::close(key);
    }
    let Some(backend) = services::backend(flow.backend) else {
        return xdp_action::XDP_DROP;
    };
    if backend.state == BACKEND_ABSENT {
        count(Counter::LbNoBackend);
        return xdp_action::XDP_DROP;
    }
    account(flow.service, flow.backend, frame);
    let hop = if flow.hop.ifindex != 0 {
        flow.hop
    } else {
        let src = if flow.mode == MODE_DSR { &p.src } else { &backend.snat };
        let Some(hop) = lookup_hop(frame, p, src, &backend.addr) else { return xdp_action::XDP_DROP };
        conntrack::set_hop(key, hop);
        hop
    };
    if flow.mode != MODE_DSR {
        let r = Rewrite { src: backend.snat, dst: backend.addr, sport: flow.nat_port, dport: p.dst_port };
        if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
            return xdp_action::XDP_DROP;
        }
    }
    send(frame, &hop)
}

/// A backend's reply in NAT mode, counted: translated back to come from the VIP, to the client.
#[inline(never)]
pub fn reply(frame: &Frame, p: &Parsed, t: &NatTarget, family: u8) -> u32 {
    count(Counter::LbNatReply);
    to_client::<false>(frame, p, t, family)
}

/// [`reply`] without its counter (the fast path counts its own way), inlined into its caller;
/// `INLINE_REWRITE` as in [`to_backend`].
#[inline(always)]
pub fn to_client<const INLINE_REWRITE: bool>(frame: &Frame, p: &Parsed, t: &NatTarget, family: u8) -> u32 {
    if ends_flow(p) {
        conntrack::close(&t.client_flow(p.protocol, family));
    }
    account(t.service, t.backend, frame);
    let r = Rewrite { src: t.vip, dst: t.client, sport: t.vip_port, dport: t.client_port };
    if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
        return xdp_action::XDP_DROP;
    }
    if t.hop.ifindex != 0 {
        return send(frame, &t.hop);
    }
    redirect_to(frame, p, &r.src, &r.dst)
}
