//! One check of one server over `mysql_async`: its identity and `read_only`, its replica
//! threads, and the heartbeat (written on the primary, read on the replicas).
//!
//! Replicas are checked over sessions opened `READ ONLY`, so nothing the monitor sends can
//! write on a replica, whatever the server's own `read_only` says.

use std::time::{SystemTime, UNIX_EPOCH};

use mysql_async::{
    Conn, DriverError, Error, OptsBuilder, Row, SslOpts, Value,
    prelude::{FromRow, Queryable},
};

use super::{
    Server,
    classify::{ReplicaSeen, Role, Seen},
};

/// A server's connection, kept between successful checks.
#[derive(Default)]
pub struct Session {
    conn: Option<Conn>,
    /// The role the connection was opened for (a replica's session is read-only).
    role: Option<Role>,
    /// The heartbeat table exists (created on this connection or found).
    table_ready: bool,
}

/// Credentials and the heartbeat table, shared by every check.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub heartbeat_table: Option<&'a str>,
    /// The heartbeat row this monitor writes and reads (validated: letters, digits, `_ . -`).
    pub node: &'a str,
    pub tls: Option<&'a super::Tls>,
}

/// Microseconds since the epoch: what the heartbeat row holds (the monitor's own clock, so the
/// lag it reads back never depends on the servers' clocks).
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What one check saw of a reachable server: its state, and the heartbeat part on its own,
/// whose failure (a missing grant or database) says nothing about whether the server is up.
pub struct Observed {
    pub seen: Seen,
    pub heartbeat: Result<Option<Heartbeat>, mysql_async::Error>,
}

impl Session {
    /// Checks the server. With [`Beat::Write`] also writes the heartbeat row and returns its
    /// timestamp; with [`Beat::Read`] returns the row's timestamp and when it was read.
    ///
    /// The connection is held only while the check runs: one that failed, or whose check was
    /// cut short by the caller's timeout, is gone, and the next check connects afresh. So is one
    /// whose heartbeat failed for anything but an SQL error (the connection itself broke).
    /// A server whose role changed (promoted, demoted) gets a new connection for it.
    pub async fn check(
        &mut self,
        server: &Server,
        role: Role,
        login: &Login<'_>,
        beat: Beat,
    ) -> Result<Observed, Error> {
        let mut conn = match self.conn.take().filter(|_| self.role == Some(role)) {
            Some(conn) => conn,
            None => {
                self.table_ready = false;
                self.role = Some(role);
                connect(server, login, role == Role::Replica).await?
            }
        };
        let seen = observe(&mut conn, role).await?;
        let heartbeat = match login.heartbeat_table {
            Some(table) => self.beat(&mut conn, table, login.node, beat, &seen).await,
            None => Ok(None),
        };
        match heartbeat {
            Err(e) if breaks_connection(&e) => Err(e),
            heartbeat => {
                self.conn = Some(conn);
                Ok(Observed { seen, heartbeat })
            }
        }
    }

    /// The heartbeat part of a check of a server that looked like `seen`.
    async fn beat(
        &mut self,
        conn: &mut Conn,
        table: &str,
        node: &str,
        beat: Beat,
        seen: &Seen,
    ) -> Result<Option<Heartbeat>, Error> {
        match beat {
            // Only a writable primary that replicates from nowhere gets the row: writing on
            // anything else would leave a transaction its replicas do not expect.
            Beat::Write if !seen.read_only && seen.replica.is_none() => {
                if !self.table_ready {
                    // The grant on `db.*` that lets the monitor create its table lets it create
                    // the database too, so a new user's setup needs no CREATE DATABASE.
                    if let Some((database, _)) = table.split_once('.') {
                        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {database}")).await?;
                    }
                    conn.query_drop(format!(
                        "CREATE TABLE IF NOT EXISTS {table} (node VARCHAR(64) NOT NULL PRIMARY KEY \
                         COMMENT 'the writing node (daemon.node_name)', \
                         ts BIGINT NOT NULL COMMENT 'microseconds since the epoch, on the clock of the writing node')"
                    ))
                    .await?;
                    self.table_ready = true;
                }
                let ts = now_micros();
                // Keyed by node, never @@server_id: the row must be the same one on every server,
                // and each node's monitor keeps its own, measuring against its own clock.
                conn.query_drop(format!(
                    "INSERT INTO {table} (node, ts) VALUES ('{node}', {ts}) ON DUPLICATE KEY UPDATE ts = VALUES(ts)"
                ))
                .await?;
                Ok(Some(Heartbeat { ts, at: ts }))
            }
            Beat::Read => match first::<i64>(conn, &format!("SELECT ts FROM {table} WHERE node = '{node}'")).await {
                Ok(Some(ts)) => Ok(Some(Heartbeat { ts, at: now_micros() })),
                // No table or no row yet (a fresh replica): the lag is unknown, not an error.
                Ok(None) => Ok(None),
                Err(Error::Server(e)) if e.code == 1146 => Ok(None),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
    }
}

/// A server's identity, `read_only`, GTID positions, semi-synchronous state and replica threads.
async fn observe(conn: &mut Conn, role: Role) -> Result<Seen, mysql_async::Error> {
    let (server_id, read_only, version): (u32, i64, String) =
        first(conn, "SELECT @@server_id, @@read_only, @@version").await?.unwrap_or_default();
    let (gtid, binlog_gtid) = if version.contains("MariaDB") {
        let (binlog, applied): (Option<String>, Option<String>) =
            first(conn, "SELECT @@gtid_binlog_pos, @@gtid_slave_pos").await.ok().flatten().unwrap_or_default();
        (if role == Role::Primary { binlog.clone() } else { applied }, binlog)
    } else {
        (first::<Option<String>>(conn, "SELECT @@gtid_executed").await.ok().flatten().flatten(), None)
    };
    let replica = replica_status(conn).await?;
    let semi_sync = semi_sync(conn).await;
    Ok(Seen { server_id, read_only: read_only != 0, gtid, replica, heartbeat_lag: None, binlog_gtid, semi_sync })
}

/// Whether the server waits for a replica to acknowledge each commit, and how many replicas
/// acknowledge; `None` where semi-synchronous replication is not available.
async fn semi_sync(conn: &mut Conn) -> Option<(bool, u64)> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN \
             ('RPL_SEMI_SYNC_MASTER_STATUS', 'RPL_SEMI_SYNC_MASTER_CLIENTS')",
        )
        .await
        .ok()?;
    let value = |name: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let on = value("RPL_SEMI_SYNC_MASTER_STATUS")? == "ON";
    Some((on, value("RPL_SEMI_SYNC_MASTER_CLIENTS").and_then(|c| c.parse().ok()).unwrap_or(0)))
}

/// The first row of `query` as `T`. A value that does not convert (a NULL or a string where a
/// number belongs) is an error, where `query_first::<T>` would panic and end the monitor.
pub(super) async fn first<T: FromRow + Send + 'static>(conn: &mut Conn, query: &str) -> Result<Option<T>, Error> {
    let row: Option<Row> = conn.query_first(query).await?;
    row.map(|r| mysql_async::from_row_opt(r).map_err(|e| Error::Driver(DriverError::FromRow { row: e.0 }))).transpose()
}

/// Whether `e` leaves the connection unusable, rather than being one statement's failure (an
/// SQL error, an answer that does not convert).
fn breaks_connection(e: &Error) -> bool {
    !matches!(e, Error::Server(_) | Error::Driver(DriverError::FromRow { .. } | DriverError::FromValue { .. }))
}

/// Opens a connection to `server`, read-only for checking a replica.
pub(super) async fn connect(server: &Server, login: &Login<'_>, read_only: bool) -> Result<Conn, mysql_async::Error> {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(server.addr.ip().to_string())
        .tcp_port(server.addr.port())
        .user(Some(login.user))
        .pass(Some(login.password))
        .prefer_socket(false)
        .stmt_cache_size(0);
    if read_only {
        opts = opts.setup(vec!["SET SESSION TRANSACTION READ ONLY".to_owned()]);
    }
    if let Some(tls) = login.tls {
        let roots = tls.ca_file.iter().map(|p| p.clone().into()).collect();
        opts = opts.ssl_opts(
            SslOpts::default()
                .with_root_certs(roots)
                .with_disable_built_in_roots(tls.ca_file.is_some())
                .with_danger_skip_domain_validation(!tls.check_name),
        );
    }
    Conn::new(opts).await
}

/// A heartbeat row's timestamp, and when it was written (primary) or read (replica).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub ts: i64,
    pub at: i64,
}

/// The heartbeat part of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Write the row (the primary).
    Write,
    /// Read the row: this round's write reached the primary, so now − ts is the lag.
    Read,
    /// No heartbeat this round (off, or the primary was not written).
    Skip,
}

/// `SHOW REPLICA STATUS` (MariaDB ≥ 10.5, MySQL ≥ 8.0.22), else `SHOW SLAVE STATUS`; column
/// names differ between MySQL's new spelling and the old one MariaDB keeps.
async fn replica_status(conn: &mut Conn) -> Result<Option<ReplicaSeen>, mysql_async::Error> {
    let rows: Vec<Row> = match conn.query("SHOW REPLICA STATUS").await {
        Ok(rows) => rows,
        // ER_PARSE_ERROR: an older server.
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => conn.query("SHOW SLAVE STATUS").await?,
        Err(e) => return Err(e),
    };
    let Some(row) = rows.first() else { return Ok(None) };
    let get = |names: &[&str]| text(row, names);
    let host = get(&["Master_Host", "Source_Host"]).unwrap_or_default();
    let port = get(&["Master_Port", "Source_Port"]).unwrap_or_default();
    let error = |errno: &[&str], message: &[&str]| {
        get(errno).filter(|n| n != "0").map(|n| format!("{n}: {}", get(message).unwrap_or_default()))
    };
    Ok(Some(ReplicaSeen {
        source: format!("{host}:{port}"),
        io: get(&["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or_default(),
        sql: get(&["Slave_SQL_Running", "Replica_SQL_Running"]).unwrap_or_default(),
        last_error: error(&["Last_SQL_Errno"], &["Last_SQL_Error"])
            .or_else(|| error(&["Last_IO_Errno"], &["Last_IO_Error"])),
        seconds_behind: get(&["Seconds_Behind_Master", "Seconds_Behind_Source"]).and_then(|s| s.parse().ok()),
        io_gtid: get(&["Gtid_IO_Pos"]),
    }))
}

/// A column by any of its names, as text; NULL and missing columns are `None`.
fn text(row: &Row, names: &[&str]) -> Option<String> {
    let i = row.columns_ref().iter().position(|c| names.iter().any(|n| c.name_str() == *n))?;
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true)),
    }
}
