//! Packets of tracked flows: on to their backend (rewritten in NAT mode), and backends' NAT
//! replies back to their clients. Both note a FIN or RST, count the packet for the flow's
//! service and backend, and redirect it to the next hop without the stack.

use aya_ebpf::bindings::xdp_action;
use foobar_common::{
    bytes::PacketBytes,
    counters::Counter,
    lb::{
        BACKEND_ABSENT, BACKEND_DEAD, Backend, FLOW_ANSWERED, FLOW_OPENING, FLOW_PROXIED, Flow, FlowKey, MODE_DSR,
        MODE_NAT, NatTarget, NextHop, Passive, near,
    },
    parse::{IPPROTO_TCP, Parsed, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST},
};

use crate::{
    clock::now_ns,
    conntrack, hop_cache, icmp_error, nat,
    nexthop::{lookup_hop, redirect_to, send},
    packet::Frame,
    rewrite::{Rewrite, rewrite},
    seqadj, services,
    stats::{account, count, count_passive},
};

/// Whether `p` ends its flow (a FIN or RST).
#[inline(always)]
pub fn ends_flow(p: &Parsed) -> bool {
    p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0
}

/// The sequence number of `p`, a TCP segment.
#[inline(always)]
pub fn seq(frame: &Frame, p: &Parsed) -> Option<u32> {
    if p.protocol != IPPROTO_TCP {
        return None;
    }
    frame.load::<[u8; 4]>(p.l4_offset + 4).map(u32::from_be_bytes)
}

/// The sequence number and acknowledgement of `p`, a client's TCP segment with ACK set.
#[inline(always)]
pub fn seq_ack(frame: &Frame, p: &Parsed) -> Option<(u32, u32)> {
    if p.protocol != IPPROTO_TCP || p.tcp_flags & TCP_ACK == 0 {
        return None;
    }
    let [a, b, c, d, e, f, g, h] = frame.load::<[u8; 8]>(p.l4_offset + 4)?;
    Some((u32::from_be_bytes([a, b, c, d]), u32::from_be_bytes([e, f, g, h])))
}

/// Notes a client's FIN or RST: the flow is closing, if its sequence number is near what the
/// flow last saw. One far from it may be a blind guess at the tuple: it is passed on for the
/// backend's stack to judge (RFC 5961), but the flow stays open.
#[inline(always)]
fn note_end(frame: &Frame, p: &Parsed, key: &FlowKey, flow: &Flow) {
    if seq(frame, p).is_some_and(|seq| near(seq, flow.client_seq)) {
        conntrack::close(key);
    } else {
        count(Counter::LbEndOutOfWindow);
    }
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
        note_end(frame, p, key, flow);
    }
    let Some((backend, hop)) = path(frame, p, key, flow) else { return xdp_action::XDP_DROP };
    if backend.state == BACKEND_DEAD {
        return reset_dead(frame, p, key);
    }
    if let Some(verdict) = icmp_error::unforwardable(frame, p, hop.ifindex) {
        return verdict;
    }
    account(flow.service, flow.backend, frame);
    if flow.mode != MODE_DSR {
        let mut r = Rewrite {
            src: *source(flow.mode, backend, &p.src),
            dst: backend.addr,
            sport: flow.nat_port,
            dport: p.dst_port,
        };
        if flow.nat_source != 0 {
            from_peer(&mut r, flow.nat_source);
        }
        if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
            return xdp_action::XDP_DROP;
        }
        if flow.flags & FLOW_PROXIED != 0 && !seqadj::to_backend(frame, p, &flow.proxied) {
            return xdp_action::XDP_DROP;
        }
    }
    // The client's ACK after its SYN: the flow is real.
    if flow.flags & FLOW_OPENING != 0 && p.tcp_flags & TCP_ACK != 0 {
        conntrack::opened(key, seq_ack(frame, p).map(|(_, ack)| ack));
    }
    send(frame, &hop)
}

/// A packet of a flow whose backend is down, of a service that resets such flows: the flow
/// is forgotten and the client gets a RST at once (it reconnects, to a live backend), instead
/// of retransmitting into a dead host until its timeout.
#[inline(never)]
pub fn reset_dead(frame: &Frame, p: &Parsed, key: &FlowKey) -> u32 {
    count(Counter::LbDeadBackendReset);
    conntrack::close(key);
    if p.protocol == IPPROTO_TCP { crate::refuse::refuse(frame, p) } else { xdp_action::XDP_DROP }
}

/// The backend `flow` goes to and the next hop towards it (asked of the FIB by the flow's
/// first packet, then remembered in the flow); `None`, counted, when its backend is gone or
/// no next hop is known.
#[inline(always)]
pub fn path(frame: &Frame, p: &Parsed, key: &FlowKey, flow: &Flow) -> Option<(&'static Backend, NextHop)> {
    let backend = services::backend(flow.backend)?;
    if backend.state == BACKEND_ABSENT {
        count(Counter::LbNoBackend);
        return None;
    }
    let hop = if flow.hop.ifindex != 0 {
        flow.hop
    } else {
        let src = source(flow.mode, backend, &p.src);
        let ingress = frame.0.ingress_ifindex() as u32;
        let now = now_ns();
        let hop = match hop_cache::known(flow.backend, &backend.addr, src, ingress, now) {
            Some(hop) => hop,
            None => {
                let hop = lookup_hop(frame, p, src, &backend.addr)?;
                hop_cache::remember(flow.backend, &backend.addr, src, ingress, hop, now);
                hop
            }
        };
        conntrack::set_hop(key, hop);
        hop
    };
    Some((backend, hop))
}

/// The address a flow of `mode` reaches its backend from: the node's NAT address, or the
/// `client`'s own (DSR, DNAT).
#[inline(always)]
pub fn source<'a>(mode: u32, backend: &'a Backend, client: &'a [u32; 4]) -> &'a [u32; 4] {
    if mode == MODE_NAT { &backend.snat } else { client }
}

/// Points `r` at the NAT address of the peer in slot `slot`, for a flow that peer synced here
/// (this node took its address over). Out of line and by pointer: a branch that left two
/// kinds of source behind split the verifier's states for the rest of the forward.
#[inline(never)]
fn from_peer(r: &mut Rewrite, slot: u32) {
    if let Some(peer) = nat::peer_address(slot) {
        r.src = *peer;
    }
}

/// The peer NAT address `flow` reaches its backend from, if a peer synced it here.
#[inline(always)]
pub fn peer_source(flow: &Flow) -> Option<&'static [u32; 4]> {
    if flow.nat_source == 0 || flow.mode != MODE_NAT {
        return None;
    }
    nat::peer_address(flow.nat_source)
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
    if let Some(verdict) = icmp_error::unforwardable(frame, p, t.hop.ifindex) {
        return verdict;
    }
    account(t.service, t.backend, frame);
    let r = Rewrite { src: t.vip, dst: t.client, sport: t.vip_port, dport: t.client_port };
    if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
        return xdp_action::XDP_DROP;
    }
    let flags = t.flags as u16;
    if flags & FLOW_PROXIED != 0 && !seqadj::to_client(frame, p, &t.proxied) {
        return xdp_action::XDP_DROP;
    }
    // Nothing more to learn of an answered flow that is open.
    if flags & (FLOW_OPENING | FLOW_ANSWERED) != FLOW_ANSWERED {
        answered(p, t, family);
    }
    if t.hop.ifindex != 0 {
        return send(frame, &t.hop);
    }
    redirect_to(frame, p, &r.src, &r.dst)
}

/// A reply to a flow still opening (a UDP flow's first answer: the flow is real) or not yet
/// answered: data from the backend marks it answered, and a RST before any is a passive
/// health failure of the backend (refused, when it answers the SYN). Out of line so that its
/// keys take no room on the fast path's stack.
#[inline(never)]
fn answered(p: &Parsed, t: &NatTarget, family: u8) {
    let (flags, tcp) = (t.flags as u16, p.protocol == IPPROTO_TCP);
    if tcp && p.tcp_flags & TCP_RST != 0 {
        if flags & FLOW_ANSWERED == 0 {
            let kind = if flags & FLOW_OPENING != 0 { Passive::Refused } else { Passive::ResetUnanswered };
            count_passive(t.backend, kind);
        }
        return;
    }
    let mut new = flags;
    if flags & FLOW_OPENING != 0 {
        conntrack::opened(&t.client_flow(p.protocol, family), None);
        new &= !FLOW_OPENING;
    }
    if !tcp || p.tcp_flags & TCP_PSH != 0 {
        new |= FLOW_ANSWERED;
    }
    if new != flags {
        nat::restamp(p, family, t, new, &t.proxied);
    }
}
