//! Packet parsing: from raw frame to a [`Parsed`] summary, or the reason it is malformed.
//!
//! One function serves the kernel and the host. It is written for the verifier: every read
//! goes through [`PacketBytes::load`], loops have constant bounds, and offsets only grow by
//! header lengths that were themselves read from the packet and checked.

use crate::{
    addr::{FAMILY_V4, FAMILY_V6},
    bytes::PacketBytes,
    counters::Counter,
};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_IPV6: u16 = 0x86dd;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// TCP flag bits as they sit in the header's flags byte.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Most stacked VLAN tags accepted (802.1ad outer + 802.1Q inner).
pub const MAX_VLANS: usize = 2;
/// Most IPv6 extension headers followed before the packet is refused.
pub const MAX_EXT_HEADERS: usize = 4;

/// Why a packet was refused: the counter slot that records it.
pub type Malformed = Counter;

/// The network layer a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    Arp,
    Ipv4,
    Ipv6,
    /// Any other ethertype (host byte order); passed through, never inspected.
    Other(u16),
}

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// First fragment: carries the transport header.
    First,
    /// A later fragment: no transport header, ports unknown.
    Later,
}

/// What the data plane needs to know about a packet.
///
/// Addresses are kept as four raw 32-bit words in network byte order (IPv4 uses word 0),
/// so they can be copied straight into map keys. Ports are in host byte order; for ICMP
/// `src_port` holds the type and `dst_port` the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub l3: L3,
    pub vlans: u8,
    pub l3_offset: usize,
    /// Offset of the transport header; equal to the end of the IP headers for later fragments.
    pub l4_offset: usize,
    /// Transport protocol (after any IPv6 extension headers); 0 for non-IP frames.
    pub protocol: u8,
    pub fragment: Fragment,
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10); 0 for other protocols.
    pub tcp_flags: u8,
}

impl Parsed {
    /// The address family tag of an IP packet ([`FAMILY_V4`], [`FAMILY_V6`]); `None` for others.
    #[inline(always)]
    pub fn family(&self) -> Option<u8> {
        match self.l3 {
            L3::Ipv4 => Some(FAMILY_V4),
            L3::Ipv6 => Some(FAMILY_V6),
            _ => None,
        }
    }

    const fn non_ip(l3: L3, vlans: u8, l3_offset: usize) -> Self {
        Parsed {
            l3,
            vlans,
            l3_offset,
            l4_offset: l3_offset,
            protocol: 0,
            fragment: Fragment::None,
            src: [0; 4],
            dst: [0; 4],
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
        }
    }
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
fn word(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Just the source address of an IP frame: its family and address words, read without
/// validating the rest. The firewall checks its deny list with this before the full parse,
/// since a denied source's packets are dropped whatever else is wrong with them.
#[inline(always)]
pub fn source_of<P: PacketBytes + ?Sized>(pkt: &P) -> Option<(L3, [u32; 4])> {
    let (ethertype, off, _) = link_layer(pkt).ok()?;
    match ethertype {
        ETH_P_IP => {
            let s: [u8; 4] = pkt.load(off + 12)?;
            Some((L3::Ipv4, [u32::from_ne_bytes(s), 0, 0, 0]))
        }
        ETH_P_IPV6 => {
            let s: [u8; 16] = pkt.load(off + 8)?;
            Some((L3::Ipv6, [word(&s, 0), word(&s, 4), word(&s, 8), word(&s, 12)]))
        }
        _ => None,
    }
}

/// The Ethernet header and up to [`MAX_VLANS`] tags: the ethertype they lead to, the offset
/// of the network header, and how many tags there were.
#[inline(always)]
fn link_layer<P: PacketBytes + ?Sized>(pkt: &P) -> Result<(u16, usize, u8), Malformed> {
    let eth: [u8; ETH_HLEN] = pkt.load(0).ok_or(Counter::TruncatedEthernet)?;
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut off = ETH_HLEN;
    let mut vlans = 0u8;
    for _ in 0..MAX_VLANS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: [u8; 4] = pkt.load(off).ok_or(Counter::TruncatedVlan)?;
        ethertype = be16([tag[2], tag[3]]);
        off += 4;
        vlans += 1;
    }
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return Err(Counter::TooManyVlans);
    }
    Ok((ethertype, off, vlans))
}

/// Parses a frame starting at its Ethernet header.
#[inline(always)]
pub fn parse<P: PacketBytes + ?Sized>(pkt: &P) -> Result<Parsed, Malformed> {
    let (ethertype, off, vlans) = link_layer(pkt)?;
    match ethertype {
        ETH_P_IP => parse_ipv4(pkt, off, vlans),
        ETH_P_IPV6 => parse_ipv6(pkt, off, vlans),
        ETH_P_ARP => Ok(Parsed::non_ip(L3::Arp, vlans, off)),
        other => Ok(Parsed::non_ip(L3::Other(other), vlans, off)),
    }
}

/// The common case alone, for the fast path: an untagged IPv4 frame without options, not a
/// fragment, carrying TCP or UDP. `None` for anything else, which the full [`parse`] takes
/// (including every malformed frame: this runs the same checks, through the same code).
#[inline(always)]
pub fn parse_plain_v4<P: PacketBytes + ?Sized>(pkt: &P) -> Option<Parsed> {
    let ethertype: [u8; 2] = pkt.load(12)?;
    if be16(ethertype) != ETH_P_IP {
        return None;
    }
    let p = parse_ipv4(pkt, ETH_HLEN, 0).ok()?;
    let plain = p.l4_offset == ETH_HLEN + 20
        && p.fragment == Fragment::None
        && (p.protocol == IPPROTO_TCP || p.protocol == IPPROTO_UDP);
    plain.then_some(p)
}

#[inline(always)]
fn parse_ipv4<P: PacketBytes + ?Sized>(pkt: &P, off: usize, vlans: u8) -> Result<Parsed, Malformed> {
    let h: [u8; 20] = pkt.load(off).ok_or(Counter::TruncatedIpv4)?;
    if h[0] >> 4 != 4 {
        return Err(Counter::BadIpVersion);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(Counter::BadIhl);
    }
    let frame_len = pkt.frame_len();
    if off + ihl > frame_len {
        return Err(Counter::TruncatedIpv4);
    }
    let total = be16([h[2], h[3]]) as usize;
    if total < ihl || off + total > frame_len {
        return Err(Counter::BadIpLength);
    }
    let frag = be16([h[6], h[7]]);
    let fragment = if frag & 0x1fff != 0 {
        Fragment::Later
    } else if frag & 0x2000 != 0 {
        Fragment::First
    } else {
        Fragment::None
    };
    let mut p = Parsed {
        l3: L3::Ipv4,
        vlans,
        l3_offset: off,
        l4_offset: off + ihl,
        protocol: h[9],
        fragment,
        src: [word(&h, 12), 0, 0, 0],
        dst: [word(&h, 16), 0, 0, 0],
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
    };
    if fragment != Fragment::Later {
        parse_l4(pkt, &mut p, off + total)?;
    }
    Ok(p)
}

#[inline(always)]
fn parse_ipv6<P: PacketBytes + ?Sized>(pkt: &P, off: usize, vlans: u8) -> Result<Parsed, Malformed> {
    let h: [u8; 40] = pkt.load(off).ok_or(Counter::TruncatedIpv6)?;
    if h[0] >> 4 != 6 {
        return Err(Counter::BadIpVersion);
    }
    let ip_end = off + 40 + be16([h[4], h[5]]) as usize;
    if ip_end > pkt.frame_len() {
        return Err(Counter::BadIpLength);
    }
    let mut next = h[6];
    let mut l4 = off + 40;
    let mut fragment = Fragment::None;
    let mut in_chain = true;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let e: [u8; 2] = pkt.load(l4).ok_or(Counter::TruncatedExtHeader)?;
                next = e[0];
                l4 += (e[1] as usize + 1) * 8;
            }
            IPPROTO_AH => {
                let e: [u8; 2] = pkt.load(l4).ok_or(Counter::TruncatedExtHeader)?;
                next = e[0];
                l4 += (e[1] as usize + 2) * 4;
            }
            IPPROTO_FRAGMENT => {
                let e: [u8; 8] = pkt.load(l4).ok_or(Counter::TruncatedExtHeader)?;
                next = e[0];
                let fo = be16([e[2], e[3]]);
                if fo >> 3 != 0 {
                    fragment = Fragment::Later;
                } else if fo & 1 != 0 {
                    fragment = Fragment::First;
                }
                l4 += 8;
            }
            _ => {
                in_chain = false;
                break;
            }
        }
        if l4 > ip_end {
            return Err(Counter::TruncatedExtHeader);
        }
        if fragment == Fragment::Later {
            in_chain = false;
            break;
        }
    }
    if in_chain {
        return Err(Counter::TooManyExtHeaders);
    }
    let mut p = Parsed {
        l3: L3::Ipv6,
        vlans,
        l3_offset: off,
        l4_offset: l4,
        protocol: next,
        fragment,
        src: [word(&h, 8), word(&h, 12), word(&h, 16), word(&h, 20)],
        dst: [word(&h, 24), word(&h, 28), word(&h, 32), word(&h, 36)],
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
    };
    if fragment != Fragment::Later {
        parse_l4(pkt, &mut p, ip_end)?;
    }
    Ok(p)
}

/// Reads the transport header at `p.l4_offset`; `ip_end` is where the IP payload stops.
#[inline(always)]
fn parse_l4<P: PacketBytes + ?Sized>(pkt: &P, p: &mut Parsed, ip_end: usize) -> Result<(), Malformed> {
    let l4 = p.l4_offset;
    match p.protocol {
        IPPROTO_TCP => {
            let t: [u8; 20] = pkt.load(l4).ok_or(Counter::TruncatedTcp)?;
            if l4 + 20 > ip_end {
                return Err(Counter::TruncatedTcp);
            }
            let doff = ((t[12] >> 4) as usize) * 4;
            if doff < 20 || l4 + doff > ip_end {
                return Err(Counter::BadTcpOffset);
            }
            p.src_port = be16([t[0], t[1]]);
            p.dst_port = be16([t[2], t[3]]);
            p.tcp_flags = t[13];
        }
        IPPROTO_UDP => {
            let u: [u8; 8] = pkt.load(l4).ok_or(Counter::TruncatedUdp)?;
            if l4 + 8 > ip_end {
                return Err(Counter::TruncatedUdp);
            }
            let len = be16([u[4], u[5]]) as usize;
            if len < 8 || l4 + len > ip_end {
                return Err(Counter::BadUdpLength);
            }
            p.src_port = be16([u[0], u[1]]);
            p.dst_port = be16([u[2], u[3]]);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let i: [u8; 4] = pkt.load(l4).ok_or(Counter::TruncatedIcmp)?;
            if l4 + 4 > ip_end {
                return Err(Counter::TruncatedIcmp);
            }
            p.src_port = i[0] as u16;
            p.dst_port = i[1] as u16;
        }
        _ => {}
    }
    Ok(())
}

/// The packet an ICMP error quotes (a packet that was sent, not received): its addresses and
/// ports, and where its headers sit in the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    pub l3_offset: usize,
    pub l4_offset: usize,
    pub protocol: u8,
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
}

/// Whether `p` is an ICMP error message (which quotes the packet it is about).
pub fn is_icmp_error(p: &Parsed) -> bool {
    let kind = p.src_port;
    match p.protocol {
        // Destination unreachable, time exceeded, parameter problem.
        IPPROTO_ICMP => matches!(kind, 3 | 11 | 12),
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        IPPROTO_ICMPV6 => matches!(kind, 1..=4),
        _ => false,
    }
}

/// The TCP or UDP packet quoted by the ICMP error `p`; `None` if it quotes anything else or
/// too little (an error must quote the IP header and at least eight bytes after it).
#[inline(always)]
pub fn parse_quoted<P: PacketBytes + ?Sized>(pkt: &P, p: &Parsed) -> Option<Quoted> {
    if p.fragment != Fragment::None || !is_icmp_error(p) {
        return None;
    }
    let l3 = p.l4_offset + 8;
    let (protocol, src, dst, l4) = match p.l3 {
        L3::Ipv4 => {
            let h: [u8; 20] = pkt.load(l3)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            if h[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            (h[9], [word(&h, 12), 0, 0, 0], [word(&h, 16), 0, 0, 0], l3 + ihl)
        }
        L3::Ipv6 => {
            let h: [u8; 40] = pkt.load(l3)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let src = [word(&h, 8), word(&h, 12), word(&h, 16), word(&h, 20)];
            let dst = [word(&h, 24), word(&h, 28), word(&h, 32), word(&h, 36)];
            (h[6], src, dst, l3 + 40)
        }
        _ => return None,
    };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return None;
    }
    let ports: [u8; 8] = pkt.load(l4)?;
    Some(Quoted {
        l3_offset: l3,
        l4_offset: l4,
        protocol,
        src,
        dst,
        sport: be16([ports[0], ports[1]]),
        dport: be16([ports[2], ports[3]]),
    })
}

/// The counters a cleanly parsed packet adds to, besides [`Counter::Received`].
/// At most three: network layer, VLAN, transport or fragment.
pub fn classify(p: &Parsed) -> [Option<Counter>; 3] {
    let l3 = match p.l3 {
        L3::Arp => Counter::Arp,
        L3::Ipv4 => Counter::Ipv4,
        L3::Ipv6 => Counter::Ipv6,
        L3::Other(_) => Counter::OtherEthertype,
    };
    let vlan = if p.vlans > 0 { Some(Counter::Vlan) } else { None };
    let l4 = match (p.l3, p.fragment, p.protocol) {
        (L3::Arp | L3::Other(_), _, _) => None,
        (_, Fragment::Later, _) => Some(Counter::Fragment),
        (_, _, IPPROTO_TCP) => Some(Counter::Tcp),
        (_, _, IPPROTO_UDP) => Some(Counter::Udp),
        (_, _, IPPROTO_ICMP) => Some(Counter::Icmp),
        (_, _, IPPROTO_ICMPV6) => Some(Counter::Icmpv6),
        _ => Some(Counter::OtherL4),
    };
    [Some(l3), vlan, l4]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Ethernet + IPv4 + UDP frame written out by hand (the fixture builder lives
    /// in the test-support crate; this guards the parser on its own).
    fn udp4() -> [u8; 42] {
        let mut f = [0u8; 42];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&28u16.to_be_bytes());
        f[23] = IPPROTO_UDP;
        f[26..30].copy_from_slice(&[192, 0, 2, 100]);
        f[30..34].copy_from_slice(&[192, 0, 2, 53]);
        f[34..36].copy_from_slice(&5353u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&8u16.to_be_bytes());
        f
    }

    #[test]
    fn parses_udp_over_ipv4() {
        let p = parse(&udp4()[..]).expect("valid frame");
        assert_eq!(p.l3, L3::Ipv4);
        assert_eq!((p.src_port, p.dst_port), (5353, 53));
        assert_eq!(p.dst[0].to_ne_bytes(), [192, 0, 2, 53]);
        assert_eq!(p.l4_offset, 34);
    }

    #[test]
    fn every_truncation_is_refused_not_misread() {
        let f = udp4();
        for len in 0..f.len() {
            assert!(parse(&f[..len]).is_err(), "accepted a frame cut at {len}");
        }
    }

    #[test]
    fn bad_ihl_is_named() {
        let mut f = udp4();
        f[14] = 0x44;
        assert_eq!(parse(&f[..]), Err(Counter::BadIhl));
    }
}
