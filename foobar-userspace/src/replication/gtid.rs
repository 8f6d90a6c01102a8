//! MariaDB GTID positions: one `domain-server-sequence` per replication domain, as
//! `@@gtid_binlog_pos` and `Gtid_IO_Pos` spell them ("0-1-100,1-3-7"). Failover compares them
//! to pick the replica furthest along, and to tell whether a returning server holds
//! transactions the new primary never had.

use std::{collections::BTreeMap, fmt, str::FromStr};

/// A GTID position: per domain, the server id and sequence number of the last transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position(BTreeMap<u32, (u32, u64)>);

/// Text that is not a GTID position.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a GTID position (domain-server-sequence, comma-separated)")]
pub struct BadPosition(pub String);

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(text: &str) -> Result<Position, BadPosition> {
        let bad = || BadPosition(text.to_owned());
        let mut domains = BTreeMap::new();
        for gtid in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let mut parts = gtid.split('-');
            let (Some(d), Some(s), Some(n), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            let (d, s, n) =
                (d.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
            if domains.insert(d, (s, n)).is_some() {
                return Err(bad());
            }
        }
        Ok(Position(domains))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (d, (s, n)) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

impl Position {
    /// The sequence number reached in `domain` (0: nothing from it).
    fn seq(&self, domain: u32) -> u64 {
        self.0.get(&domain).map_or(0, |(_, n)| *n)
    }

    /// Whether this position is at or behind `other` in every domain: within one replication
    /// history, everything a server at `self` applied, a server at `other` applied too.
    pub fn within(&self, other: &Position) -> bool {
        self.0.keys().all(|d| self.seq(*d) <= other.seq(*d))
    }

    /// The domains where this position is ahead of `other`, as `self`'s GTIDs there: what a
    /// server at `self` has that `other` lacks.
    pub fn ahead_of(&self, other: &Position) -> Position {
        Position(self.0.iter().filter(|(d, (_, n))| *n > other.seq(**d)).map(|(d, v)| (*d, *v)).collect())
    }

    /// Orders positions of replicas of one primary: the one that received more comes later.
    pub fn progress(&self) -> u64 {
        self.0.values().map(|(_, n)| *n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Position {
        text.parse().expect("position")
    }

    #[test]
    fn positions_parse_print_and_refuse_junk() {
        assert_eq!(p("0-1-100,1-3-7").to_string(), "0-1-100,1-3-7");
        assert_eq!(p(" 1-3-7 , 0-1-100 ").to_string(), "0-1-100,1-3-7", "domain order");
        assert!(p("").is_empty());
        for junk in ["0-1", "0-1-x", "0-1-2-3", "0-1-2,0-1-3", "abc"] {
            assert_eq!(junk.parse::<Position>(), Err(BadPosition(junk.to_owned())), "{junk}");
        }
    }

    #[test]
    fn within_and_ahead_of_compare_domain_by_domain() {
        assert!(p("0-1-100").within(&p("0-1-100")));
        assert!(p("0-1-99").within(&p("0-2-150")), "the new primary went on writing");
        assert!(!p("0-1-101").within(&p("0-1-100")), "one transaction the other never got");
        assert!(!p("1-1-1").within(&p("0-1-100")), "a domain the other lacks");
        assert!(p("").within(&p("0-1-1")));
        assert_eq!(p("0-1-101,1-1-4").ahead_of(&p("0-2-100,1-2-9")).to_string(), "0-1-101");
        assert!(p("0-1-120").progress() > p("0-1-119").progress());
    }
}
