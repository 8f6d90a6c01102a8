//! The daemon's side of the replication monitor: (re)starting it, taking in its reports, and
//! what `/metrics` shows of them.

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::warn;

use super::Daemon;
use crate::{
    control::protocol::{ReplicationStatus, Response},
    metrics::Exposition,
    plan::Plan,
    replication::{
        self, Command, Report, Settings, SettingsError, Topology,
        classify::{Role, State},
    },
};

/// The running monitor and what it last said.
#[derive(Default)]
pub(super) struct Databases {
    /// Settings read at start, run once the event loop gives reports somewhere to go.
    waiting: Option<Settings>,
    running: Option<(Settings, JoinHandle<()>)>,
    commands: Option<mpsc::Sender<Command>>,
    reports: Option<mpsc::Sender<Report>>,
    /// The last round's report, and when it came.
    last: Option<(Report, std::time::Instant)>,
    /// Where foobar moved the primary (from the state file, then from the monitor).
    topology: Topology,
}

impl Drop for Databases {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}

/// The monitor settings `plan` asks for (reading the password file), or `None` without a
/// `[replication]` section.
pub(super) fn settings(plan: &Plan) -> Result<Option<Settings>, SettingsError> {
    plan.config.replication.as_ref().map(|r| Settings::from_config(r, &plan.node)).transpose()
}

impl Databases {
    /// A monitor to start with [`Databases::report_to`].
    pub(super) fn waiting(settings: Option<Settings>, topology: Topology) -> Databases {
        Databases { waiting: settings, running: None, commands: None, reports: None, last: None, topology }
    }

    pub(super) fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Hands a switchover to the monitor, which answers `reply` when it is done.
    pub(super) fn switchover(&self, to: String, reply: oneshot::Sender<Response>) {
        let Some(commands) = &self.commands else {
            let _ = reply.send(Response::Error { message: "no [replication] is configured".to_owned() });
            return;
        };
        let (tx, rx) = oneshot::channel();
        if commands.try_send(Command::Switchover { to, reply: tx }).is_err() {
            let message = "the replication monitor is busy with another switchover; try again".to_owned();
            let _ = reply.send(Response::Error { message });
            return;
        }
        tokio::spawn(async move {
            let response = match rx.await {
                Ok(Ok(message)) => Response::Done { message },
                Ok(Err(message)) => Response::Error { message },
                Err(_) => Response::Error { message: "the replication monitor stopped during the switchover".into() },
            };
            let _ = reply.send(response);
        });
    }

    /// Where reports go from now on (set once the event loop runs); starts the waiting monitor.
    pub(super) fn report_to(&mut self, tx: mpsc::Sender<Report>) {
        self.reports = Some(tx);
        let waiting = self.waiting.take();
        self.run(waiting);
    }

    /// Runs the monitor with `wanted`; a monitor already running with the same settings goes on.
    pub(super) fn run(&mut self, wanted: Option<Settings>) {
        if self.running.as_ref().map(|(s, _)| s) == wanted.as_ref() {
            return;
        }
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
        self.last = None;
        self.commands = None;
        let (Some(settings), Some(tx)) = (wanted, self.reports.clone()) else { return };
        let (task, commands) = replication::spawn(settings.clone(), self.topology.clone(), tx);
        self.running = Some((settings, task));
        self.commands = Some(commands);
    }

    /// Takes a round's report: whether what DNS answers changed, and whether the topology
    /// (to keep in the state file) did.
    pub(super) fn take(&mut self, report: Report) -> (bool, bool) {
        let changed =
            self.last.as_ref().is_none_or(|(old, _)| (&old.write, &old.read) != (&report.write, &report.read));
        let moved = report.topology != self.topology;
        if moved {
            self.topology = report.topology.clone();
        }
        self.last = Some((report, std::time::Instant::now()));
        (changed, moved)
    }

    /// `(write, read)` addresses once a round has completed.
    pub(super) fn answers(&self) -> Option<(Vec<std::net::IpAddr>, Vec<std::net::IpAddr>)> {
        self.last.as_ref().map(|(r, _)| (r.write.clone(), r.read.clone()))
    }

    pub(super) fn status(&self) -> Option<ReplicationStatus> {
        match (&self.last, &self.running) {
            (Some((r, at)), _) => {
                Some(ReplicationStatus { last_round_age_s: Some(at.elapsed().as_secs_f64()), ..r.status.clone() })
            }
            (None, Some((s, _))) => Some(replication::initial(s)),
            (None, None) => None,
        }
    }
}

impl Daemon {
    pub(super) fn on_report(&mut self, report: Report) {
        let (changed, moved) = self.databases.take(report);
        if changed {
            self.follow_liveness();
        }
        if moved && let Err(e) = self.keep_state() {
            warn!(error = %e, "cannot keep the database primary's move in the state file");
        }
    }
}

/// Replication families for `/metrics`, from the status report.
pub(super) fn metrics(m: &mut Exposition, status: &ReplicationStatus) {
    m.family("foobar_replication_state", "gauge", "1 for the state each database server is in.");
    for s in &status.servers {
        let role = if s.role == Role::Primary.name() { Role::Primary } else { Role::Replica };
        for state in State::all(role) {
            let on = f64::from(u8::from(s.state == state.name()));
            m.sample(
                "foobar_replication_state",
                &[("server", &s.name), ("role", &s.role), ("state", state.name())],
                on,
            );
        }
    }
    m.family("foobar_replication_lag_seconds", "gauge", "Replica lag, by heartbeat and as Seconds_Behind_Master.");
    for s in &status.servers {
        if let Some(l) = s.heartbeat_lag {
            m.sample("foobar_replication_lag_seconds", &[("server", &s.name), ("source", "heartbeat")], l);
        }
        if let Some(l) = s.seconds_behind_master {
            let labels = [("server", s.name.as_str()), ("source", "seconds_behind_master")];
            m.sample("foobar_replication_lag_seconds", &labels, l as f64);
        }
    }
    m.family("foobar_replication_thread_running", "gauge", "1 while a replica's IO or SQL thread runs.");
    for s in &status.servers {
        for (thread, state) in [("io", &s.io_thread), ("sql", &s.sql_thread)] {
            if let Some(state) = state {
                let on = f64::from(u8::from(state == "Yes"));
                m.sample("foobar_replication_thread_running", &[("server", &s.name), ("thread", thread)], on);
            }
        }
    }
    m.family(
        "foobar_replication_heartbeat_failing",
        "gauge",
        "1 while the heartbeat row cannot be written (primary) or read (replica); lag then comes from Seconds_Behind_Master.",
    );
    for s in &status.servers {
        let failing = f64::from(u8::from(s.heartbeat_error.is_some()));
        m.sample("foobar_replication_heartbeat_failing", &[("server", &s.name)], failing);
    }
    m.family("foobar_replication_read_only", "gauge", "1 while the server has read_only on.");
    for s in &status.servers {
        if let Some(ro) = s.read_only {
            m.sample("foobar_replication_read_only", &[("server", &s.name)], f64::from(u8::from(ro)));
        }
    }
    if let Some(age) = status.last_round_age_s {
        m.family("foobar_replication_last_round_age_seconds", "gauge", "Seconds since the monitor's last round ended.");
        m.sample("foobar_replication_last_round_age_seconds", &[], age);
    }
    m.family("foobar_replication_primary", "gauge", "1 for the server that is the primary now.");
    for s in &status.servers {
        m.sample("foobar_replication_primary", &[("server", &s.name)], f64::from(u8::from(s.name == status.primary)));
    }
    m.family("foobar_replication_failovers_total", "counter", "Replicas promoted because the primary failed.");
    m.sample("foobar_replication_failovers_total", &[], status.failovers as f64);
    m.family("foobar_replication_switchovers_total", "counter", "Planned switchovers to another primary.");
    m.sample("foobar_replication_switchovers_total", &[], status.switchovers as f64);
    m.family(
        "foobar_replication_failover_refused",
        "gauge",
        "1 while the primary is down and auto_failover will not promote (status says why).",
    );
    m.sample("foobar_replication_failover_refused", &[], f64::from(u8::from(status.failover_refused)));
    m.family(
        "foobar_replication_flagged",
        "gauge",
        "1 while a server is left out of replication for a person to look at (errant transactions).",
    );
    for s in &status.servers {
        m.sample("foobar_replication_flagged", &[("server", &s.name)], f64::from(u8::from(s.flagged.is_some())));
    }
    m.family("foobar_replication_check_errors_total", "counter", "Checks that failed, per server.");
    for s in &status.servers {
        m.sample("foobar_replication_check_errors_total", &[("server", &s.name)], s.check_errors as f64);
    }
    m.family("foobar_replication_check_seconds", "gauge", "How long the last check of each server took.");
    for s in &status.servers {
        m.sample("foobar_replication_check_seconds", &[("server", &s.name)], s.check_ms / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Daemon, DaemonError};

    #[test]
    fn an_unreadable_password_file_stops_the_start_before_anything_loads() {
        let text = include_str!("../../../examples/lab.toml").replacen(
            "/etc/foobar/mysql-monitor.pass",
            "/nonexistent/foobar/monitor.pass",
            1,
        );
        let cfg = crate::config::parse(Path::new("lab.toml"), &text, &|_| true).expect("config");
        match Daemon::start(crate::plan::Plan::compile(cfg).expect("plan")) {
            Err(DaemonError::Replication(e)) => assert_eq!(
                e.to_string(),
                "replication.password_file /nonexistent/foobar/monitor.pass: No such file or directory (os error 2); \
                 write the monitor user's password there (readable by root only)"
            ),
            Err(other) => panic!("failed for another reason: {other}"),
            Ok(_) => panic!("started without a password"),
        }
    }
}
