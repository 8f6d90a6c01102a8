//! NAT: rewriting a packet's addresses and ports, with the checksums patched incrementally,
//! and choosing the source port a new flow uses towards its backend.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap},
};
use foobar_common::{
    addr::FAMILY_V4,
    bytes::PacketBytes,
    csum::CsumDelta,
    lb::{Backend, Flow, FlowKey, LbSettings, NAT_ENTRIES, NatKey, NatTarget, nat_port_free},
    parse::{ETH_HLEN, IPPROTO_TCP, IPPROTO_UDP, L3, Parsed, Quoted},
};

use crate::{atomic, flow_cache, lb::CONNTRACK, packet::Frame, scratch::Scratch};

#[map(name = "LB_NAT")]
pub static NAT: LruHashMap<NatKey, NatTarget> = LruHashMap::with_max_entries(NAT_ENTRIES, 0);
/// One shared cursor over the NAT port range.
#[map(name = "LB_NAT_CURSOR")]
static NAT_CURSOR: Array<u64> = Array::with_max_entries(1, 0);

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

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

/// Picks a free NAT source port towards `backend` for the flow `key` and records the way back.
///
/// Ports come from one shared cursor (an atomic add), so CPUs never hand out the same one
/// at once; a port still held by a live flow is skipped. One whose flow ended, or closed and
/// went quiet for `nat_reuse_ns`, is reused, and a closed holder is forgotten so its late
/// packets cannot reach the new flow's backend connection.
#[inline(always)]
pub fn allocate_port(key: &FlowKey, backend: &Backend, sc: &mut Scratch, s: &LbSettings, now: u64) -> Option<u16> {
    let cursor = NAT_CURSOR.get_ptr_mut(0)?;
    if s.nat_port_count == 0 {
        return None;
    }
    for _ in 0..8 {
        // SAFETY: the cursor slot is a valid, aligned u64 in the map; every user adds atomically.
        let n = unsafe { atomic::fetch_add(cursor, 1) };
        let port = (u64::from(s.nat_port_min) + n % u64::from(s.nat_port_count)) as u16;
        sc.nat_key = NatKey {
            backend: backend.addr,
            backend_port: key.dport,
            nat_port: port,
            protocol: key.protocol,
            family: key.family,
            _pad: [0; 2],
        };
        if NAT.insert(&sc.nat_key, &sc.target, BPF_NOEXIST).is_ok() {
            return Some(port);
        }
        // SAFETY: map lookups return pointers valid for this program run.
        let Some(holder) = (unsafe { NAT.get(&sc.nat_key) }) else { continue };
        sc.holder = FlowKey {
            src: holder.client,
            dst: holder.vip,
            sport: holder.client_port,
            dport: holder.vip_port,
            protocol: key.protocol,
            family: key.family,
            _pad: [0; 2],
        };
        // SAFETY: as above.
        let held = unsafe { CONNTRACK.get(&sc.holder) }.filter(|f| f.nat_port == port);
        let free = held.is_none_or(|f| nat_port_free(f, now, key.protocol, s));
        if free && NAT.insert(&sc.nat_key, &sc.target, BPF_ANY).is_ok() {
            if let Some(f) = held {
                flow_cache::retire(f.last_seen_ns, now);
                let _ = CONNTRACK.remove(&sc.holder);
            }
            return Some(port);
        }
    }
    None
}

/// Whether the NAT port of `old`, the closing flow of tuple `key`, still belongs to that
/// tuple towards `backend` (no other flow has taken it since), so a new flow on the same
/// tuple can have it back.
#[inline(always)]
pub fn still_holds_port(key: &FlowKey, old: &Flow, backend: &Backend) -> bool {
    let nat_key = NatKey {
        backend: backend.addr,
        backend_port: key.dport,
        nat_port: old.nat_port,
        protocol: key.protocol,
        family: key.family,
        _pad: [0; 2],
    };
    // SAFETY: map lookups return pointers valid for this program run.
    match unsafe { NAT.get(&nat_key) } {
        Some(t) => t.client == key.src && t.client_port == key.sport && t.vip == key.dst,
        None => false,
    }
}

/// Rewrites an ICMP error about a NAT flow for its backend: the quoted packet (VIP:port →
/// client:port, as the client saw it) becomes what the backend sent (backend:port →
/// NAT address:NAT port), and the error is addressed to the backend.
///
/// Patched: the outer destination (and IPv4 header checksum), the quoted addresses, port and
/// IPv4 header checksum, and the ICMP checksum over all of those (for ICMPv6 also over the
/// pseudo-header's destination). The quoted transport checksum is left as it was: receivers
/// do not check it, and it may not even be quoted.
#[inline(never)]
pub fn unnat_icmp(frame: &Frame, p: &Parsed, q: &Quoted, backend: &Backend, nat_port: u16) -> bool {
    if p.l3_offset != ETH_HLEN {
        return false;
    }
    let v4 = p.l3 == L3::Ipv4;
    let words = if v4 { 1 } else { 4 };
    // Changes inside the ICMP message, for the ICMP checksum.
    let mut inner = CsumDelta::new();
    inner.addr(&q.src, &backend.addr, words);
    inner.addr(&q.dst, &backend.snat, words);
    inner.word(q.dport, nat_port);
    let ql3 = q.l3_offset;
    if v4 {
        let Some(old) = frame.load::<[u8; 2]>(ql3 + 10) else { return false };
        let old = u16::from_be_bytes(old);
        let mut hdr = CsumDelta::new();
        hdr.addr(&q.src, &backend.addr, 1);
        hdr.addr(&q.dst, &backend.snat, 1);
        let new = hdr.apply(old);
        inner.word(old, new);
        if !frame.store(ql3 + 10, new.to_be_bytes())
            || !frame.store(ql3 + 12, backend.addr[0])
            || !frame.store(ql3 + 16, backend.snat[0])
        {
            return false;
        }
    } else {
        for i in 0..4 {
            if !frame.store(ql3 + 8 + 4 * i, backend.addr[i]) || !frame.store(ql3 + 24 + 4 * i, backend.snat[i]) {
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
