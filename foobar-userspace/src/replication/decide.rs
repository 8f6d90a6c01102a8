//! What the monitor may do about the topology, decided from one round's observations: fail
//! over (and to whom), fence a writable server that is not the primary, rejoin a server as a
//! replica. Pure functions, so every refusal is tested without a database.

use std::net::SocketAddr;

use super::{classify::Seen, gtid::Position};

/// One server as this round saw it.
pub struct Observed<'a> {
    pub name: &'a str,
    pub addr: SocketAddr,
    /// `None`: the check did not reach it.
    pub seen: Option<&'a Seen>,
}

/// What to do about an unreachable primary.
#[derive(Debug, PartialEq, Eq)]
pub enum Failover {
    /// Not down long enough yet, or up.
    Wait,
    /// Down, but promoting would be unsafe or impossible: why.
    Refuse(String),
    /// Promote `servers[candidate]`, which has received up to `received`.
    Promote { candidate: usize, received: Position },
}

/// Decides a failover from `servers[primary]`, unreachable for `down_rounds` checks in a row,
/// after `after` such checks. MaxScale's "verify master failure": a replica whose IO thread
/// still runs still reaches the primary, so only the monitor lost it and nothing is promoted.
pub fn failover(primary: usize, down_rounds: u32, after: u32, servers: &[Observed<'_>]) -> Failover {
    let old = &servers[primary];
    if old.seen.is_some() || down_rounds < after {
        return Failover::Wait;
    }
    let replicas_of_old: Vec<(usize, &Seen)> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != primary)
        .filter_map(|(i, s)| s.seen.map(|seen| (i, seen)))
        .filter(|(_, seen)| {
            seen.replica.as_ref().is_some_and(|r| r.source.parse::<SocketAddr>().ok() == Some(old.addr))
        })
        .collect();
    if let Some((i, _)) = replicas_of_old.iter().find(|(_, seen)| seen.replica.as_ref().is_some_and(|r| r.io == "Yes"))
    {
        return Failover::Refuse(format!(
            "{} still replicates from {} (its IO thread runs): only foobar lost {}, so nothing is promoted",
            servers[*i].name, old.name, old.name
        ));
    }
    let received = |seen: &Seen| seen.received().unwrap_or_default();
    let best = replicas_of_old
        .iter()
        .filter(|(_, seen)| seen.replica.as_ref().is_some_and(|r| r.sql == "Yes"))
        .max_by_key(|(i, seen)| (received(seen).progress(), std::cmp::Reverse(*i)));
    match best {
        Some((candidate, seen)) => Failover::Promote { candidate: *candidate, received: received(seen) },
        None if replicas_of_old.is_empty() => {
            Failover::Refuse(format!("no reachable replica of {} to promote", old.name))
        }
        None => Failover::Refuse(format!(
            "no replica of {} applies what it received (every SQL thread is stopped)",
            old.name
        )),
    }
}

/// What to do with a reachable server that is not the primary.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejoin {
    /// It replicates from the primary already (healthy or not: that is the user's to fix).
    Replicating,
    /// Point it at the primary.
    Join,
    /// Leave it alone and tell a person why.
    Flag(String),
}

/// Whether `seen` (not the primary, reachable) can replicate from `primary` at `primary_addr`
/// when `promoted_at` is where the primary's history began (recorded at the failover or
/// switchover). A server with transactions beyond that point has errant GTIDs: joining would
/// diverge its data silently, so it is flagged instead.
pub fn rejoin(seen: &Seen, primary: &str, primary_addr: SocketAddr, promoted_at: Option<&Position>) -> Rejoin {
    if seen.replica.as_ref().is_some_and(|r| r.source.parse::<SocketAddr>().ok() == Some(primary_addr)) {
        return Rejoin::Replicating;
    }
    let Some(at) = promoted_at else {
        return Rejoin::Flag(format!(
            "does not replicate from {primary}, and foobar has no record of where {primary}'s history began: \
             join it by hand"
        ));
    };
    let Some(history) = seen.binlog_gtid.as_deref().and_then(|g| g.parse::<Position>().ok()) else {
        return Rejoin::Flag(format!("does not replicate from {primary}, and its GTID position cannot be read"));
    };
    if history.within(at) {
        Rejoin::Join
    } else {
        Rejoin::Flag(format!(
            "holds transactions {primary} never had ({}, beyond {at}, where {primary} became primary): \
             rejoining would diverge the data; compare them and rebuild it from {primary} by hand",
            history.ahead_of(at)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::classify::ReplicaSeen;

    const DB1: &str = "198.51.100.31:3306";

    fn replica_of(source: &str, io: &str, io_gtid: &str) -> Seen {
        Seen {
            replica: Some(ReplicaSeen {
                source: source.to_owned(),
                io: io.to_owned(),
                sql: "Yes".to_owned(),
                io_gtid: Some(io_gtid.to_owned()),
                ..ReplicaSeen::default()
            }),
            ..Seen::default()
        }
    }

    fn three<'a>(db2: Option<&'a Seen>, db3: Option<&'a Seen>) -> Vec<Observed<'a>> {
        let addr = |s: &str| s.parse().expect("addr");
        vec![
            Observed { name: "db1", addr: addr(DB1), seen: None },
            Observed { name: "db2", addr: addr("198.51.100.32:3306"), seen: db2 },
            Observed { name: "db3", addr: addr("198.51.100.33:3306"), seen: db3 },
        ]
    }

    #[test]
    fn failover_waits_then_promotes_the_replica_furthest_along() {
        let (behind, ahead) = (replica_of(DB1, "Connecting", "0-1-90"), replica_of(DB1, "Connecting", "0-1-95"));
        let servers = three(Some(&behind), Some(&ahead));
        assert_eq!(failover(0, 2, 3, &servers), Failover::Wait, "not down for long enough");
        assert_eq!(
            failover(0, 3, 3, &servers),
            Failover::Promote { candidate: 2, received: "0-1-95".parse().expect("p") }
        );
        let tie = three(Some(&ahead), Some(&ahead));
        assert!(matches!(failover(0, 3, 3, &tie), Failover::Promote { candidate: 1, .. }), "config order breaks ties");
    }

    #[test]
    fn a_partition_between_foobar_and_the_primary_alone_never_promotes() {
        let (still, lost) = (replica_of(DB1, "Yes", "0-1-95"), replica_of(DB1, "Connecting", "0-1-95"));
        match failover(0, 5, 3, &three(Some(&lost), Some(&still))) {
            Failover::Refuse(why) => assert_eq!(
                why,
                "db3 still replicates from db1 (its IO thread runs): only foobar lost db1, so nothing is promoted"
            ),
            other => panic!("{other:?}"),
        }
        match failover(0, 5, 3, &three(None, None)) {
            Failover::Refuse(why) => assert_eq!(why, "no reachable replica of db1 to promote"),
            other => panic!("{other:?}"),
        }
        let elsewhere = replica_of("198.51.100.99:3306", "Connecting", "0-1-95");
        assert!(matches!(failover(0, 5, 3, &three(Some(&elsewhere), None)), Failover::Refuse(_)));
    }

    #[test]
    fn a_returning_server_joins_only_without_errant_transactions() {
        let db2: SocketAddr = "198.51.100.32:3306".parse().expect("addr");
        let at: Position = "0-1-100".parse().expect("p");
        let old = |binlog: &str| Seen { binlog_gtid: Some(binlog.to_owned()), ..Seen::default() };
        assert_eq!(rejoin(&old("0-1-100"), "db2", db2, Some(&at)), Rejoin::Join);
        assert_eq!(rejoin(&old("0-1-97"), "db2", db2, Some(&at)), Rejoin::Join);
        match rejoin(&old("0-1-101"), "db2", db2, Some(&at)) {
            Rejoin::Flag(why) => {
                assert!(why.starts_with("holds transactions db2 never had (0-1-101, beyond 0-1-100"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(rejoin(&old("0-1-100"), "db2", db2, None), Rejoin::Flag(_)), "no record: a person decides");
        let replicating = replica_of("198.51.100.32:3306", "Yes", "0-2-4");
        assert_eq!(rejoin(&replicating, "db2", db2, None), Rejoin::Replicating);
    }
}
