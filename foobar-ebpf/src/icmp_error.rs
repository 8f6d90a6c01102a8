//! What a router owes a packet it cannot forward: ICMP time exceeded when its TTL (hop limit)
//! runs out here, and fragmentation needed (ICMPv6 packet too big) when the egress link
//! cannot carry it, instead of a silent black hole for path MTU discovery.
//!
//! The frame becomes the error in place: room for the new IP and ICMP headers is made in
//! front (XDP guarantees headroom), so the packet's own IP header and the 8 bytes after it,
//! which the error quotes, stay where they are, and the rest is cut. The error comes from
//! the address the sender addressed (the VIP, or the NAT address for a backend's reply) and
//! leaves by the interface the packet came in on.

use aya_ebpf::{
    bindings::{bpf_check_mtu_ret::BPF_MTU_CHK_RET_FRAG_NEEDED, xdp_action},
    helpers::generated::{bpf_check_mtu, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
};
use foobar_common::{
    bytes::PacketBytes,
    counters::Counter,
    csum::CsumDelta,
    parse::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, L3, Parsed, is_icmp_error},
};

use crate::{
    conntrack,
    nexthop::{back_out, hop_back},
    packet::Frame,
    segment::{Ip, headers},
    stats::count,
};

/// Whether `p` (untagged, so its IP header is right after Ethernet) arrived with the TTL or
/// hop limit that runs out at this hop.
#[inline(always)]
pub fn expires_here(frame: &Frame, p: &Parsed) -> bool {
    let at = if p.l3 == L3::Ipv4 { ETH_HLEN + 8 } else { ETH_HLEN + 7 };
    frame.load::<u8>(at).is_some_and(|ttl| ttl <= 1)
}

/// The MTU of interface `ifindex` when the frame is too big for it; `None` when it fits.
/// Frames that fit the smallest link the daemon saw are spared the helper call.
#[inline(always)]
pub fn too_big_for(frame: &Frame, ifindex: u32) -> Option<u32> {
    let floor = conntrack::settings().map_or(0, |s| s.link_mtu_floor as usize);
    if frame.frame_len() <= ETH_HLEN + floor {
        return None;
    }
    let mut mtu = 0u32;
    // SAFETY: the helper reads the frame's length and the device's MTU, and writes `mtu`.
    let rc = unsafe { bpf_check_mtu(frame.0.ctx.cast(), ifindex, &mut mtu, 0, 0) };
    (rc == i64::from(BPF_MTU_CHK_RET_FRAG_NEEDED)).then_some(mtu)
}

/// If `p` cannot be forwarded out of `ifindex` (its TTL runs out here, or it is too big for
/// the link), the verdict that answers it instead.
#[inline(always)]
pub fn unforwardable(frame: &Frame, p: &Parsed, ifindex: u32) -> Option<u32> {
    if expires_here(frame, p) {
        return Some(answer(frame, p, 0));
    }
    too_big_for(frame, ifindex).map(|mtu| answer(frame, p, mtu))
}

/// Answers `p` with time exceeded (`mtu` 0) or fragmentation needed / packet too big for
/// `mtu`, sent back to its source; dropped (counted) when it may not be answered.
#[inline(never)]
pub fn answer(frame: &Frame, p: &Parsed, mtu: u32) -> u32 {
    let v4 = p.l3 == L3::Ipv4;
    count(if mtu == 0 { Counter::LbTimeExceeded } else { Counter::LbTooBig });
    // Never an error about an error (RFC 1122); an IPv4 packet without DF may be fragmented
    // by a router, which XDP cannot do: it is dropped.
    let df = v4 && frame.load::<u8>(ETH_HLEN + 6).is_some_and(|b| b & 0x40 != 0);
    if p.l3_offset != ETH_HLEN || is_icmp_error(p) || (v4 && mtu != 0 && !df) {
        return xdp_action::XDP_DROP;
    }
    // Back to the sender: its MAC from ours, read before the frame moves.
    let Some(back) = hop_back(frame) else { return xdp_action::XDP_DROP };
    let ip_header = if v4 {
        let Some(ihl) = frame.load::<u8>(ETH_HLEN) else { return xdp_action::XDP_DROP };
        usize::from(ihl & 0xf) * 4
    } else {
        40
    };
    let quoted = ip_header + 8;
    let new_headers = if v4 { 20 + 8 } else { 40 + 8 };
    let len = frame.frame_len();
    if len < ETH_HLEN + quoted {
        return xdp_action::XDP_DROP;
    }
    let ctx = frame.0.ctx.cast();
    let cut = (ETH_HLEN + quoted) as i32 - len as i32;
    // SAFETY: both helpers only move the frame's bounds; every later access re-checks them.
    if unsafe { bpf_xdp_adjust_tail(ctx, cut) != 0 || bpf_xdp_adjust_head(ctx, -(new_headers as i32)) != 0 } {
        return xdp_action::XDP_DROP;
    }
    // From the address the sender addressed, to the sender.
    let (src, dst) = (&p.dst, &p.src);
    let icmp_len = (8 + quoted) as u16;
    let l4 = ETH_HLEN + if v4 { 20 } else { 40 };
    let protocol = if v4 { IPPROTO_ICMP } else { IPPROTO_ICMPV6 };
    let ip = Ip { v4, protocol, dont_fragment: false, src, dst };
    if !headers(frame, &back.smac, &back.dmac, &ip, usize::from(icmp_len)) {
        return xdp_action::XDP_DROP;
    }
    let mut sum = CsumDelta::new();
    if !v4 {
        // ICMPv6's checksum covers a pseudo-header: addresses, length, next header.
        sum.addr(&[0; 4], src, 4);
        sum.addr(&[0; 4], dst, 4);
        sum.word(0, icmp_len);
        sum.word(0, u16::from(IPPROTO_ICMPV6));
    }
    let (kind, code, rest) = match (v4, mtu) {
        (true, 0) => (11, 0, [0; 4]),
        (true, m) => (3, 4, [0, 0, (m >> 8) as u8, m as u8]),
        (false, 0) => (3, 0, [0; 4]),
        (false, m) => (2, 0, m.to_be_bytes()),
    };
    let Some(icmp) = frame.window_mut::<8>(l4) else { return xdp_action::XDP_DROP };
    *icmp = [kind, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    sum.word(0, u16::from_be_bytes([kind, code]));
    sum.word(0, u16::from_be_bytes([rest[0], rest[1]]));
    sum.word(0, u16::from_be_bytes([rest[2], rest[3]]));
    // The quoted bytes: at most a 60-byte IPv4 header and 8 more, in whole words.
    for i in 0..17 {
        if 4 * i < quoted {
            let Some(w) = frame.load::<[u8; 4]>(l4 + 8 + 4 * i) else { return xdp_action::XDP_DROP };
            sum.word(0, u16::from_be_bytes([w[0], w[1]]));
            sum.word(0, u16::from_be_bytes([w[2], w[3]]));
        }
    }
    if !frame.store(l4 + 2, sum.apply(0xffff).to_be_bytes()) {
        return xdp_action::XDP_DROP;
    }
    back_out(frame)
}

/// Takes one from the TTL (hop limit) of the frame about to be forwarded, patching the IPv4
/// header checksum; false when it has none left to take (the frame is not forwarded).
#[inline(always)]
pub fn hop(frame: &Frame) -> bool {
    let Some(ethertype) = frame.load::<[u8; 2]>(12) else { return false };
    match u16::from_be_bytes(ethertype) {
        0x0800 => {
            let Some(ip) = frame.window_mut::<12>(ETH_HLEN) else { return false };
            if ip[8] <= 1 {
                return false;
            }
            let mut d = CsumDelta::new();
            d.word(u16::from_be_bytes([ip[8], ip[9]]), u16::from_be_bytes([ip[8] - 1, ip[9]]));
            ip[8] -= 1;
            let c = d.apply(u16::from_be_bytes([ip[10], ip[11]]));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            true
        }
        0x86dd => {
            let Some(ip) = frame.window_mut::<8>(ETH_HLEN) else { return false };
            if ip[7] <= 1 {
                return false;
            }
            ip[7] -= 1;
            true
        }
        _ => true,
    }
}
