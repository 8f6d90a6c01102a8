//! One monitor's life: the check rounds, and between them what the topology needs done:
//! failing over from a dead primary, fencing and rejoining a server that came back, and the
//! operator's switchovers. What it changes about the topology goes out with every report, for
//! the daemon to keep across restarts.

use std::{
    collections::VecDeque,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::{sync::mpsc, time::Instant};
use tracing::{info, warn};

use super::{
    Checked, Command, Report, Server, Settings, Topology, check,
    classify::{self, Role, Seen, State, Verdict},
    decide::{self, Failover, Observed, Rejoin},
    gtid::Position,
    observe::{Beat, Session},
    promote::Steps,
    status_of,
};
use crate::control::protocol::ReplicationStatus;

/// Heartbeat rows kept to measure lag against: an hour's worth at a 1 s interval.
const HEARTBEAT_HISTORY: usize = 3600;

/// What survives a monitor that panics and is started again: the topology and the counts.
#[derive(Debug, Default)]
pub struct Shared {
    pub topology: Topology,
    pub failovers: u64,
    pub switchovers: u64,
    /// The last move of the primary, told as a sentence.
    pub last_change: Option<String>,
}

pub(super) struct Monitor {
    s: Settings,
    shared: Arc<Mutex<Shared>>,
    /// Index of the current primary in `s.servers`.
    primary: usize,
    sessions: Vec<Session>,
    errors: Vec<u64>,
    last: Vec<State>,
    reasons: Vec<String>,
    last_beat: Vec<Option<String>>,
    written: VecDeque<i64>,
    /// Rounds in a row the primary was unreachable.
    down_rounds: u32,
    /// The primary as last reached: its semi-synchronous state and position, for saying
    /// what a failover kept.
    primary_seen: Option<Seen>,
    /// Why a failover is not happening now, while the primary is down, and whether it is
    /// refused (rather than waiting for more failed checks).
    failover_note: Option<(String, bool)>,
    /// Why the last failover attempt failed, told with every later refusal.
    failover_failed: Option<String>,
    /// Per server, why it is left out of the topology for a person to look at.
    flags: Vec<Option<String>>,
}

impl Monitor {
    pub(super) fn new(s: Settings, shared: Arc<Mutex<Shared>>) -> Monitor {
        let n = s.servers.len();
        let kept = lock(&shared).topology.primary.clone();
        let primary = kept.and_then(|name| s.servers.iter().position(|x| x.name == name)).unwrap_or(0);
        Monitor {
            s,
            shared,
            primary,
            sessions: (0..n).map(|_| Session::default()).collect(),
            errors: vec![0; n],
            last: vec![State::Unknown; n],
            reasons: vec![String::new(); n],
            last_beat: vec![None; n],
            written: VecDeque::with_capacity(HEARTBEAT_HISTORY),
            down_rounds: 0,
            primary_seen: None,
            failover_note: None,
            failover_failed: None,
            flags: vec![None; n],
        }
    }

    /// Rounds every interval, and the operator's commands between them, until the daemon goes.
    pub(super) async fn run(mut self, reports: mpsc::Sender<Report>, commands: &mut mpsc::Receiver<Command>) {
        let mut ticks = tokio::time::interval(self.s.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    // A round that moved the primary is followed by another at once, so DNS
                    // follows the move without waiting an interval.
                    loop {
                        let (report, moved) = self.round().await;
                        if reports.send(report).await.is_err() {
                            return;
                        }
                        if !moved {
                            break;
                        }
                    }
                }
                Some(command) = commands.recv() => match command {
                    Command::Switchover { to, reply } => {
                        let outcome = self.switchover(&to, &reports).await;
                        let _ = reply.send(outcome);
                    }
                },
            }
        }
    }

    fn role(&self, i: usize) -> Role {
        if i == self.primary { Role::Primary } else { Role::Replica }
    }

    /// Whether foobar manages the topology: it may fail over, or it has moved the primary.
    fn manages(&self) -> bool {
        self.s.auto_failover || lock(&self.shared).topology.primary.is_some()
    }

    /// Checks every server, acts on what it saw, and reports; true when the primary moved.
    async fn round(&mut self) -> (Report, bool) {
        let checked = self.check_all().await;
        let seen: Vec<Option<&Seen>> = checked.iter().map(|c| c.seen.as_ref().ok()).collect();
        if let Some(p) = seen[self.primary] {
            self.primary_seen = Some(p.clone());
        }
        let moved = self.act(&seen).await;
        let report = self.report(&checked);
        (report, moved)
    }

    async fn check_all(&mut self) -> Vec<Checked> {
        let s = &self.s;
        let p = self.primary;
        // The primary first: the replicas' heartbeat reads measure against its fresh write.
        let beat = if s.heartbeat_table.is_some() { Beat::Write } else { Beat::Skip };
        let primary = check(s, p, Role::Primary, &mut self.sessions[p], beat).await;
        let read = match primary.heartbeat {
            Some(h) => {
                if self.written.len() == HEARTBEAT_HISTORY {
                    self.written.pop_front();
                }
                self.written.push_back(h.ts);
                Beat::Read
            }
            None => Beat::Skip,
        };
        let replicas = self
            .sessions
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| *i != p)
            .map(|(i, session)| async move { (i, check(s, i, Role::Replica, session, read).await) });
        let rest = futures_util::future::join_all(replicas).await;
        let mut slots: Vec<Option<Checked>> = (0..s.servers.len()).map(|_| None).collect();
        slots[p] = Some(primary);
        for (i, c) in rest {
            slots[i] = Some(c);
        }
        let mut checked: Vec<Checked> = slots.into_iter().flatten().collect();
        for (i, c) in checked.iter_mut().enumerate() {
            if i == p {
                continue;
            }
            if let (Ok(seen), Some(h)) = (&mut c.seen, c.heartbeat) {
                seen.heartbeat_lag = Some(classify::heartbeat_lag(h.ts, h.at, &self.written));
            }
        }
        super::log_heartbeat_changes(s, &checked, &mut self.last_beat);
        checked
    }

    /// Fails over, fences and rejoins as this round's observations allow; true when the
    /// primary moved.
    async fn act(&mut self, seen: &[Option<&Seen>]) -> bool {
        if seen[self.primary].is_some() {
            self.down_rounds = 0;
            self.set_failover_note(None);
        } else {
            self.down_rounds += 1;
            if self.s.auto_failover && self.failover(seen).await {
                return true;
            }
        }
        if self.manages() {
            self.fence_and_rejoin(seen).await;
        }
        false
    }

    fn observed<'a>(&'a self, seen: &[Option<&'a Seen>]) -> Vec<Observed<'a>> {
        self.s.servers.iter().zip(seen).map(|(x, s)| Observed { name: &x.name, addr: x.addr, seen: *s }).collect()
    }

    fn steps(&self) -> Option<Steps<'_>> {
        Some(Steps {
            login: self.s.login(),
            replication: self.s.replication_login.as_ref()?,
            timeout: self.s.timeout,
            catch_up: self.s.catch_up,
        })
    }

    /// One failover decision; true when a replica was promoted.
    async fn failover(&mut self, seen: &[Option<&Seen>]) -> bool {
        let decision = decide::failover(self.primary, self.down_rounds, self.s.failover_after, &self.observed(seen));
        let (candidate, received) = match decision {
            Failover::Wait => {
                let (n, after) = (self.down_rounds, self.s.failover_after);
                let old = &self.s.servers[self.primary].name;
                self.set_failover_note(Some((
                    format!("{old} unreachable for {n} of {after} checks before failover"),
                    false,
                )));
                return false;
            }
            Failover::Refuse(why) => {
                let failed = self
                    .failover_failed
                    .as_ref()
                    .map(|f| format!(" (the last attempt failed: {f})"))
                    .unwrap_or_default();
                self.set_failover_note(Some((format!("failover refused: {why}{failed}"), true)));
                return false;
            }
            Failover::Promote { candidate, received } => (candidate, received),
        };
        let started = Instant::now();
        let old = self.primary;
        let others: Vec<&Server> = (0..self.s.servers.len())
            .filter(|i| *i != old && *i != candidate && seen[*i].is_some())
            .map(|i| &self.s.servers[i])
            .collect();
        let Some(steps) = self.steps() else {
            self.set_failover_note(Some((
                "failover refused: replication.replication_user is not set".to_owned(),
                true,
            )));
            return false;
        };
        let (from, to) = (&self.s.servers[old], &self.s.servers[candidate]);
        warn!(primary = from.name, candidate = to.name, received = %received, checks = self.down_rounds, "failover: promoting");
        let result = steps.failover(to, &received, &others).await;
        match result {
            Ok(at) => {
                let kept = acknowledged(self.primary_seen.as_ref(), &received, &from.name);
                let story = format!(
                    "failover: {} promoted at {at} after {} failed {} checks, in {} ms; {kept}",
                    to.name,
                    from.name,
                    self.down_rounds,
                    started.elapsed().as_millis()
                );
                warn!(primary = to.name, old = from.name, position = %at, "{story}");
                self.moved(candidate, &at, story, false);
                true
            }
            Err(e) => {
                let why = format!("failover to {} failed: {e}; trying again next check", to.name);
                self.failover_failed = Some(e.to_string());
                self.set_failover_note(Some((why, true)));
                false
            }
        }
    }

    /// Records the primary's move to `servers[to]`, whose history began at `at`.
    fn moved(&mut self, to: usize, at: &Position, story: String, planned: bool) {
        self.primary = to;
        self.down_rounds = 0;
        self.failover_note = None;
        self.failover_failed = None;
        self.flags = vec![None; self.s.servers.len()];
        let mut shared = lock(&self.shared);
        shared.topology =
            Topology { primary: Some(self.s.servers[to].name.clone()), promoted_at: Some(at.to_string()) };
        if planned {
            shared.switchovers += 1;
        } else {
            shared.failovers += 1;
        }
        shared.last_change = Some(story);
    }

    fn set_failover_note(&mut self, note: Option<(String, bool)>) {
        if note != self.failover_note {
            if let Some((why, _)) = &note {
                warn!(reason = why.as_str(), "no failover");
            }
            self.failover_note = note;
        }
    }

    /// Sets read-only on every writable server that is not the primary, and points a server
    /// that replicates from nowhere (or from a primary that is gone) at the primary, when its
    /// history allows; otherwise flags it.
    async fn fence_and_rejoin(&mut self, seen: &[Option<&Seen>]) {
        let Some(steps) = self.steps() else { return };
        let primary = &self.s.servers[self.primary];
        let promoted_at: Option<Position> =
            lock(&self.shared).topology.promoted_at.as_deref().and_then(|p| p.parse().ok());
        let mut flags = self.flags.clone();
        for (i, server) in self.s.servers.iter().enumerate() {
            let Some(seen) = seen[i].filter(|_| i != self.primary) else { continue };
            if !seen.read_only {
                match steps.fence(server).await {
                    Ok(()) => warn!(
                        server = server.name,
                        primary = primary.name,
                        "fenced: read_only set on a server that is not the primary"
                    ),
                    Err(e) => warn!(error = %e, "cannot fence a writable server that is not the primary"),
                }
            }
            if !self.s.auto_rejoin {
                continue;
            }
            let flag = match decide::rejoin(seen, &primary.name, primary.addr, promoted_at.as_ref()) {
                Rejoin::Replicating => None,
                Rejoin::Join => match steps.rejoin(server, primary).await {
                    Ok(()) => {
                        info!(server = server.name, primary = primary.name, "rejoined as a replica");
                        None
                    }
                    Err(e) => Some(format!("rejoin failed: {e}")),
                },
                Rejoin::Flag(why) => Some(why),
            };
            if flag != flags[i] {
                if let Some(why) = &flag {
                    warn!(
                        server = server.name,
                        reason = why.as_str(),
                        "left out of replication for a person to look at"
                    );
                }
                flags[i] = flag;
            }
        }
        self.flags = flags;
    }

    /// The operator's planned switchover to `to`; the message for the CLI, or why not.
    async fn switchover(&mut self, to: &str, reports: &mpsc::Sender<Report>) -> Result<String, String> {
        let names = || self.s.servers.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ");
        let Some(target) = self.s.servers.iter().position(|x| x.name == to) else {
            return Err(format!("no database server `{to}`; the servers are {}", names()));
        };
        let old = self.primary;
        let (from, dest) = (&self.s.servers[old], &self.s.servers[target]);
        if target == old {
            return Err(format!("{to} is the primary already"));
        }
        let Some(steps) = self.steps() else {
            return Err(format!(
                "set replication.replication_user and replication.replication_password_file: {} must log in to {to} \
                 to replicate from it",
                from.name
            ));
        };
        if self.last[old] != State::Up {
            return Err(format!(
                "switchover refused: the primary {} is {} ({}); a failed primary is replication.auto_failover's",
                from.name,
                self.last[old].name(),
                self.reasons[old]
            ));
        }
        if self.last[target] != State::Healthy {
            return Err(format!(
                "switchover refused: {to} is {} ({}); it must replicate from {} within max_lag {}s",
                self.last[target].name(),
                self.reasons[target],
                from.name,
                self.s.max_lag.as_secs_f64()
            ));
        }
        let others: Vec<&Server> = (0..self.s.servers.len())
            .filter(|i| *i != old && *i != target && self.last[*i] != State::Unreachable)
            .map(|i| &self.s.servers[i])
            .collect();
        let started = Instant::now();
        info!(primary = from.name, to, "switchover: starting");
        let at = steps
            .switchover(from, dest, &others)
            .await
            .map_err(|e| format!("switchover to {to} failed and was undone: {e}"))?;
        let took = started.elapsed();
        let story =
            format!("switchover: {to} promoted at {at}, {} replicates from it; {} ms", from.name, took.as_millis());
        info!(primary = to, old = from.name, position = %at, "{story}");
        let old_server = from.clone();
        self.moved(target, &at, story.clone(), true);
        // DNS first, then the old primary's sessions end: applications reconnect to the new one.
        let (report, _) = self.round().await;
        let _ = reports.send(report).await;
        let ended = match self.steps() {
            Some(steps) => steps.end_sessions(&old_server).await.unwrap_or_else(|e| {
                warn!(error = %e, "cannot end the old primary's client sessions");
                0
            }),
            None => 0,
        };
        info!(server = old_server.name, sessions = ended, "switchover: the old primary's client sessions ended");
        Ok(format!("{story}; {ended} client sessions on {} ended", old_server.name))
    }

    /// Judges every server, logs each state change once with its reason, and builds the report.
    fn report(&mut self, checked: &[Checked]) -> Report {
        let s = &self.s;
        let primary = &s.servers[self.primary];
        let mut servers = Vec::with_capacity(checked.len());
        for (i, (server, c)) in s.servers.iter().zip(checked).enumerate() {
            let role = self.role(i);
            let verdict = match &c.seen {
                Err(e) => {
                    self.errors[i] += 1;
                    Verdict { state: State::Unreachable, reason: e.to_string(), topology: None }
                }
                Ok(seen) if role == Role::Primary => classify::primary(seen),
                Ok(seen) => {
                    let mut v = classify::replica(seen, primary.addr, &primary.name, s.max_lag);
                    if seen.heartbeat_lag.is_none() && checked[self.primary].heartbeat_failed.is_some() {
                        v.reason.push_str(" (the heartbeat fails on the primary: see its status)");
                    }
                    v
                }
            };
            if verdict.state != self.last[i] {
                let (name, role, from, to) = (&server.name, role.name(), self.last[i].name(), verdict.state.name());
                match verdict.state {
                    State::Up | State::Healthy => {
                        info!(server = name, role, from, to, reason = verdict.reason, "database state changed")
                    }
                    _ => warn!(server = name, role, from, to, reason = verdict.reason, "database state changed"),
                }
                self.last[i] = verdict.state;
            }
            self.reasons[i] = verdict.reason.clone();
            let mut st = status_of(server, role, c.seen.as_ref().ok(), verdict.state);
            st.reason = verdict.reason;
            st.topology = verdict.topology;
            st.flagged = self.flags[i].clone();
            st.check_errors = self.errors[i];
            st.check_ms = c.took.as_secs_f64() * 1000.0;
            st.heartbeat_error = c.heartbeat_failed.as_ref().map(ToString::to_string);
            servers.push(st);
        }
        let ip = |i: usize| (s.servers[i].addr.ip(), self.last[i]);
        let replicas: Vec<(IpAddr, State)> = (0..s.servers.len()).filter(|i| *i != self.primary).map(ip).collect();
        let (write, read) = classify::answers(ip(self.primary), &replicas);
        let show = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect();
        let shared = lock(&self.shared);
        let status = ReplicationStatus {
            servers,
            write: show(&write),
            read: show(&read),
            last_round_age_s: None,
            primary: primary.name.clone(),
            auto_failover: s.auto_failover,
            failover: self.failover_note.as_ref().map(|(why, _)| why.clone()),
            failover_refused: self.failover_note.as_ref().is_some_and(|(_, refused)| *refused),
            failovers: shared.failovers,
            switchovers: shared.switchovers,
            last_change: shared.last_change.clone(),
        };
        Report { status, write, read, topology: shared.topology.clone() }
    }
}

/// What the promoted replica kept of the failed primary's commits, as far as the monitor can
/// tell from the primary's last check: semi-synchronous (each commit acknowledged by a replica
/// before the client heard of it) and whether the candidate had the position seen then.
fn acknowledged(last: Option<&Seen>, received: &Position, old: &str) -> String {
    let Some(last) = last else { return format!("{old} was never reached, so what it acknowledged is unknown") };
    let seen_at: Option<Position> = last.binlog_gtid.as_deref().and_then(|g| g.parse().ok());
    let had = match &seen_at {
        Some(p) if p.within(received) => format!("it had everything {old} had at its last check ({p})"),
        Some(p) => format!("it lacks {} that {old} had at its last check", p.ahead_of(received)),
        None => format!("{old}'s position at its last check is unknown"),
    };
    match last.semi_sync {
        Some((true, clients)) if clients > 0 => format!(
            "{old} was semi-synchronous ({clients} replica acknowledging): every commit it acknowledged had \
             reached a replica; {had}"
        ),
        _ => format!("{old} was asynchronous at its last check: commits it acknowledged may be lost; {had}"),
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
