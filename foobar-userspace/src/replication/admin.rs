//! The statements that change a server's place in the topology: read-only on and off, waiting
//! for a GTID position, stopping and pointing replication, ending client sessions. Each runs
//! over its own writable session and is bounded by a timeout, so a step that hangs fails.

use std::time::Duration;

use mysql_async::{Conn, prelude::Queryable};

use super::{Server, gtid::Position, observe::Login};

/// A step that failed: the server, what was being done, and the error.
#[derive(Debug, thiserror::Error)]
#[error("{server}: {what}: {why}")]
pub struct StepFailed {
    pub server: String,
    pub what: String,
    pub why: String,
}

/// How the monitor's replicas log in to a new primary (`replication.replication_user`).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicationLogin {
    pub user: String,
    pub password: String,
}

/// A writable session to one server.
pub struct Admin<'a> {
    server: &'a Server,
    conn: Conn,
    timeout: Duration,
}

impl<'a> Admin<'a> {
    pub async fn connect(server: &'a Server, login: &Login<'_>, timeout: Duration) -> Result<Admin<'a>, StepFailed> {
        let fail = |why: String| StepFailed { server: server.name.clone(), what: "connect".into(), why };
        let conn = tokio::time::timeout(timeout, super::observe::connect(server, login, false))
            .await
            .map_err(|_| fail(format!("no answer within {timeout:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(Admin { server, conn, timeout })
    }

    fn failed(&self, what: &str, why: impl ToString) -> StepFailed {
        StepFailed { server: self.server.name.clone(), what: what.to_owned(), why: why.to_string() }
    }

    /// Runs `sql`, bounded by the timeout.
    async fn run(&mut self, what: &str, sql: &str) -> Result<(), StepFailed> {
        match tokio::time::timeout(self.timeout, self.conn.query_drop(sql)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(what, e)),
            Err(_) => Err(self.failed(what, format!("no answer within {:?}", self.timeout))),
        }
    }

    /// The first column of `sql`'s first row, bounded by `within`.
    async fn value(&mut self, what: &str, sql: &str, within: Duration) -> Result<String, StepFailed> {
        let row = tokio::time::timeout(within, super::observe::first::<(Option<String>,)>(&mut self.conn, sql)).await;
        match row {
            Ok(Ok(Some((v,)))) => Ok(v.unwrap_or_default()),
            Ok(Ok(None)) => Err(self.failed(what, "no row")),
            Ok(Err(e)) => Err(self.failed(what, e)),
            Err(_) => Err(self.failed(what, format!("no answer within {within:?}"))),
        }
    }

    pub async fn set_read_only(&mut self, on: bool) -> Result<(), StepFailed> {
        let what = if on { "set read_only" } else { "clear read_only" };
        self.run(what, &format!("SET GLOBAL read_only = {}", u8::from(on))).await
    }

    /// `@@gtid_binlog_pos`: everything this server has written or replicated into its binlog.
    pub async fn binlog_position(&mut self) -> Result<Position, StepFailed> {
        self.position("read gtid_binlog_pos", "SELECT @@gtid_binlog_pos").await
    }

    /// `@@gtid_current_pos`: the last transaction in each domain, whoever wrote it.
    pub async fn current_position(&mut self) -> Result<Position, StepFailed> {
        self.position("read gtid_current_pos", "SELECT @@gtid_current_pos").await
    }

    async fn position(&mut self, what: &str, sql: &str) -> Result<Position, StepFailed> {
        let timeout = self.timeout;
        let text = self.value(what, sql, timeout).await?;
        text.parse().map_err(|e| self.failed(what, e))
    }

    /// Waits up to `within` until this replica has applied `position` (`MASTER_GTID_WAIT`).
    pub async fn wait_applied(&mut self, position: &Position, within: Duration) -> Result<(), StepFailed> {
        let what = format!("apply up to {position}");
        if position.is_empty() {
            return Ok(());
        }
        // A parsed position prints as digits, dashes and commas only: safe to quote.
        let sql = format!("SELECT CAST(MASTER_GTID_WAIT('{position}', {}) AS CHAR)", within.as_secs_f64());
        let got = self.value(&what, &sql, within + self.timeout).await?;
        if got == "0" { Ok(()) } else { Err(self.failed(&what, format!("not reached within {within:?}"))) }
    }

    /// Stops replicating and forgets the source: the server stands alone.
    pub async fn stop_replicating(&mut self) -> Result<(), StepFailed> {
        self.run("stop replication", "STOP SLAVE").await?;
        self.run("forget the source", "RESET SLAVE ALL").await
    }

    /// Starts replication again as it was configured (undoing a failed promotion).
    pub async fn start_replicating(&mut self) -> Result<(), StepFailed> {
        self.run("start replication", "START SLAVE").await
    }

    /// Replicates from `source` by GTID; `use_gtid` is `slave_pos` for a replica and
    /// `current_pos` for a demoted primary (whose position is its own binlog).
    pub async fn replicate_from(
        &mut self,
        source: &Server,
        login: &ReplicationLogin,
        use_gtid: &str,
        tls: bool,
    ) -> Result<(), StepFailed> {
        let what = format!("replicate from {}", source.name);
        self.run(&what, "STOP SLAVE").await?;
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, MASTER_USER = '{}', MASTER_PASSWORD = '{}', \
             MASTER_USE_GTID = {use_gtid}, MASTER_SSL = {}",
            source.addr.ip(),
            source.addr.port(),
            quote(&login.user),
            quote(&login.password),
            u8::from(tls)
        );
        self.run(&what, &sql).await?;
        self.run(&what, "START SLAVE").await
    }

    /// Ends every client session but replication's and this one, so applications reconnect
    /// (and find the new primary by name). Returns how many were ended.
    pub async fn end_client_sessions(&mut self, keep_users: &[&str]) -> Result<usize, StepFailed> {
        let keep: Vec<String> = keep_users.iter().map(|u| format!("'{}'", quote(u))).collect();
        let sql = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN \
             ('Binlog Dump', 'Daemon') AND USER NOT IN ('system user', 'event_scheduler', {})",
            keep.join(", ")
        );
        let ids: Vec<u64> = match tokio::time::timeout(self.timeout, self.conn.query(sql)).await {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => return Err(self.failed("list client sessions", e)),
            Err(_) => return Err(self.failed("list client sessions", "no answer")),
        };
        let mut ended = 0;
        for id in ids {
            // A session that ended meanwhile is not an error (ER_NO_SUCH_THREAD).
            if self.run("end a client session", &format!("KILL CONNECTION {id}")).await.is_ok() {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// `text` safe inside single quotes.
fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "''")
}
