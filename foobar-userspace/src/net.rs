//! Network values shared by the config and the data plane: CIDR prefixes and the
//! four-word address form the XDP maps use.

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, de};

/// An address prefix such as `192.0.2.0/24` or `2001:db8::/32`; a bare address is a host prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a text is not a CIDR prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not an IP address or CIDR (e.g. 192.0.2.0/24)")]
    NotAnAddress(String),
    #[error("`{text}`: prefix length must be 0..={max}")]
    PrefixLength { text: String, max: u8 },
    #[error("`{text}` has host bits set past /{prefix}")]
    HostBits { text: String, prefix: u8 },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::NotAnAddress(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::PrefixLength { text: s.to_owned(), max })?,
        };
        let cidr = Cidr { addr, prefix };
        if !cidr.contains(addr) || host_bits_set(addr, prefix) {
            return Err(CidrError::HostBits { text: s.to_owned(), prefix });
        }
        Ok(cidr)
    }
}

fn host_bits_set(addr: IpAddr, prefix: u8) -> bool {
    match addr {
        IpAddr::V4(a) => u32::from(a) & !u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0) != 0,
        IpAddr::V6(a) => u128::from(a) & !u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0) != 0,
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `ip` as the data plane's four raw words (network byte order in memory; IPv4 in word 0).
pub fn words(ip: IpAddr) -> [u32; 4] {
    match ip {
        IpAddr::V4(a) => [u32::from_ne_bytes(a.octets()), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        for (text, ok) in [
            ("192.0.2.0/24", true),
            ("192.0.2.66", true),
            ("2001:db8::/32", true),
            ("192.0.2.1/24", false),
            ("192.0.2.0/33", false),
            ("example.com", false),
            ("::/0", true),
        ] {
            assert_eq!(text.parse::<Cidr>().is_ok(), ok, "{text}");
        }
        let net: Cidr = "198.51.100.0/24".parse().expect("cidr");
        assert!(net.contains("198.51.100.31".parse().expect("ip")));
        assert!(!net.contains("192.0.2.31".parse().expect("ip")));
    }

    #[test]
    fn words_keep_network_order_in_memory() {
        let w = words("192.0.2.10".parse().expect("ip"));
        assert_eq!(w[0].to_ne_bytes(), [192, 0, 2, 10]);
        let w = words("2001:db8::1".parse().expect("ip"));
        assert_eq!(w[0].to_ne_bytes(), [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(w[3].to_ne_bytes(), [0, 0, 0, 1]);
    }
}
