//! ICMP errors about balanced flows (fragmentation needed, say): they go to the backend that
//! owns the flow, which is the one that must react.
//!
//! In DSR mode the backend sent the quoted packet itself, from the VIP, so the error goes
//! unchanged. In NAT mode the backend sent it to the node's NAT address, so the quoted packet
//! is turned back into what the backend sent, and the error is addressed to the backend. In
//! DNAT mode it sent it to the client itself, so only the quoted source changes.

use aya_ebpf::bindings::xdp_action;
use foobar_common::{
    bytes::PacketBytes,
    counters::Counter,
    csum::CsumDelta,
    lb::{Backend, FLOW_PROXIED, Flow, FlowKey, MODE_DSR, NatKey, Passive, ServiceKey, near},
    parse::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, L3, Parsed, Quoted, parse_quoted},
};

use crate::{
    conntrack, forward, nat,
    nexthop::{redirect_to, send},
    packet::Frame,
    services,
    stats::{count, count_passive},
};

/// Sends an ICMP error about a tracked flow to the flow's backend; `None` (to the stack) for
/// any other ICMP message.
#[inline(never)]
pub fn to_backend(frame: &Frame, p: &Parsed, family: u8) -> Option<u32> {
    let q = parse_quoted(frame, p)?;
    // About a packet to a backend from the node's NAT address: its port or host cannot be
    // reached, passive health evidence against it. The stack gets the error as before.
    // The reverse of the quoted packet: a DNAT binding (the backend's replies to a client it
    // could not reach back), or a client's flow (the quoted packet went from the VIP to it).
    let key = FlowKey::new(q.dst, q.dport, q.src, q.sport, q.protocol, family);
    // About a packet to a backend from the node's NAT address (or in DNAT mode from the
    // client): its port or host cannot be reached, passive health evidence against it. The
    // stack gets the error as before (and forwards a DNAT flow's to the client).
    let bound =
        nat::binding(&NatKey::new(q.dst, q.dport, q.sport, q.protocol, family)).or_else(|| nat::dnat_binding(&key));
    if let Some(t) = bound {
        let unreachable = match p.protocol {
            IPPROTO_ICMP => p.src_port == 3 && p.dst_port != 4,
            _ => p.src_port == 1,
        };
        if unreachable {
            count_passive(t.backend, Passive::Unreachable);
        }
        return None;
    }
    let flow = conntrack::get(&key)?;
    // From a VIP's service: the quoted packet was one of the flow's replies.
    services::find(&ServiceKey { addr: q.src, port: q.sport, protocol: q.protocol, family })?;
    let backend = services::backend(flow.backend)?;
    // A TCP error must quote a segment the backend could have sent lately: its sequence number
    // near what the client last acknowledged. (The backend's stack checks it again, exactly.)
    let quoted_seq = if q.protocol == IPPROTO_TCP {
        let Some(seq) = frame.load::<[u8; 4]>(q.l4_offset + 4).map(u32::from_be_bytes) else {
            return Some(xdp_action::XDP_DROP);
        };
        if !near(seq, flow.client_ack) {
            count(Counter::LbIcmpOutOfWindow);
            return Some(xdp_action::XDP_DROP);
        }
        Some(seq)
    } else {
        None
    };
    count(Counter::LbIcmpToBackend);
    if flow.mode != MODE_DSR && !unnat(frame, p, &q, backend, flow) {
        return Some(xdp_action::XDP_DROP);
    }
    // A proxied flow's quoted segment is in the client's sequence space: back to the backend's.
    if let Some(seq) = quoted_seq.filter(|_| flow.flags & FLOW_PROXIED != 0) {
        if !requote_seq(frame, p, &q, seq, seq.wrapping_add(flow.proxied.seq_delta)) {
            return Some(xdp_action::XDP_DROP);
        }
    }
    if flow.hop.ifindex != 0 {
        return Some(send(frame, &flow.hop));
    }
    Some(redirect_to(frame, p, &p.src, &backend.addr))
}

/// Puts `new` in place of the quoted TCP sequence number `old`, patching the ICMP checksum.
#[inline(always)]
fn requote_seq(frame: &Frame, p: &Parsed, q: &Quoted, old: u32, new: u32) -> bool {
    let mut d = CsumDelta::new();
    d.raw32(old.to_be(), new.to_be());
    let at = p.l4_offset + 2;
    let Some(csum) = frame.load::<[u8; 2]>(at) else { return false };
    frame.store(q.l4_offset + 4, new.to_be_bytes()) && frame.store(at, d.apply(u16::from_be_bytes(csum)).to_be_bytes())
}

/// Rewrites an ICMP error about a NAT flow for its backend: the quoted packet (VIP:port →
/// client:port, as the client saw it) becomes what the backend sent (backend:port →
/// the address and port `flow` reaches it from: the NAT address, or in DNAT mode the client),
/// and the error is addressed to the backend.
///
/// Patched: the outer destination (and IPv4 header checksum), the quoted addresses, port and
/// IPv4 header checksum, and the ICMP checksum over all of those (for ICMPv6 also over the
/// pseudo-header's destination). The quoted transport checksum is left as it was: receivers
/// do not check it, and it may not even be quoted.
#[inline(never)]
fn unnat(frame: &Frame, p: &Parsed, q: &Quoted, backend: &Backend, flow: &Flow) -> bool {
    if p.l3_offset != ETH_HLEN {
        return false;
    }
    let (mut nat, nat_port) = (*forward::source(flow.mode, backend, &q.dst), flow.nat_port);
    if let Some(peer) = forward::peer_source(flow) {
        nat = *peer;
    }
    let v4 = p.l3 == L3::Ipv4;
    let words = if v4 { 1 } else { 4 };
    // Changes inside the ICMP message, for the ICMP checksum.
    let mut inner = CsumDelta::new();
    inner.addr(&q.src, &backend.addr, words);
    inner.addr(&q.dst, &nat, words);
    inner.word(q.dport, nat_port);
    let ql3 = q.l3_offset;
    if v4 {
        let Some(old) = frame.load::<[u8; 2]>(ql3 + 10) else { return false };
        let old = u16::from_be_bytes(old);
        let mut hdr = CsumDelta::new();
        hdr.addr(&q.src, &backend.addr, 1);
        hdr.addr(&q.dst, &nat, 1);
        let new = hdr.apply(old);
        inner.word(old, new);
        if !frame.store(ql3 + 10, new.to_be_bytes())
            || !frame.store(ql3 + 12, backend.addr[0])
            || !frame.store(ql3 + 16, nat[0])
        {
            return false;
        }
    } else {
        for i in 0..4 {
            if !frame.store(ql3 + 8 + 4 * i, backend.addr[i]) || !frame.store(ql3 + 24 + 4 * i, nat[i]) {
                return false;
            }
        }
    }
    if !frame.store(q.l4_offset + 2, nat_port.to_be_bytes()) {
        return false;
    }
    // The outer destination: the VIP becomes the backend.
    let mut outer = CsumDelta::new();
    outer.addr(&p.dst, &backend.addr, words);
    if v4 {
        let Some(old) = frame.load::<[u8; 2]>(ETH_HLEN + 10) else { return false };
        if !frame.store(ETH_HLEN + 10, outer.apply(u16::from_be_bytes(old)).to_be_bytes())
            || !frame.store(ETH_HLEN + 16, backend.addr[0])
        {
            return false;
        }
    } else {
        for i in 0..4 {
            if !frame.store(ETH_HLEN + 24 + 4 * i, backend.addr[i]) {
                return false;
            }
        }
        // ICMPv6's checksum covers the pseudo-header, so the outer change counts there too.
        inner.addr(&p.dst, &backend.addr, 4);
    }
    let at = p.l4_offset + 2;
    let Some(old) = frame.load::<[u8; 2]>(at) else { return false };
    frame.store(at, inner.apply(u16::from_be_bytes(old)).to_be_bytes())
}
