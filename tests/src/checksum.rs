//! The Internet checksum (RFC 1071) and the transport pseudo-headers it covers.

use std::net::IpAddr;

/// One's-complement sum of `data` folded to 16 bits, not yet inverted.
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds and inverts an accumulated sum into the value written in a header.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Checksum of a plain byte range (IPv4 header, ICMPv4 message).
pub fn of(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// Checksum of a transport segment including the IPv4 or IPv6 pseudo-header.
pub fn transport(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
            acc = sum(&[0, protocol], acc);
            acc = sum(&(segment.len() as u16).to_be_bytes(), acc);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
            acc = sum(&(segment.len() as u32).to_be_bytes(), acc);
            acc = sum(&[0, 0, 0, protocol], acc);
        }
        _ => panic!("pseudo-header needs two addresses of one family"),
    }
    finish(sum(segment, acc))
}

/// True when a header or segment whose checksum field is filled in sums to zero.
pub fn verifies(data: &[u8]) -> bool {
    of(data) == 0
}
