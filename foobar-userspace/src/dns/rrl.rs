//! Response rate limiting (RRL), as the Vixie–Schryver design and NSD/Knot do it: one bucket
//! per (client prefix, kind of answer), so a flood of one answer at a spoofed victim's /24 is
//! limited while other answers to that prefix are not; over the limit, every `slip`-th answer
//! goes out empty and truncated, so a real resolver sharing the prefix retries over TCP
//! (which a spoofer cannot) instead of being silenced.
//!
//! The bucket is a generic cell rate algorithm timestamp, as the SYN limiter uses. When the
//! table is full, buckets whose timestamp has passed (indistinguishable from fresh ones) are
//! swept out; the table is never reset wholesale, which would hand a flood a fresh burst.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher, RandomState},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use foobar_common::dns::RrlBucket;
pub use foobar_common::dns::Verdict;

/// Most buckets tracked at once.
const MAX_TRACKED: usize = 65_536;

/// The kind of an answer, as RRL buckets them: positive answers (and NODATA) by name and
/// type, NXDOMAIN all together (random names must share one bucket), errors all together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Name(u64),
    NxDomain,
    Error,
}

pub struct Rrl {
    interval_ns: u64,
    tolerance_ns: u64,
    slip: u32,
    epoch: Instant,
    names: RandomState,
    buckets: HashMap<(IpAddr, Kind), RrlBucket>,
}

impl Rrl {
    /// `per_second` answers per bucket (bursts of the same size); `per_second` must be > 0.
    pub fn new(per_second: u32, slip: u32) -> Rrl {
        let interval_ns = 1_000_000_000 / u64::from(per_second.max(1));
        Rrl {
            interval_ns,
            tolerance_ns: interval_ns * u64::from(per_second.saturating_sub(1)),
            slip,
            epoch: Instant::now(),
            names: RandomState::new(),
            buckets: HashMap::new(),
        }
    }

    /// The kind of a positive answer for `name` (any case) and `qtype`.
    pub fn name_kind(&self, name: &[u8], qtype: u16) -> Kind {
        let mut h = self.names.build_hasher();
        name.to_ascii_lowercase().hash(&mut h);
        qtype.hash(&mut h);
        Kind::Name(h.finish())
    }

    /// Counts one answer of `kind` to `client` and says whether it goes out.
    pub fn decide(&mut self, client: IpAddr, kind: Kind) -> Verdict {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.decide_at(client, kind, now)
    }

    fn decide_at(&mut self, client: IpAddr, kind: Kind, now: u64) -> Verdict {
        let key = (prefix(client), kind);
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&key) {
            self.buckets.retain(|_, b| b.tat_ns > now);
            if self.buckets.len() >= MAX_TRACKED {
                // Every tracked bucket is over its limit right now: answer untracked ones
                // rather than silence clients the table has no room for.
                return Verdict::Answer;
            }
        }
        let bucket = self.buckets.entry(key).or_default();
        bucket.judge(now, self.interval_ns, self.tolerance_ns, self.slip)
    }
}

/// The prefix a client is limited by: /24 for IPv4, /56 for IPv6 (attackers rotate addresses
/// within their block).
fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & 0xffff_ff00).into(),
        IpAddr::V6(a) => Ipv6Addr::from(u128::from(a) & !((1u128 << 72) - 1)).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    #[test]
    fn over_the_limit_every_slip_th_answer_is_truncated() {
        let mut rrl = Rrl::new(5, 2);
        let www = rrl.name_kind(b"www.foobar.com", 1);
        let verdicts: Vec<_> = (0..15).map(|i| rrl.decide_at(v4(i), www, 1_000)).collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Answer), "{verdicts:?}");
        let slipped = verdicts[5..].iter().filter(|v| **v == Verdict::Slip).count();
        let dropped = verdicts[5..].iter().filter(|v| **v == Verdict::Drop).count();
        assert_eq!((slipped, dropped), (5, 5), "{verdicts:?}");
        let mut silent = Rrl::new(5, 0);
        assert!((0..15).all(|i| silent.decide_at(v4(i), www, 1_000) != Verdict::Slip));
    }

    #[test]
    fn buckets_are_per_prefix_and_kind() {
        let mut rrl = Rrl::new(2, 2);
        let www = rrl.name_kind(b"www.foobar.com", 1);
        for i in 0..10 {
            rrl.decide_at(v4(i), www, 1_000);
        }
        assert_ne!(rrl.decide_at(v4(7), www, 1_000), Verdict::Answer, "www to the flooded /24 is limited");
        let db = rrl.name_kind(b"db-read.foobar.com", 1);
        assert_eq!(rrl.decide_at(v4(7), db, 1_000), Verdict::Answer, "another name to the same /24");
        assert_eq!(rrl.decide_at(IpAddr::from([203, 0, 113, 7]), www, 1_000), Verdict::Answer, "another /24");
        assert_eq!(rrl.name_kind(b"WWW.foobar.COM", 1), www, "names are compared without case");
        assert_ne!(rrl.name_kind(b"www.foobar.com", 28), www, "the type is part of the kind");
    }

    #[test]
    fn a_full_table_keeps_the_buckets_that_are_limiting() {
        let mut rrl = Rrl::new(1, 0);
        let www = rrl.name_kind(b"www.foobar.com", 1);
        // A table full of buckets that answered once at 0 (free again after a second)...
        for i in 0..MAX_TRACKED as u32 - 1 {
            rrl.decide_at(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), Kind::Error, 0);
        }
        // ...and one limiting at 0.5 s (until 1.5 s).
        rrl.decide_at(v4(1), www, 500_000_000);
        assert_eq!(rrl.decide_at(v4(1), www, 500_000_000), Verdict::Drop);
        // A new bucket at 1.2 s makes room by sweeping the free ones only.
        assert_eq!(rrl.decide_at(v4(1), Kind::NxDomain, 1_200_000_000), Verdict::Answer);
        assert_eq!(rrl.buckets.len(), 2);
        assert_eq!(rrl.decide_at(v4(1), www, 1_200_000_000), Verdict::Drop, "the limiting bucket was reset");
    }
}
