//! The replication monitor: every `interval`, one round checks the primary (writing the
//! heartbeat row), then every replica at once (reading it back), each check bounded by
//! `timeout`, so a hung server costs its own check at most the timeout and never stops the
//! others or the daemon. Each round's report goes to the daemon's event loop, which shows it
//! in `status` and `/metrics` and hands DNS what `db-write` and `db-read` answer.
//!
//! - `classify`: states, reasons and DNS answers from what a check saw (pure, unit-tested).
//! - `observe`: the queries, over `mysql_async`.
//! - `diagnose`: a failed check explained, naming the server and what to fix.

pub mod classify;
mod diagnose;
mod observe;

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tracing::{info, warn};

use self::{
    classify::{Role, Seen, State, Verdict},
    observe::{Beat, Heartbeat, Login, Observed, Session},
};
use crate::{
    config::schema::Replication,
    control::protocol::{DbServerStatus, ReplicationStatus},
};

/// One configured database server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub role: Role,
    /// Where the config names it, for messages ("replication.replicas[0]").
    pub key: String,
}

/// The monitor's settings, with the password read from `password_file` (compared on reload,
/// so a changed password restarts the monitor too).
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The primary first, then the replicas in config order.
    pub servers: Vec<Server>,
    user: String,
    password: String,
    interval: Duration,
    timeout: Duration,
    max_lag: Duration,
    heartbeat_table: Option<String>,
    tls: Option<Tls>,
}

/// The monitor's password file or TLS CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("replication.password_file {}: {source}; write the monitor user's password there (readable by root only)", path.display())]
    Unreadable { path: std::path::PathBuf, source: std::io::Error },
    /// Group or others may read it: the password is not a secret any more.
    #[error("replication.password_file {} can be read by other users (mode {mode:04o}); make it the owner's alone: chmod 600 {}", path.display(), path.display())]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error("replication.tls.ca_file {}: {source}; give the PEM file of the CA that signed the servers' certificates", path.display())]
    CaFile { path: std::path::PathBuf, source: std::io::Error },
}

/// TLS to the database servers: verified against `ca_file` (or, without one, the public
/// roots), and unless `check_name` is off the certificate must name the server's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<std::path::PathBuf>,
    pub check_name: bool,
}

impl Settings {
    /// Fails, naming the file, when the password cannot be read or others may read it.
    pub fn from_config(r: &Replication) -> Result<Settings, SettingsError> {
        let password = read_password(&r.password_file)?;
        let p = r.primary.get_ref();
        let mut servers = vec![Server {
            name: p.name.clone(),
            addr: p.address,
            role: Role::Primary,
            key: "replication.primary".into(),
        }];
        servers.extend(r.replicas.iter().enumerate().map(|(i, x)| Server {
            name: x.name.clone(),
            addr: x.address,
            role: Role::Replica,
            key: format!("replication.replicas[{i}]"),
        }));
        let tls = match &r.tls {
            None => None,
            Some(t) => {
                if let Some(ca) = &t.ca_file {
                    std::fs::File::open(ca).map_err(|source| SettingsError::CaFile { path: ca.clone(), source })?;
                }
                Some(Tls { ca_file: t.ca_file.clone(), check_name: t.check_name })
            }
        };
        Ok(Settings {
            tls,
            servers,
            user: r.user.clone(),
            password,
            interval: r.interval.0,
            timeout: r.timeout.get_ref().0,
            max_lag: r.max_lag.0,
            heartbeat_table: r.heartbeat.then(|| r.heartbeat_table.get_ref().clone()),
        })
    }

    fn login(&self) -> Login<'_> {
        Login {
            user: &self.user,
            password: &self.password,
            heartbeat_table: self.heartbeat_table.as_deref(),
            tls: self.tls.as_ref(),
        }
    }
}

fn read_password(path: &Path) -> Result<String, SettingsError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |source| SettingsError::Unreadable { path: path.to_path_buf(), source };
    let mode = std::fs::metadata(path).map_err(unreadable)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SettingsError::Exposed { path: path.to_path_buf(), mode });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// One round's result: the status to show and the addresses DNS answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub status: ReplicationStatus,
    pub write: Vec<IpAddr>,
    pub read: Vec<IpAddr>,
}

/// The status before the first round completes: every server unknown.
pub fn initial(settings: &Settings) -> ReplicationStatus {
    ReplicationStatus {
        servers: settings.servers.iter().map(|s| status_of(s, None, State::Unknown)).collect(),
        write: Vec::new(),
        read: Vec::new(),
        last_round_age_s: None,
    }
}

/// Starts the monitor; it stops when its handle is aborted or the event loop goes away. A
/// monitor that panics is started again, after a pause that doubles up to
/// [`RESTART_BACKOFF_MAX`], so DNS answers never freeze with a dead monitor behind them.
pub fn spawn(settings: Settings, reports: mpsc::Sender<Report>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            let mut run = AbortOnDrop(tokio::spawn(monitor(settings.clone(), reports.clone())));
            match (&mut run.0).await {
                Err(e) if e.is_panic() => {
                    warn!(error = %e, restart_in = ?pause, "the replication monitor failed; starting it again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RESTART_BACKOFF_MAX);
                }
                // The event loop went away, or the task was cancelled.
                _ => return,
            }
        }
    })
}

/// The longest pause before a failed monitor is started again.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A task that ends with its handle: aborting the supervisor ends the monitor it runs.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one check produced.
struct Checked {
    seen: Result<Seen, diagnose::CheckFailed>,
    heartbeat: Option<Heartbeat>,
    /// Why the heartbeat failed on a server the check reached, explained.
    heartbeat_failed: Option<diagnose::CheckFailed>,
    took: Duration,
}

/// Heartbeat rows kept to measure lag against: an hour's worth at a 1 s interval.
const HEARTBEAT_HISTORY: usize = 3600;

async fn check(s: &Settings, i: usize, session: &mut Session, beat: Beat) -> Checked {
    let server = &s.servers[i];
    let started = Instant::now();
    let login = s.login();
    let outcome = tokio::time::timeout(s.timeout, session.check(server, &login, beat)).await;
    let login = s.login();
    let explain = |e: &mysql_async::Error| diagnose::explain(e, server, &login);
    let (seen, heartbeat, heartbeat_failed) = match outcome {
        Ok(Ok(Observed { seen, heartbeat: Ok(h) })) => (Ok(seen), h, None),
        Ok(Ok(Observed { seen, heartbeat: Err(e) })) => (Ok(seen), None, Some(explain(&e))),
        Ok(Err(e)) => (Err(explain(&e)), None, None),
        Err(_) => (
            Err(diagnose::CheckFailed(format!(
                "{} ({}): no answer within {:?} (replication.timeout)",
                server.name, server.addr, s.timeout
            ))),
            None,
            None,
        ),
    };
    Checked { seen, heartbeat, heartbeat_failed, took: started.elapsed() }
}

async fn monitor(s: Settings, reports: mpsc::Sender<Report>) {
    let n = s.servers.len();
    let mut sessions: Vec<Session> = (0..n).map(|_| Session::default()).collect();
    let mut errors = vec![0u64; n];
    let mut last: Vec<State> = vec![State::Unknown; n];
    let mut last_beat: Vec<Option<String>> = vec![None; n];
    let mut written: VecDeque<i64> = VecDeque::with_capacity(HEARTBEAT_HISTORY);
    let mut ticks = tokio::time::interval(s.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // The primary first: the replicas' heartbeat reads measure against its fresh write.
        let beat = if s.heartbeat_table.is_some() { Beat::Write } else { Beat::Skip };
        let primary = check(&s, 0, &mut sessions[0], beat).await;
        let read = match primary.heartbeat {
            Some(h) => {
                if written.len() == HEARTBEAT_HISTORY {
                    written.pop_front();
                }
                written.push_back(h.ts);
                Beat::Read
            }
            None => Beat::Skip,
        };
        let replicas = sessions.iter_mut().enumerate().skip(1).map(|(i, session)| check(&s, i, session, read));
        let mut checked = vec![primary];
        checked.extend(futures_util::future::join_all(replicas).await);
        for c in &mut checked[1..] {
            if let (Ok(seen), Some(h)) = (&mut c.seen, c.heartbeat) {
                seen.heartbeat_lag = Some(classify::heartbeat_lag(h.ts, h.at, &written));
            }
        }
        log_heartbeat_changes(&s, &checked, &mut last_beat);
        let report = round_report(&s, &checked, &mut errors, &mut last);
        if reports.send(report).await.is_err() {
            return;
        }
    }
}

/// Logs each server's heartbeat failing, or working again, once.
fn log_heartbeat_changes(s: &Settings, checked: &[Checked], last: &mut [Option<String>]) {
    for ((server, c), last) in s.servers.iter().zip(checked).zip(last.iter_mut()) {
        // A server the check did not reach says nothing about its heartbeat.
        if c.seen.is_err() {
            continue;
        }
        let now = c.heartbeat_failed.as_ref().map(ToString::to_string);
        if now != *last {
            match &now {
                Some(reason) => {
                    warn!(server = server.name, reason, "heartbeat failing; lag falls back to Seconds_Behind_Master")
                }
                None => info!(server = server.name, "heartbeat working again"),
            }
            *last = now;
        }
    }
}

/// Judges one round, logs each state change once with its reason, and builds the report.
fn round_report(s: &Settings, checked: &[Checked], errors: &mut [u64], last: &mut [State]) -> Report {
    let primary = &s.servers[0];
    let mut servers = Vec::with_capacity(checked.len());
    for (i, (server, c)) in s.servers.iter().zip(checked).enumerate() {
        let verdict = match &c.seen {
            Err(e) => {
                errors[i] += 1;
                Verdict { state: State::Unreachable, reason: e.to_string(), topology: None }
            }
            Ok(seen) if server.role == Role::Primary => classify::primary(seen),
            Ok(seen) => {
                let mut v = classify::replica(seen, primary.addr, &primary.name, s.max_lag);
                if seen.heartbeat_lag.is_none() && checked[0].heartbeat_failed.is_some() {
                    v.reason.push_str(" (the heartbeat fails on the primary: see its status)");
                }
                v
            }
        };
        if verdict.state != last[i] {
            let (name, role, from, to) = (&server.name, server.role.name(), last[i].name(), verdict.state.name());
            match verdict.state {
                State::Up | State::Healthy => {
                    info!(server = name, role, from, to, reason = verdict.reason, "database state changed")
                }
                _ => warn!(server = name, role, from, to, reason = verdict.reason, "database state changed"),
            }
            last[i] = verdict.state;
        }
        let mut st = status_of(server, c.seen.as_ref().ok(), verdict.state);
        st.reason = verdict.reason;
        st.topology = verdict.topology;
        st.check_errors = errors[i];
        st.check_ms = c.took.as_secs_f64() * 1000.0;
        st.heartbeat_error = c.heartbeat_failed.as_ref().map(ToString::to_string);
        servers.push(st);
    }
    let ip = |i: usize| (s.servers[i].addr.ip(), last[i]);
    let replicas: Vec<(IpAddr, State)> = (1..s.servers.len()).map(ip).collect();
    let (write, read) = classify::answers(ip(0), &replicas);
    let show = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect();
    let status = ReplicationStatus { servers, write: show(&write), read: show(&read), last_round_age_s: None };
    Report { status, write, read }
}

/// A server's status line from what its check saw.
fn status_of(server: &Server, seen: Option<&Seen>, state: State) -> DbServerStatus {
    let replica = seen.and_then(|x| x.replica.as_ref());
    DbServerStatus {
        name: server.name.clone(),
        address: server.addr.to_string(),
        role: server.role.name().to_owned(),
        state: state.name().to_owned(),
        server_id: seen.map(|x| x.server_id),
        read_only: seen.map(|x| x.read_only),
        io_thread: replica.map(|r| r.io.clone()),
        sql_thread: replica.map(|r| r.sql.clone()),
        last_error: replica.and_then(|r| r.last_error.clone()),
        heartbeat_lag: seen.and_then(|x| x.heartbeat_lag).map(|d| d.as_secs_f64()),
        seconds_behind_master: replica.and_then(|r| r.seconds_behind),
        gtid: seen.and_then(|x| x.gtid.clone()),
        ..DbServerStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{SettingsError, read_password};

    #[test]
    fn a_password_file_others_may_read_is_refused_with_the_fix() {
        let path = std::env::temp_dir().join(format!("foobar-password-test-{}", std::process::id()));
        std::fs::write(&path, "secret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = read_password(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let read = read_password(&path);
        let _ = std::fs::remove_file(&path);
        match refused {
            Err(e @ SettingsError::Exposed { mode: 0o644, .. }) => {
                let message = e.to_string();
                assert!(message.contains("mode 0644") && message.contains("chmod 600"), "{message}");
            }
            other => panic!("a 0644 password file: {other:?}"),
        }
        assert_eq!(read.expect("a 0600 password file is read"), "secret");
    }
}
