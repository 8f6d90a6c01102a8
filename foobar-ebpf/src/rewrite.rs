//! Rewriting a packet's addresses and ports in place, with the checksums patched
//! incrementally (NAT both ways).

use foobar_common::{
    addr::FAMILY_V4,
    csum::CsumDelta,
    parse::{ETH_HLEN, IPPROTO_TCP, IPPROTO_UDP, Parsed},
};

use crate::packet::Frame;

/// New addresses and ports for a packet.
pub struct Rewrite {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
}

/// Applies `r` to the packet `p` describes; false if the packet could not be written.
///
/// Only untagged frames are balanced, so the IP header starts right after Ethernet: a
/// constant offset keeps every header write provably in bounds for the verifier.
///
/// `INLINE` puts the work in the caller (the fast path, which makes no call it can avoid);
/// otherwise it is a BPF function of its own, which keeps the full path's frames small.
#[inline(always)]
pub fn rewrite<const INLINE: bool>(frame: &Frame, p: &Parsed, family: u8, r: &Rewrite) -> bool {
    if INLINE { rewrite_here(frame, p, family, r) } else { rewrite_out_of_line(frame, p, family, r) }
}

#[inline(never)]
fn rewrite_out_of_line(frame: &Frame, p: &Parsed, family: u8, r: &Rewrite) -> bool {
    rewrite_here(frame, p, family, r)
}

#[inline(always)]
fn rewrite_here(frame: &Frame, p: &Parsed, family: u8, r: &Rewrite) -> bool {
    let words = if family == FAMILY_V4 { 1 } else { 4 };
    let mut addrs = CsumDelta::new();
    addrs.addr(&p.src, &r.src, words);
    addrs.addr(&p.dst, &r.dst, words);
    if p.l3_offset != ETH_HLEN {
        return false;
    }
    if family == FAMILY_V4 {
        let Some(ip) = frame.window_mut::<20>(ETH_HLEN) else { return false };
        let ip_csum = addrs.apply(u16::from_be_bytes([ip[10], ip[11]]));
        ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());
        ip[12..16].copy_from_slice(&r.src[0].to_ne_bytes());
        ip[16..20].copy_from_slice(&r.dst[0].to_ne_bytes());
    } else {
        let Some(ip) = frame.window_mut::<40>(ETH_HLEN) else { return false };
        for i in 0..4 {
            ip[8 + 4 * i..12 + 4 * i].copy_from_slice(&r.src[i].to_ne_bytes());
            ip[24 + 4 * i..28 + 4 * i].copy_from_slice(&r.dst[i].to_ne_bytes());
        }
    }
    let mut l4_delta = addrs;
    l4_delta.word(p.src_port, r.sport);
    l4_delta.word(p.dst_port, r.dport);
    let l4 = p.l4_offset;
    match p.protocol {
        IPPROTO_TCP => {
            let Some(tcp) = frame.window_mut::<18>(l4) else { return false };
            let new = l4_delta.apply(u16::from_be_bytes([tcp[16], tcp[17]]));
            tcp[16..18].copy_from_slice(&new.to_be_bytes());
            write_ports(tcp, r);
        }
        IPPROTO_UDP => {
            let Some(udp) = frame.window_mut::<8>(l4) else { return false };
            let old = u16::from_be_bytes([udp[6], udp[7]]);
            // A zero UDP checksum over IPv4 means "none": it stays none.
            if !(family == FAMILY_V4 && old == 0) {
                let new = match l4_delta.apply(old) {
                    0 => 0xffff,
                    n => n,
                };
                udp[6..8].copy_from_slice(&new.to_be_bytes());
            }
            write_ports(udp, r);
        }
        _ => {}
    }
    true
}

/// The new source and destination ports, at the start of a TCP or UDP header.
#[inline(always)]
fn write_ports<const N: usize>(header: &mut [u8; N], r: &Rewrite) {
    header[0..2].copy_from_slice(&r.sport.to_be_bytes());
    header[2..4].copy_from_slice(&r.dport.to_be_bytes());
}
