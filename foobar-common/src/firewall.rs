//! The firewall's maps and the pure decisions the kernel makes with them.
//!
//! Allow rules live in an LPM trie whose key data is `protocol ‖ destination port ‖
//! destination address`, so one longest-prefix lookup finds the rules for a packet's
//! protocol, port and destination; rules that allow every port are stored under port 0 and
//! found by a second lookup. Each entry holds up to [`RULES_PER_KEY`] rules that differ by
//! source prefix. Userspace copies the rules of shorter covering destination prefixes into
//! longer ones, so the longest match alone always carries every rule that applies.

use bytemuck::{Pod, Zeroable};

use crate::addr::prefix_match;

pub const DENY_V4_MAP: &str = "FW_DENY_V4";
pub const DENY_V6_MAP: &str = "FW_DENY_V6";
pub const DENY_V4_FILTER_MAP: &str = "FW_DENY_V4_FILTER";
pub const ALLOW_V4_MAP: &str = "FW_ALLOW_V4";
pub const ALLOW_V6_MAP: &str = "FW_ALLOW_V6";
pub const SETTINGS_MAP: &str = "FW_SETTINGS";
pub const RULE_HITS_MAP: &str = "FW_RULE_HITS";
pub const SYN_TAT_MAP: &str = "FW_SYN_TAT";

/// Most allow rules (and so per-rule counters).
pub const MAX_RULES: u32 = 1024;
/// Most rules sharing one protocol/port/destination key (differing by source).
pub const RULES_PER_KEY: usize = 4;
/// Capacity of each deny trie, unless the config's `[capacity]` says otherwise.
pub const DEFAULT_DENY_ENTRIES: u32 = 262_144;
/// Words of the IPv4 deny filter: two bits for each of the 2^24 /24 networks, 32 networks a
/// word (4 MiB, whatever the number of entries).
///
/// The low bit ([`DENY_REACHES`]) is set where some deny prefix reaches into that /24 (covers
/// it or lies inside it): a clear bit proves the source is not denied, and the kernel skips
/// the trie lookup, a helper call and a trie walk even for a miss. The high bit ([`DENY_COVERS`]) is
/// set where a prefix covers the whole /24 (a /24 or shorter): it proves the source denied, so
/// a flood from a denied network is dropped without the trie as well. The trie stays the
/// authority for everything in between (a /24 that holds longer prefixes).
pub const DENY_FILTER_WORDS: u32 = 1 << 19;
/// A /24's filter bit: some deny prefix reaches into it.
pub const DENY_REACHES: u64 = 1;
/// A /24's filter bit: a deny prefix covers all of it.
pub const DENY_COVERS: u64 = 2;

/// The deny-filter word of an IPv4 address (a raw word, as packets carry it), and the shift
/// that brings its /24's two bits to the bottom.
#[inline(always)]
pub fn deny_filter_slot(addr: u32) -> (u32, u32) {
    let net24 = u32::from_be(addr) >> 8;
    (net24 >> 5, (net24 & 31) * 2)
}

/// Capacity of each allow trie.
pub const ALLOW_MAX_ENTRIES: u32 = 16_384;
/// Sources whose SYN rate is tracked at once (least recently seen are evicted).
pub const SYN_TRACKED_SOURCES: u32 = 131_072;
/// Bits of allow-key data before the address: protocol (8) and port (16).
pub const ALLOW_FIXED_BITS: u32 = 24;

/// Allow-trie key data for IPv4: protocol, port (big-endian; 0 = any), address, padding.
pub type AllowDataV4 = [u8; 8];
/// Allow-trie key data for IPv6: protocol, port, address, padding.
pub type AllowDataV6 = [u8; 20];

#[inline(always)]
pub fn allow_data_v4(protocol: u8, port: u16, dst: u32) -> AllowDataV4 {
    let p = port.to_be_bytes();
    let a = dst.to_ne_bytes();
    [protocol, p[0], p[1], a[0], a[1], a[2], a[3], 0]
}

#[inline(always)]
pub fn allow_data_v6(protocol: u8, port: u16, dst: &[u32; 4]) -> AllowDataV6 {
    let p = port.to_be_bytes();
    let mut d = [0u8; 20];
    d[0] = protocol;
    d[1] = p[0];
    d[2] = p[1];
    let mut i = 0;
    while i < 4 {
        let w = dst[i].to_ne_bytes();
        d[3 + 4 * i] = w[0];
        d[4 + 4 * i] = w[1];
        d[5 + 4 * i] = w[2];
        d[6 + 4 * i] = w[3];
        i += 1;
    }
    d
}

/// One allow rule as an allow-trie entry refers to it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RuleRef {
    /// Index of the rule (its per-rule counter slot).
    pub id: u32,
    /// Source prefix length the rule requires; 0 allows any source.
    pub src_prefix_len: u32,
    pub src: [u32; 4],
}

/// The rules stored under one allow-trie key, in config order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RuleSet {
    pub len: u32,
    pub rules: [RuleRef; RULES_PER_KEY],
}

impl RuleSet {
    /// The first rule admitting source `src`, if any.
    #[inline(always)]
    pub fn matching(&self, src: &[u32; 4]) -> Option<u32> {
        for i in 0..RULES_PER_KEY {
            if i as u32 >= self.len {
                break;
            }
            let r = &self.rules[i];
            if prefix_match(src, &r.src, r.src_prefix_len) {
                return Some(r.id);
            }
        }
        None
    }
}

/// Firewall-wide settings (a one-entry array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FirewallSettings {
    /// 1: drop what no rule allows; 0: accept it (still counted).
    pub default_drop: u64,
    /// Nanoseconds between SYNs a source (an IPv4 address, an IPv6 /64) earns (1 s / rate);
    /// 0 turns the limit off.
    pub syn_interval_ns: u64,
    /// How far ahead of schedule a source may run: (burst − 1) × interval.
    pub syn_tolerance_ns: u64,
    /// The same for all the sources of one IPv4 /24 together (burst: one second's worth).
    pub net_interval_ns: u64,
    pub net_tolerance_ns: u64,
}

impl FirewallSettings {
    /// Settings for a limit of `rate` new connections per second per source with bursts of
    /// `burst`, and of `net_rate` per IPv4 /24.
    pub fn with_syn_limit(default_drop: bool, rate: u32, burst: u32, net_rate: u32) -> Self {
        let interval = |rate: u32| if rate == 0 { 0 } else { 1_000_000_000 / u64::from(rate) };
        FirewallSettings {
            default_drop: u64::from(default_drop),
            syn_interval_ns: interval(rate),
            syn_tolerance_ns: interval(rate) * u64::from(burst.max(1) - 1),
            net_interval_ns: interval(net_rate),
            net_tolerance_ns: interval(net_rate) * u64::from(net_rate.max(1) - 1),
        }
    }
}

/// Key of the SYN limiter: a source (an IPv4 address, an IPv6 /64: one host's to spread over)
/// or an IPv4 /24, told apart by `scope` (its prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceKey {
    pub addr: [u32; 4],
    pub scope: u32,
}

impl SourceKey {
    /// The source `src` (raw words) counts as: its IPv4 address, or its IPv6 /64.
    #[inline(always)]
    pub fn source(src: &[u32; 4], v4: bool) -> SourceKey {
        if v4 {
            SourceKey { addr: [src[0], 0, 0, 0], scope: 32 }
        } else {
            SourceKey { addr: [src[0], src[1], 0, 0], scope: 64 }
        }
    }

    /// The IPv4 /24 `src` is in.
    #[inline(always)]
    pub fn net24(src: &[u32; 4]) -> SourceKey {
        SourceKey { addr: [src[0] & u32::from_ne_bytes([0xff, 0xff, 0xff, 0]), 0, 0, 0], scope: 24 }
    }
}

/// The generic cell rate algorithm: a token bucket kept as one timestamp.
///
/// `tat` is the source's theoretical arrival time. A packet at `now` conforms when it is no
/// more than `tolerance` ahead of schedule; then the new TAT is returned for a compare-and-swap.
/// One word of state means concurrent CPUs can update it without a lock.
#[inline(always)]
pub fn gcra(tat: u64, now: u64, interval: u64, tolerance: u64) -> Option<u64> {
    let start = if tat > now { tat } else { now };
    if start - now > tolerance {
        return None;
    }
    Some(start + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let s = FirewallSettings::with_syn_limit(true, 10, 5, 0);
        let (interval, tol) = (s.syn_interval_ns, s.syn_tolerance_ns);
        let mut tat = 0;
        let now = 1_000_000_000;
        let mut allowed = 0;
        for _ in 0..20 {
            if let Some(t) = gcra(tat, now, interval, tol) {
                tat = t;
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "burst");
        assert!(gcra(tat, now + interval / 2, interval, tol).is_none());
        assert!(gcra(tat, now + interval, interval, tol).is_some(), "one token per interval");
        // Over one simulated second of a 1000/s flood, 10/s (+ burst) get through.
        let mut tat = 0;
        let mut allowed = 0;
        for i in 0..1000u64 {
            if let Some(t) = gcra(tat, now + i * 1_000_000, interval, tol) {
                tat = t;
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5 + 9);
    }

    #[test]
    fn sources_are_addresses_and_v6_sixty_fours_and_nets_are_v4_slash_24s() {
        let v4 = |a: [u8; 4]| [u32::from_ne_bytes(a), 0, 0, 0];
        let (a, b) = (v4([203, 0, 113, 5]), v4([203, 0, 113, 77]));
        assert_ne!(SourceKey::source(&a, true), SourceKey::source(&b, true));
        assert_eq!(SourceKey::net24(&a), SourceKey::net24(&b));
        assert_ne!(SourceKey::net24(&a), SourceKey::net24(&v4([203, 0, 114, 5])));
        assert_ne!(
            SourceKey::net24(&v4([203, 0, 113, 0])),
            SourceKey::source(&v4([203, 0, 113, 0]), true),
            "scopes apart"
        );
        // Two addresses of one IPv6 /64 are one source; the next /64 is another.
        let (x, y, z) = ([1, 2, 3, 4], [1, 2, 9, 9], [1, 3, 3, 4]);
        assert_eq!(SourceKey::source(&x, false), SourceKey::source(&y, false));
        assert_ne!(SourceKey::source(&x, false), SourceKey::source(&z, false));
        let s = FirewallSettings::with_syn_limit(false, 200, 200, 5000);
        assert_eq!((s.net_interval_ns, s.net_tolerance_ns), (200_000, 200_000 * 4999), "a second's burst");
    }

    #[test]
    fn rule_sets_match_by_source() {
        let net = [u32::from_ne_bytes([203, 0, 113, 0]), 0, 0, 0];
        let mut set = RuleSet { len: 2, ..RuleSet::default() };
        set.rules[0] = RuleRef { id: 7, src_prefix_len: 24, src: net };
        set.rules[1] = RuleRef { id: 9, src_prefix_len: 0, src: [0; 4] };
        assert_eq!(set.matching(&[u32::from_ne_bytes([203, 0, 113, 5]), 0, 0, 0]), Some(7));
        assert_eq!(set.matching(&[u32::from_ne_bytes([192, 0, 2, 5]), 0, 0, 0]), Some(9));
        set.len = 1;
        assert_eq!(set.matching(&[u32::from_ne_bytes([192, 0, 2, 5]), 0, 0, 0]), None);
    }
}
