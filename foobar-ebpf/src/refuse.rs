//! Refusing a new TCP connection to a service with no backend: the frame becomes the TCP RST
//! the client would get from a closed port, sent straight back out of the interface it came
//! in on, so clients fail fast instead of retransmitting into silence.
//!
//! It leaves by `bpf_redirect` to the ingress interface rather than `XDP_TX`: on veth, frames
//! sent with XDP_TX wake the peer only when the peer runs an XDP program itself (GRO is not
//! enough), so they sat in its queue until some later redirect flushed it. A redirect always
//! flushes, on veth and on hardware alike.
//!
//! The frame is cut to bare Ethernet + IP + TCP headers, addresses and ports swapped, sequence
//! numbers set as RFC 793 says for a reset answering a segment, and both checksums computed
//! afresh (the headers are small and fixed).

use aya_ebpf::{bindings::xdp_action, helpers::generated::bpf_xdp_adjust_tail};
use foobar_common::{
    bytes::PacketBytes,
    counters::Counter,
    csum::CsumDelta,
    parse::{ETH_HLEN, L3, Parsed, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

use crate::{nexthop::back_out, packet::Frame, stats::count};

const TCP_RST_ACK: u8 = TCP_RST | TCP_ACK;

#[inline(never)]
pub fn refuse(frame: &Frame, p: &Parsed) -> u32 {
    // Never answer a reset with a reset; only plain headers are rewritten in place.
    if p.tcp_flags & TCP_RST != 0 || p.l3_offset != ETH_HLEN {
        return xdp_action::XDP_DROP;
    }
    let v4 = p.l3 == L3::Ipv4;
    let ip_len = if v4 { 20 } else { 40 };
    if p.l4_offset != ETH_HLEN + ip_len {
        return xdp_action::XDP_DROP;
    }
    let (Some(smac), Some(dmac), Some(seq), Some(ack)) = (
        frame.load::<[u8; 6]>(6),
        frame.load::<[u8; 6]>(0),
        frame.load::<[u8; 4]>(p.l4_offset + 4),
        frame.load::<[u8; 4]>(p.l4_offset + 8),
    ) else {
        return xdp_action::XDP_DROP;
    };
    let Some(ip_total) = frame_ip_len(frame, v4) else { return xdp_action::XDP_DROP };
    let Some(doff) = frame.load::<u8>(p.l4_offset + 12) else { return xdp_action::XDP_DROP };
    let payload = ip_total.saturating_sub((ip_len + ((doff >> 4) as usize) * 4) as u32);
    // RFC 793: a reset answering a segment with ACK takes its sequence number from that ACK;
    // otherwise it is sequence 0 and acknowledges everything the segment occupied.
    let (out_seq, out_ack, flags) = if p.tcp_flags & TCP_ACK != 0 {
        (u32::from_be_bytes(ack), 0, TCP_RST)
    } else {
        let occupied = payload + u32::from(p.tcp_flags & TCP_SYN != 0) + u32::from(p.tcp_flags & TCP_FIN != 0);
        (0, u32::from_be_bytes(seq).wrapping_add(occupied), TCP_RST_ACK)
    };

    let keep = (ETH_HLEN + ip_len + 20) as i32;
    let len = frame.frame_len() as i32;
    // SAFETY: shrinking the frame's tail within its length; every later access re-checks bounds.
    if len > keep && unsafe { bpf_xdp_adjust_tail(frame.0.ctx.cast(), keep - len) } != 0 {
        return xdp_action::XDP_DROP;
    }
    let l4 = ETH_HLEN + ip_len;
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&p.dst_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&p.src_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&out_seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&out_ack.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    // Pseudo-header + TCP header, summed as 16-bit words.
    let mut sum = CsumDelta::new();
    let words = if v4 { 1 } else { 4 };
    sum.addr(&[0; 4], &p.src, words);
    sum.addr(&[0; 4], &p.dst, words);
    sum.word(0, 6);
    sum.word(0, 20);
    sum.bytes(&tcp);
    tcp[16..18].copy_from_slice(&sum.apply(0xffff).to_be_bytes());
    let ok = frame.store(0, smac) && frame.store(6, dmac) && frame.store(l4, tcp);
    let ok = ok
        && if v4 {
            let mut ip: [u8; 20] = match frame.load(ETH_HLEN) {
                Some(h) => h,
                None => return xdp_action::XDP_DROP,
            };
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            ip[8] = 64;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(&p.dst[0].to_ne_bytes());
            ip[16..20].copy_from_slice(&p.src[0].to_ne_bytes());
            let mut c = CsumDelta::new();
            c.bytes(&ip);
            ip[10..12].copy_from_slice(&c.apply(0xffff).to_be_bytes());
            frame.store(ETH_HLEN, ip)
        } else {
            frame.store(ETH_HLEN + 4, 20u16.to_be_bytes())
                && frame.store(ETH_HLEN + 7, 64u8)
                && frame.store(ETH_HLEN + 8, p.dst)
                && frame.store(ETH_HLEN + 24, p.src)
        };
    if !ok {
        return xdp_action::XDP_DROP;
    }
    count(Counter::LbRefused);
    back_out(frame)
}

/// The IP packet's length from its header (IPv6: header + payload).
#[inline(always)]
fn frame_ip_len(frame: &Frame, v4: bool) -> Option<u32> {
    if v4 {
        frame.load::<[u8; 2]>(ETH_HLEN + 2).map(|b| u32::from(u16::from_be_bytes(b)))
    } else {
        frame.load::<[u8; 2]>(ETH_HLEN + 4).map(|b| 40 + u32::from(u16::from_be_bytes(b)))
    }
}
