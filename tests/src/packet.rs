//! Building frames for fixtures and lab traffic.
//!
//! A [`Frame`] describes a packet layer by layer; [`Frame::build`] lays it out with every
//! length and checksum right, and the `corrupt_*`/`truncate` helpers on the resulting bytes
//! make the malformed variants the data plane must drop.
//!
//! ```
//! use foobar_tests::packet::{Frame, TcpFlags};
//! let syn = Frame::tcp4([192, 0, 2, 100], 40000, [192, 0, 2, 10], 80)
//!     .flags(TcpFlags::SYN)
//!     .build();
//! assert_eq!(syn.len(), 14 + 20 + 20);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x64];

/// An IPv6 address from a literal the test wrote.
pub fn v6(text: &str) -> Ipv6Addr {
    text.parse().expect("v6 literal")
}

/// `f` built with source MAC `src` and destination MAC `dst`.
pub fn with_macs(mut f: Frame, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    f.src_mac = src;
    f.dst_mac = dst;
    f.build()
}
pub const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// TCP options as Linux writes them, for [`Frame::tcp_options`].
pub mod tcp_option {
    pub fn mss(mss: u16) -> Vec<u8> {
        let m = mss.to_be_bytes();
        vec![2, 4, m[0], m[1]]
    }
    /// SACK-permitted then a timestamp (value, echo), as in a SYN.
    pub fn sack_ok_timestamp(value: u32, echo: u32) -> Vec<u8> {
        let mut o = vec![4, 2, 8, 10];
        o.extend_from_slice(&value.to_be_bytes());
        o.extend_from_slice(&echo.to_be_bytes());
        o
    }
    /// NOP, NOP, timestamp (value, echo), as after the handshake.
    pub fn timestamp(value: u32, echo: u32) -> Vec<u8> {
        let mut o = vec![1, 1, 8, 10];
        o.extend_from_slice(&value.to_be_bytes());
        o.extend_from_slice(&echo.to_be_bytes());
        o
    }
    pub fn window_scale(shift: u8) -> Vec<u8> {
        vec![1, 3, 3, shift]
    }
    /// NOP, NOP, SACK with the given (left, right) edges.
    pub fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut o = vec![1, 1, 5, 2 + 8 * blocks.len() as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    }
}

/// TCP flag bits.
pub struct TcpFlags;
impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// The network layer of a frame.
#[derive(Clone, Debug)]
pub enum Net {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        /// Raw option bytes (padded to a multiple of 4 by the builder).
        options: Vec<u8>,
        /// Fragment offset in 8-byte units.
        frag_offset: u16,
        more_fragments: bool,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        /// Extension headers as (next-header value identifying this header, body after the
        /// two-byte next/length prefix). The builder writes next-header and length fields.
        ext: Vec<(u8, Vec<u8>)>,
    },
    Arp,
    /// Any other ethertype with raw payload.
    Other(u16),
}

/// The transport layer of a frame.
#[derive(Clone, Debug)]
pub enum Transport {
    Tcp {
        src: u16,
        dst: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
    },
    Udp {
        src: u16,
        dst: u16,
    },
    /// ICMP or ICMPv6 (by the network layer's family): type, code, the 4 bytes after the checksum.
    Icmp {
        kind: u8,
        code: u8,
        rest: [u8; 4],
    },
    /// Any protocol number with the payload as its body.
    Raw(u8),
    None,
}

/// A frame described layer by layer.
#[derive(Clone, Debug)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 802.1Q tags, outermost first (the outermost uses 802.1ad when there are two).
    pub vlans: Vec<u16>,
    pub net: Net,
    pub transport: Transport,
    /// TCP option bytes after the fixed header (padded with end-of-list to a 4-byte multiple).
    pub tcp_options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Frame {
    fn ip(net: Net, transport: Transport) -> Frame {
        Frame {
            src_mac: CLIENT_MAC,
            dst_mac: NODE_MAC,
            vlans: Vec::new(),
            net,
            transport,
            tcp_options: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4]) -> Net {
        Net::V4 {
            src: src.into(),
            dst: dst.into(),
            ttl: 64,
            options: Vec::new(),
            frag_offset: 0,
            more_fragments: false,
        }
    }

    fn v6(src: Ipv6Addr, dst: Ipv6Addr) -> Net {
        Net::V6 { src, dst, hop_limit: 64, ext: Vec::new() }
    }

    /// TCP over IPv4 with ACK set (an established-flow segment); see [`Frame::flags`].
    pub fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Frame {
        Frame::ip(
            Frame::v4(src, dst),
            Transport::Tcp { src: sport, dst: dport, flags: TcpFlags::ACK, seq: 1, ack: 1, window: 0xffff },
        )
    }

    pub fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Frame {
        Frame::ip(Frame::v4(src, dst), Transport::Udp { src: sport, dst: dport })
    }

    /// ICMP echo request over IPv4.
    pub fn ping4(src: [u8; 4], dst: [u8; 4]) -> Frame {
        Frame::ip(Frame::v4(src, dst), Transport::Icmp { kind: 8, code: 0, rest: [0, 1, 0, 1] })
    }

    pub fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Frame {
        Frame::ip(
            Frame::v6(src, dst),
            Transport::Tcp { src: sport, dst: dport, flags: TcpFlags::ACK, seq: 1, ack: 1, window: 0xffff },
        )
    }

    pub fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Frame {
        Frame::ip(Frame::v6(src, dst), Transport::Udp { src: sport, dst: dport })
    }

    /// ICMPv6 message (e.g. 135 neighbour solicitation, 2 packet too big).
    pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, kind: u8, code: u8) -> Frame {
        Frame::ip(Frame::v6(src, dst), Transport::Icmp { kind, code, rest: [0; 4] })
    }

    /// An ARP request (who-has `target` tell `sender`).
    pub fn arp(sender: [u8; 4], target: [u8; 4]) -> Frame {
        let mut body = vec![0, 1, 8, 0, 6, 4, 0, 1];
        body.extend_from_slice(&CLIENT_MAC);
        body.extend_from_slice(&sender);
        body.extend_from_slice(&[0; 6]);
        body.extend_from_slice(&target);
        Frame { payload: body, ..Frame::ip(Net::Arp, Transport::None) }
    }

    pub fn flags(mut self, flags: u8) -> Frame {
        if let Transport::Tcp { flags: f, .. } = &mut self.transport {
            *f = flags;
        }
        self
    }

    /// Sets the TCP sequence number, acknowledgement number and window.
    pub fn tcp_numbers(mut self, seq_no: u32, ack_no: u32, win: u16) -> Frame {
        if let Transport::Tcp { seq, ack, window, .. } = &mut self.transport {
            (*seq, *ack, *window) = (seq_no, ack_no, win);
        }
        self
    }

    /// TCP options, as raw bytes (see [`tcp_option`] for the usual ones).
    pub fn tcp_options(mut self, bytes: &[u8]) -> Frame {
        self.tcp_options = bytes.to_vec();
        while !self.tcp_options.len().is_multiple_of(4) {
            self.tcp_options.push(0);
        }
        self
    }

    /// The frame as a router forwards it: TTL (hop limit) one less.
    pub fn forwarded(mut self) -> Frame {
        match &mut self.net {
            Net::V4 { ttl, .. } => *ttl -= 1,
            Net::V6 { hop_limit, .. } => *hop_limit -= 1,
            _ => {}
        }
        self
    }

    pub fn vlan(mut self, id: u16) -> Frame {
        self.vlans.push(id);
        self
    }

    pub fn payload(mut self, bytes: &[u8]) -> Frame {
        self.payload = bytes.to_vec();
        self
    }

    /// IPv4 options (padded with end-of-list bytes to a 4-byte multiple).
    pub fn ip_options(mut self, bytes: &[u8]) -> Frame {
        if let Net::V4 { options, .. } = &mut self.net {
            *options = bytes.to_vec();
            while options.len() % 4 != 0 {
                options.push(0);
            }
        }
        self
    }

    /// Marks the packet as a fragment: IPv4 fragment fields, or an IPv6 fragment header.
    pub fn fragment(mut self, offset_units: u16, more: bool) -> Frame {
        match &mut self.net {
            Net::V4 { frag_offset, more_fragments, .. } => {
                *frag_offset = offset_units;
                *more_fragments = more;
            }
            Net::V6 { ext, .. } => {
                let fo = (offset_units << 3) | u16::from(more);
                let mut body = fo.to_be_bytes().to_vec();
                body.extend_from_slice(&[0, 0, 0, 7]);
                ext.push((foobar_common::parse::IPPROTO_FRAGMENT, body));
            }
            _ => {}
        }
        self
    }

    /// Adds an IPv6 extension header of the given kind with an 8-byte-aligned empty body.
    pub fn ext_header(mut self, kind: u8) -> Frame {
        if let Net::V6 { ext, .. } = &mut self.net {
            ext.push((kind, vec![0; 6]));
        }
        self
    }

    fn ethertype(&self) -> u16 {
        match self.net {
            Net::V4 { .. } => 0x0800,
            Net::V6 { .. } => 0x86dd,
            Net::Arp => 0x0806,
            Net::Other(t) => t,
        }
    }

    fn protocol(&self) -> u8 {
        let v6 = matches!(self.net, Net::V6 { .. });
        match self.transport {
            Transport::Tcp { .. } => 6,
            Transport::Udp { .. } => 17,
            Transport::Icmp { .. } if v6 => 58,
            Transport::Icmp { .. } => 1,
            Transport::Raw(p) => p,
            Transport::None => 59,
        }
    }

    fn addresses(&self) -> Option<(IpAddr, IpAddr)> {
        match &self.net {
            Net::V4 { src, dst, .. } => Some(((*src).into(), (*dst).into())),
            Net::V6 { src, dst, .. } => Some(((*src).into(), (*dst).into())),
            _ => None,
        }
    }

    /// The transport segment with its checksum filled in.
    fn segment(&self) -> Vec<u8> {
        let mut seg = match self.transport {
            Transport::Tcp { src, dst, flags, seq, ack, window } => {
                let mut t = Vec::with_capacity(20);
                t.extend_from_slice(&src.to_be_bytes());
                t.extend_from_slice(&dst.to_be_bytes());
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.extend_from_slice(&[((20 + self.tcp_options.len()) as u8 / 4) << 4, flags]);
                t.extend_from_slice(&window.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]);
                t.extend_from_slice(&self.tcp_options);
                t
            }
            Transport::Udp { src, dst } => {
                let len = (8 + self.payload.len()) as u16;
                let mut u = Vec::with_capacity(8);
                u.extend_from_slice(&src.to_be_bytes());
                u.extend_from_slice(&dst.to_be_bytes());
                u.extend_from_slice(&len.to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u
            }
            Transport::Icmp { kind, code, rest } => {
                let mut i = vec![kind, code, 0, 0];
                i.extend_from_slice(&rest);
                i
            }
            Transport::Raw(_) | Transport::None => Vec::new(),
        };
        seg.extend_from_slice(&self.payload);
        let csum_at = match (&self.transport, &self.net) {
            (Transport::Tcp { .. }, _) => Some(16),
            (Transport::Udp { .. }, _) => Some(6),
            (Transport::Icmp { .. }, Net::V4 { .. }) => {
                let c = checksum::of(&seg);
                seg[2..4].copy_from_slice(&c.to_be_bytes());
                None
            }
            (Transport::Icmp { .. }, _) => Some(2),
            _ => None,
        };
        if let (Some(at), Some((src, dst))) = (csum_at, self.addresses()) {
            let mut c = checksum::transport(src, dst, self.protocol(), &seg);
            if c == 0 && matches!(self.transport, Transport::Udp { .. }) {
                c = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        seg
    }

    /// Lays the frame out as bytes.
    pub fn build(&self) -> Vec<u8> {
        let tags = self.vlans.len();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        for (i, id) in self.vlans.iter().enumerate() {
            // With two tags the outer one is the 802.1ad service tag.
            let tpid: u16 = if tags > 1 && i == 0 { 0x88a8 } else { 0x8100 };
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(&self.ethertype().to_be_bytes());
        match &self.net {
            Net::V4 { src, dst, ttl, options, frag_offset, more_fragments } => {
                let seg = if *frag_offset == 0 { self.segment() } else { self.payload.clone() };
                let ihl = 20 + options.len();
                let total = (ihl + seg.len()) as u16;
                let frag = (*frag_offset & 0x1fff) | if *more_fragments { 0x2000 } else { 0 };
                let mut h = vec![0x40 | (ihl / 4) as u8, 0];
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34]);
                h.extend_from_slice(&frag.to_be_bytes());
                h.extend_from_slice(&[*ttl, self.protocol(), 0, 0]);
                h.extend_from_slice(&src.octets());
                h.extend_from_slice(&dst.octets());
                h.extend_from_slice(options);
                let c = checksum::of(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                out.extend_from_slice(&h);
                out.extend_from_slice(&seg);
            }
            Net::V6 { src, dst, hop_limit, ext } => {
                let later_fragment = ext.iter().any(|(k, b)| {
                    *k == foobar_common::parse::IPPROTO_FRAGMENT && (u16::from_be_bytes([b[0], b[1]]) >> 3) != 0
                });
                let seg = if later_fragment { self.payload.clone() } else { self.segment() };
                let mut chain = Vec::new();
                for (i, (_, body)) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(self.protocol(), |(k, _)| *k);
                    let len_units = ((2 + body.len()) / 8).saturating_sub(1) as u8;
                    chain.push(next);
                    chain.push(len_units);
                    chain.extend_from_slice(body);
                }
                let first = ext.first().map_or(self.protocol(), |(k, _)| *k);
                let payload_len = (chain.len() + seg.len()) as u16;
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&payload_len.to_be_bytes());
                out.extend_from_slice(&[first, *hop_limit]);
                out.extend_from_slice(&src.octets());
                out.extend_from_slice(&dst.octets());
                out.extend_from_slice(&chain);
                out.extend_from_slice(&seg);
            }
            Net::Arp | Net::Other(_) => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// Offset of the IP header in `frame` (after any VLAN tags).
fn l3_offset(frame: &[u8]) -> usize {
    let mut off = 12;
    while off + 2 <= frame.len() && matches!(u16::from_be_bytes([frame[off], frame[off + 1]]), 0x8100 | 0x88a8) {
        off += 4;
    }
    off + 2
}

/// Cuts `frame` to `len` bytes and rewrites the IP length field (and IPv4 header checksum) to
/// match, so the packet is consistently short: the way to reach "transport header truncated"
/// rather than "IP length disagrees with the frame".
pub fn truncate_consistently(frame: &[u8], len: usize) -> Vec<u8> {
    let mut f = frame[..len].to_vec();
    let l3 = l3_offset(&f);
    match f[l3] >> 4 {
        4 => {
            let ihl = usize::from(f[l3] & 0x0f) * 4;
            let total = (len - l3) as u16;
            f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            f[l3 + 10..l3 + 12].fill(0);
            let c = checksum::of(&f[l3..l3 + ihl]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        6 => {
            let payload = (len - l3 - 40) as u16;
            f[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        }
        _ => {}
    }
    f
}

/// Byte offset of the IP header, for tests that corrupt header fields in place.
pub fn ip_offset(frame: &[u8]) -> usize {
    l3_offset(frame)
}
