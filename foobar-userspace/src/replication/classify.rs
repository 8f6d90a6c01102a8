//! What a check saw, turned into a state with its reason, and the states turned into what DNS
//! answers. Pure functions, so every rule is tested without a database.

use std::{collections::VecDeque, net::IpAddr, net::SocketAddr, time::Duration};

/// What one check of one server saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    pub server_id: u32,
    pub read_only: bool,
    /// Written (primary) or applied (replica) GTID position.
    pub gtid: Option<String>,
    /// `SHOW REPLICA STATUS`, when the server replicates from somewhere.
    pub replica: Option<ReplicaSeen>,
    /// now − the heartbeat row this server holds, when this round wrote one on the primary.
    pub heartbeat_lag: Option<Duration>,
    /// `@@gtid_binlog_pos`: every transaction in its binary log (MariaDB).
    pub binlog_gtid: Option<String>,
    /// `Rpl_semi_sync_master_status` and `_clients`: whether each commit waits for a
    /// replica's acknowledgement (MariaDB with semi-synchronous replication on).
    pub semi_sync: Option<(bool, u64)>,
}

impl Seen {
    /// How far a replica has received from its primary: `Gtid_IO_Pos`, else what it applied.
    pub fn received(&self) -> Option<super::gtid::Position> {
        let io = self.replica.as_ref().and_then(|r| r.io_gtid.as_deref()).filter(|g| !g.is_empty());
        io.or(self.gtid.as_deref()).and_then(|g| g.parse().ok())
    }
}

/// The replica threads as `SHOW REPLICA STATUS` reports them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSeen {
    /// `Master_Host:Master_Port`.
    pub source: String,
    /// Yes | No | Connecting
    pub io: String,
    pub sql: String,
    /// The last IO or SQL error, as "errno: message".
    pub last_error: Option<String>,
    pub seconds_behind: Option<u64>,
    /// `Gtid_IO_Pos`: the last transaction the IO thread received (MariaDB).
    pub io_gtid: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not checked yet (DNS answers the configured addresses meanwhile).
    Unknown,
    /// Primary: reachable and writable.
    Up,
    /// Primary: reachable but `read_only` (misconfigured: writes will fail).
    ReadOnly,
    /// Replica: both threads running, lag within `max_lag`, replicating from the primary.
    Healthy,
    /// Replica: further behind than `max_lag`.
    Lagging,
    /// Replica: a thread stopped or erroring, not replicating, or replicating from elsewhere.
    Broken,
    /// The monitor could not check it (down, refused, timed out, or refused the monitor).
    Unreachable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::ReadOnly => "read-only",
            State::Healthy => "healthy",
            State::Lagging => "lagging",
            State::Broken => "broken",
            State::Unreachable => "unreachable",
        }
    }

    /// Every state a server in `role` can be in (one metric series each).
    pub fn all(role: Role) -> &'static [State] {
        match role {
            Role::Primary => &[State::Unknown, State::Up, State::ReadOnly, State::Unreachable],
            Role::Replica => &[State::Unknown, State::Healthy, State::Lagging, State::Broken, State::Unreachable],
        }
    }
}

/// A state, why, and anything wrong with where the server sits in the topology.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub state: State,
    pub reason: String,
    pub topology: Option<String>,
}

/// The configured primary: writable, read-only, and whether it is itself a replica.
pub fn primary(seen: &Seen) -> Verdict {
    let topology = seen.replica.as_ref().map(|r| format!("the primary is itself a replica of {}", r.source));
    if seen.read_only {
        Verdict {
            state: State::ReadOnly,
            reason: "read_only is ON: writes through db-write will fail".to_owned(),
            topology,
        }
    } else {
        Verdict { state: State::Up, reason: "writable".to_owned(), topology }
    }
}

/// A configured replica of `primary` (named `primary_name`).
pub fn replica(seen: &Seen, primary: SocketAddr, primary_name: &str, max_lag: Duration) -> Verdict {
    let broken = |reason: String, topology: Option<String>| Verdict { state: State::Broken, reason, topology };
    let Some(r) = &seen.replica else {
        return broken("not replicating: SHOW REPLICA STATUS is empty".to_owned(), None);
    };
    if r.source.parse::<SocketAddr>().ok() != Some(primary) {
        let why = format!("replicates from {}, not from the configured primary {primary_name} ({primary})", r.source);
        return broken(why.clone(), Some(why));
    }
    let error = r.last_error.as_ref().map(|e| format!(" (last error {e})")).unwrap_or_default();
    if r.io != "Yes" {
        return broken(format!("IO thread {}{error}", thread_word(&r.io)), None);
    }
    if r.sql != "Yes" {
        return broken(format!("SQL thread {}{error}", thread_word(&r.sql)), None);
    }
    let (lag, how) = match (seen.heartbeat_lag, r.seconds_behind) {
        (Some(l), _) => (l, "heartbeat"),
        (None, Some(s)) => (Duration::from_secs(s), "Seconds_Behind_Master"),
        (None, None) => {
            return Verdict { state: State::Healthy, reason: "replicating (lag unknown)".to_owned(), topology: None };
        }
    };
    let shown = format!("lag {:.3}s by {how}", lag.as_secs_f64());
    if lag > max_lag {
        Verdict {
            state: State::Lagging,
            reason: format!("{shown} > max_lag {}s", max_lag.as_secs_f64()),
            topology: None,
        }
    } else {
        Verdict { state: State::Healthy, reason: shown, topology: None }
    }
}

fn thread_word(running: &str) -> String {
    match running {
        "No" => "stopped".to_owned(),
        other => format!("not running ({other})"),
    }
}

/// A replica's lag from the heartbeat row it holds (`held`, read at `now`), given the rows the
/// monitor `written` (oldest first, microseconds): the age of the oldest row it has not applied
/// yet. Rows are written once per interval, so `now − held` alone would overstate a replica
/// 4.0 s behind as 5 s whenever its apply lands just after the read; the missing row's age is
/// the lag to within the write spacing, from below. A replica holding the newest row has
/// lag `now − held`: the replication latency. Rows older than the history: `now − held`.
pub fn heartbeat_lag(held: i64, now: i64, written: &VecDeque<i64>) -> Duration {
    let oldest_missing = written.iter().copied().find(|w| *w > held);
    let since = match oldest_missing {
        Some(w) if written.front().is_some_and(|first| *first <= held) => w,
        _ => held,
    };
    Duration::from_micros(now.saturating_sub(since).max(0).unsigned_abs())
}

/// What `replication` DNS records answer: `db-write` the primary while the monitor reaches it;
/// `db-read` the healthy replicas, or the primary when none is. Servers not checked yet count
/// as fine, as backends start healthy, so a restart does not blank the names.
pub fn answers(primary: (IpAddr, State), replicas: &[(IpAddr, State)]) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let write: Vec<IpAddr> = match primary.1 {
        State::Unreachable => Vec::new(),
        _ => vec![primary.0],
    };
    let read: Vec<IpAddr> =
        replicas.iter().filter(|(_, s)| matches!(s, State::Healthy | State::Unknown)).map(|(ip, _)| *ip).collect();
    let read = if read.is_empty() { write.clone() } else { read };
    (write, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "198.51.100.31:3306";

    fn running(lag: Option<u64>) -> Seen {
        Seen {
            server_id: 2,
            replica: Some(ReplicaSeen {
                source: PRIMARY.to_owned(),
                io: "Yes".to_owned(),
                sql: "Yes".to_owned(),
                last_error: None,
                seconds_behind: lag,
                io_gtid: None,
            }),
            ..Seen::default()
        }
    }

    fn judge(seen: &Seen) -> Verdict {
        replica(seen, PRIMARY.parse().expect("addr"), "db1", Duration::from_secs(5))
    }

    #[test]
    fn replica_states() {
        let mut hb = running(Some(0));
        hb.heartbeat_lag = Some(Duration::from_millis(12));
        assert_eq!(judge(&hb).state, State::Healthy);
        assert_eq!(judge(&hb).reason, "lag 0.012s by heartbeat");

        // The heartbeat wins over Seconds_Behind_Master, which lies in both directions.
        let mut slow = running(Some(0));
        slow.heartbeat_lag = Some(Duration::from_millis(6100));
        assert_eq!(judge(&slow).state, State::Lagging);
        assert_eq!(judge(&slow).reason, "lag 6.100s by heartbeat > max_lag 5s");
        assert_eq!(judge(&running(Some(9))).state, State::Lagging, "no heartbeat: Seconds_Behind_Master");
        assert_eq!(judge(&running(Some(5))).state, State::Healthy, "max_lag itself is still fine");
        assert_eq!(judge(&running(None)).state, State::Healthy);

        let mut stopped = running(None);
        if let Some(r) = stopped.replica.as_mut() {
            r.sql = "No".to_owned();
        }
        assert_eq!(
            judge(&stopped),
            Verdict { state: State::Broken, reason: "SQL thread stopped".to_owned(), topology: None }
        );
        let mut erroring = running(None);
        if let Some(r) = erroring.replica.as_mut() {
            r.io = "Connecting".to_owned();
            r.last_error = Some("2003: error connecting to master".to_owned());
        }
        assert_eq!(
            judge(&erroring).reason,
            "IO thread not running (Connecting) (last error 2003: error connecting to master)"
        );
        assert_eq!(judge(&Seen::default()).state, State::Broken, "not a replica at all");
    }

    #[test]
    fn a_replica_of_another_server_is_reported() {
        let mut elsewhere = running(Some(0));
        if let Some(r) = elsewhere.replica.as_mut() {
            r.source = "198.51.100.99:3306".to_owned();
        }
        let v = judge(&elsewhere);
        assert_eq!(v.state, State::Broken);
        assert_eq!(
            v.topology.as_deref(),
            Some("replicates from 198.51.100.99:3306, not from the configured primary db1 (198.51.100.31:3306)")
        );
    }

    #[test]
    fn primary_states() {
        assert_eq!(primary(&Seen::default()).state, State::Up);
        let ro = Seen { read_only: true, ..Seen::default() };
        assert_eq!(primary(&ro).state, State::ReadOnly);
        let chained = running(Some(0));
        assert_eq!(
            primary(&chained).topology.as_deref(),
            Some("the primary is itself a replica of 198.51.100.31:3306")
        );
    }

    #[test]
    fn heartbeat_lag_is_the_age_of_the_oldest_missing_row() {
        let s = 1_000_000;
        let written: VecDeque<i64> = (0..10).map(|i| 100 * s + i * s).collect(); // 100 s .. 109 s
        let lag = |held, now| heartbeat_lag(held, now, &written).as_secs_f64();
        assert_eq!(lag(109 * s, 109 * s + 2_000), 0.002, "caught up: the latency");
        assert_eq!(lag(104 * s, 109 * s + 2_000), 4.002, "missing 105 s..: behind by its age");
        assert_eq!(lag(50 * s, 109 * s), 59.0, "older than the history: now - held");
        assert_eq!(heartbeat_lag(7, 9, &VecDeque::new()).as_micros(), 2);
    }

    #[test]
    fn dns_follows_the_states() {
        let p: IpAddr = "198.51.100.31".parse().expect("ip");
        let r1: IpAddr = "198.51.100.32".parse().expect("ip");
        let r2: IpAddr = "198.51.100.33".parse().expect("ip");
        let ok = (p, State::Up);
        assert_eq!(answers(ok, &[(r1, State::Healthy), (r2, State::Lagging)]), (vec![p], vec![r1]));
        assert_eq!(answers(ok, &[(r1, State::Broken), (r2, State::Unreachable)]), (vec![p], vec![p]));
        assert_eq!(answers((p, State::Unknown), &[(r1, State::Unknown)]), (vec![p], vec![r1]));
        assert_eq!(answers((p, State::ReadOnly), &[]), (vec![p], vec![p]));
        assert_eq!(answers((p, State::Unreachable), &[(r1, State::Healthy)]), (vec![], vec![r1]));
        assert_eq!(answers((p, State::Unreachable), &[(r1, State::Broken)]), (vec![], vec![]));
    }
}
