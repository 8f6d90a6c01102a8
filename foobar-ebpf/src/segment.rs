//! Building a TCP segment from nothing in the frame: Ethernet, IPv4 or IPv6, TCP with its
//! options, both checksums computed afresh. The Ethernet and IP headers are written by
//! [`headers`], which the ICMP errors (`icmp_error`) write theirs with too. The frame is resized to fit, at its tail or, when
//! the tail has no room (as in generic mode), at its head, whose room XDP guarantees.

use aya_ebpf::helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail};
use foobar_common::{
    bytes::PacketBytes,
    csum::CsumDelta,
    parse::{ETH_HLEN, IPPROTO_TCP},
    tcpopt::Block,
};

use crate::packet::Frame;

/// A segment to send. In a per-CPU scratch slot (see `scratch`): it is too big for the stack.
pub struct Segment {
    pub v4: bool,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: Block,
    /// Payload the caller puts after the headers itself, and its one's-complement sum.
    pub payload_len: u32,
    pub payload_sum: u32,
}

/// Where a segment's payload starts in the frame.
#[inline(always)]
pub fn payload_offset(seg: &Segment) -> usize {
    ETH_HLEN + if seg.v4 { 20 } else { 40 } + 20 + seg.options.len
}

/// Makes the frame `len` bytes long.
#[inline(always)]
pub fn resize(frame: &Frame, len: usize) -> bool {
    let now = frame.frame_len() as i32;
    let delta = len as i32 - now;
    let ctx = frame.0.ctx.cast();
    // SAFETY: both helpers only move the frame's bounds; every later access re-checks them.
    unsafe {
        delta == 0 || bpf_xdp_adjust_tail(ctx, delta) == 0 || (delta > 0 && bpf_xdp_adjust_head(ctx, -delta) == 0)
    }
}

/// Writes `seg` as the whole frame (its payload space left for the caller); false when the
/// frame could not be sized or written. The headers are written straight into the frame and
/// summed there: built on the stack first, they would not fit beside the callers' frames.
#[inline(never)]
pub fn write(frame: &Frame, seg: &Segment) -> bool {
    let ip_len = if seg.v4 { 20 } else { 40 };
    let opt_len = seg.options.len;
    if opt_len > 20 || seg.payload_len > 1500 {
        return false;
    }
    let tcp_len = 20 + opt_len + seg.payload_len as usize;
    if !resize(frame, ETH_HLEN + ip_len + tcp_len) {
        return false;
    }
    let ip = Ip { v4: seg.v4, protocol: IPPROTO_TCP, dont_fragment: true, src: &seg.src, dst: &seg.dst };
    if !headers(frame, &seg.smac, &seg.dmac, &ip, tcp_len) {
        return false;
    }
    let l4 = ETH_HLEN + ip_len;
    for i in 0..5 {
        if 4 * i < opt_len {
            let b = &seg.options.bytes;
            if !frame.store(l4 + 20 + 4 * i, [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) {
                return false;
            }
        }
    }
    let Some(tcp) = frame.window_mut::<20>(l4) else { return false };
    tcp[0..2].copy_from_slice(&seg.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&seg.dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&seg.ack.to_be_bytes());
    tcp[12] = (((20 + opt_len) / 4) as u8) << 4;
    tcp[13] = seg.flags;
    tcp[14..16].copy_from_slice(&seg.window.to_be_bytes());
    tcp[16..20].copy_from_slice(&[0; 4]);
    // TCP checksum: pseudo-header, header, options, payload.
    let words = if seg.v4 { 1 } else { 4 };
    let mut sum = CsumDelta::new();
    sum.addr(&[0; 4], &seg.src, words);
    sum.addr(&[0; 4], &seg.dst, words);
    sum.word(0, u16::from(IPPROTO_TCP));
    sum.word(0, tcp_len as u16);
    sum.bytes(tcp);
    sum.bytes(&seg.options.bytes);
    sum.partial(seg.payload_sum);
    tcp[16..18].copy_from_slice(&sum.apply(0xffff).to_be_bytes());
    true
}

/// An IP header to write: its family, protocol, DF (IPv4) and addresses.
pub struct Ip<'a> {
    pub v4: bool,
    pub protocol: u8,
    pub dont_fragment: bool,
    pub src: &'a [u32; 4],
    pub dst: &'a [u32; 4],
}

/// Writes the Ethernet header (`smac` → `dmac`) and `ip`'s header, for `l4_len` bytes after
/// it, at the start of the frame (IPv4's header checksum included); false when the frame is
/// too short. Out of line: its temporaries stay off its callers' frames (BPF's 512-byte
/// stack is shared by the whole call chain).
#[inline(never)]
pub fn headers(frame: &Frame, smac: &[u8; 6], dmac: &[u8; 6], ip: &Ip, l4_len: usize) -> bool {
    let Some(eth) = frame.window_mut::<14>(0) else { return false };
    eth[0..6].copy_from_slice(dmac);
    eth[6..12].copy_from_slice(smac);
    eth[12..14].copy_from_slice(&(if ip.v4 { 0x0800u16 } else { 0x86ddu16 }).to_be_bytes());
    if ip.v4 {
        let Some(h) = frame.window_mut::<20>(ETH_HLEN) else { return false };
        *h = [0; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        if ip.dont_fragment {
            h[6] = 0x40;
        }
        h[8] = 64;
        h[9] = ip.protocol;
        h[12..16].copy_from_slice(&ip.src[0].to_ne_bytes());
        h[16..20].copy_from_slice(&ip.dst[0].to_ne_bytes());
        let mut sum = CsumDelta::new();
        sum.bytes(h);
        h[10..12].copy_from_slice(&sum.apply(0xffff).to_be_bytes());
    } else {
        let Some(h) = frame.window_mut::<40>(ETH_HLEN) else { return false };
        h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        h[6] = ip.protocol;
        h[7] = 64;
        for i in 0..4 {
            h[8 + 4 * i..12 + 4 * i].copy_from_slice(&ip.src[i].to_ne_bytes());
            h[24 + 4 * i..28 + 4 * i].copy_from_slice(&ip.dst[i].to_ne_bytes());
        }
    }
    true
}
