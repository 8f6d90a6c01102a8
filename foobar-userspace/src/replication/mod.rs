//! The replication monitor: every `interval`, one round checks the primary (writing the
//! heartbeat row), then every replica at once (reading it back), each check bounded by
//! `timeout`, so a hung server costs its own check at most the timeout and never stops the
//! others or the daemon. Each round's report goes to the daemon's event loop, which shows it
//! in `status` and `/metrics` and hands DNS what `db-write` and `db-read` answer.
//!
//! - `classify`: states, reasons and DNS answers from what a check saw (pure, unit-tested).
//! - `observe`: the queries, over `mysql_async`.
//! - `diagnose`: a failed check explained, naming the server and what to fix.
//! - `monitor`: the rounds, and acting on them; `decide` says what is safe (pure), `promote`
//!   and `admin` do it: switchover, failover, fencing, rejoin. `gtid` compares positions.

mod admin;
pub mod classify;
mod decide;
mod diagnose;
mod gtid;
mod monitor;
mod observe;
mod promote;

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tracing::{info, warn};

pub use self::admin::ReplicationLogin;
use self::{
    classify::{Role, Seen, State},
    monitor::{Monitor, Shared},
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
    /// This node's heartbeat row (`daemon.node_name`): monitors on several nodes keep a row each.
    node: String,
    tls: Option<Tls>,
    auto_failover: bool,
    /// Failed checks of the primary in a row before a failover.
    failover_after: u32,
    auto_rejoin: bool,
    /// How replicas log in to a new primary; switchover and failover need it.
    replication_login: Option<ReplicationLogin>,
    /// How long a replica may take to apply what it must before it is promoted.
    catch_up: Duration,
}

/// Where foobar moved the primary, kept in the state file: after a failover the configured
/// primary is not the primary any more, and a restart must not make it one again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The primary's name; none until foobar moves it (the configured primary).
    #[serde(default)]
    pub primary: Option<String>,
    /// The GTID position where the current primary's history began: a returning server
    /// with transactions beyond it has errant ones.
    #[serde(default)]
    pub promoted_at: Option<String>,
}

/// What the operator asks of the monitor.
pub enum Command {
    /// A planned switchover to the server named `to`: the CLI's message, or why not.
    Switchover { to: String, reply: oneshot::Sender<Result<String, String>> },
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
    #[error("replication.replication_password_file {}: {source}; write the replication user's password there (readable by root only)", path.display())]
    ReplicationPassword { path: std::path::PathBuf, source: Box<SettingsError> },
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
    /// `node` names this node's heartbeat row.
    pub fn from_config(r: &Replication, node: &str) -> Result<Settings, SettingsError> {
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
        let replication_login = match (&r.replication_user, &r.replication_password_file) {
            (Some(user), Some(path)) => Some(ReplicationLogin {
                user: user.clone(),
                password: read_password(path)
                    .map_err(|e| SettingsError::ReplicationPassword { path: path.clone(), source: Box::new(e) })?,
            }),
            _ => None,
        };
        Ok(Settings {
            tls,
            auto_failover: *r.auto_failover.get_ref(),
            failover_after: *r.failover_after.get_ref(),
            auto_rejoin: r.auto_rejoin,
            replication_login,
            catch_up: r.catch_up_timeout.0,
            servers,
            user: r.user.clone(),
            password,
            interval: r.interval.0,
            timeout: r.timeout.get_ref().0,
            max_lag: r.max_lag.0,
            heartbeat_table: r.heartbeat.then(|| r.heartbeat_table.get_ref().clone()),
            node: node.to_owned(),
        })
    }

    fn login(&self) -> Login<'_> {
        Login {
            user: &self.user,
            password: &self.password,
            heartbeat_table: self.heartbeat_table.as_deref(),
            node: &self.node,
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
    /// Where foobar has moved the primary, for the state file.
    pub topology: Topology,
}

/// The status before the first round completes: every server unknown.
pub fn initial(settings: &Settings) -> ReplicationStatus {
    ReplicationStatus {
        servers: settings.servers.iter().map(|s| status_of(s, s.role, None, State::Unknown)).collect(),
        auto_failover: settings.auto_failover,
        ..ReplicationStatus::default()
    }
}

/// Starts the monitor with the topology kept from before; it stops when its handle is
/// aborted or the event loop goes away. A monitor that panics is started again, after a pause
/// that doubles up to [`RESTART_BACKOFF_MAX`], so DNS answers never freeze with a dead
/// monitor behind them; the topology it moved and its commands carry over.
pub fn spawn(
    settings: Settings,
    kept: Topology,
    reports: mpsc::Sender<Report>,
) -> (tokio::task::JoinHandle<()>, mpsc::Sender<Command>) {
    let (command_tx, commands) = mpsc::channel(4);
    let commands = Arc::new(tokio::sync::Mutex::new(commands));
    let shared = Arc::new(Mutex::new(Shared { topology: kept, ..Shared::default() }));
    let task = tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            let (settings, reports, commands) = (settings.clone(), reports.clone(), commands.clone());
            let monitor = Monitor::new(settings, shared.clone());
            let mut run = AbortOnDrop(tokio::spawn(async move {
                let mut commands = commands.lock_owned().await;
                monitor.run(reports, &mut commands).await;
            }));
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
    });
    (task, command_tx)
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

/// Checks `servers[i]` in `role`, bounded by the timeout.
async fn check(s: &Settings, i: usize, role: Role, session: &mut Session, beat: Beat) -> Checked {
    let server = &s.servers[i];
    let started = Instant::now();
    let login = s.login();
    let outcome = tokio::time::timeout(s.timeout, session.check(server, role, &login, beat)).await;
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

/// A server's status line from what its check saw.
fn status_of(server: &Server, role: Role, seen: Option<&Seen>, state: State) -> DbServerStatus {
    let replica = seen.and_then(|x| x.replica.as_ref());
    DbServerStatus {
        name: server.name.clone(),
        address: server.addr.to_string(),
        role: role.name().to_owned(),
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
