//! A failed check turned into one line naming the server and what to fix, for the log and
//! `foobar status`: a wrong password, a wrong port and a missing grant read differently.

use std::io::ErrorKind;

use mysql_async::{DriverError, Error, IoError};

use super::{Server, observe::Login};

/// A failed check, explained: which server, what went wrong, what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// Explains `error` from checking `server` with `login`.
pub fn explain(error: &Error, server: &Server, login: &Login<'_>) -> CheckFailed {
    CheckFailed(explanation(error, server, login))
}

fn explanation(error: &Error, server: &Server, login: &Login<'_>) -> String {
    let (user, table, tls) = (login.user, login.heartbeat_table, login.tls.is_some());
    let at = format!("{} ({})", server.name, server.addr);
    let database = table.and_then(|t| t.split_once('.')).map_or("foobar_monitor", |(db, _)| db);
    match error {
        Error::Server(e) => match e.code {
            // ER_ACCESS_DENIED_ERROR
            1045 => format!(
                "{at} refused the monitor's login: {}; make replication.password_file hold the password of \
                 `{user}`, and check that `replication.user` exists on {}{}",
                e.message,
                server.name,
                // MariaDB answers a plain login this way when it requires secure transport.
                if tls { "" } else { " (or, if it takes TLS only, add [replication.tls])" }
            ),
            // ER_HOST_NOT_PRIVILEGED
            1130 => format!(
                "{at} does not let this host log in: {}; create `{user}` for the node's back address",
                e.message
            ),
            // ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR,
            // ER_SPECIFIC_ACCESS_DENIED_ERROR
            1044 | 1142 | 1143 | 1227 => format!(
                "{at}: `{user}` lacks a grant: {}; on the primary run GRANT REPLICATION CLIENT, SLAVE MONITOR \
                 ON *.* TO '{user}'@'%'; GRANT SELECT, INSERT, UPDATE, CREATE ON {database}.* TO '{user}'@'%'",
                e.message
            ),
            // ER_BAD_DB_ERROR
            1049 => format!(
                "{at}: {}; create the heartbeat's database on the primary: CREATE DATABASE {database} \
                 (or set replication.heartbeat_table)",
                e.message
            ),
            // ER_BAD_FIELD_ERROR: the table of a foobar that kept one row for all nodes.
            1054 if table.is_some() => {
                let t = table.unwrap_or_default();
                format!(
                    "{at}: {}; {t} has the one-row layout of an older foobar: on the primary run DROP TABLE {t} \
                     and the monitor creates it again with a row per node",
                    e.message
                )
            }
            code => format!("{at}: server error {code}: {}", e.message),
        },
        Error::Io(IoError::Io(e)) => match e.kind() {
            ErrorKind::ConnectionRefused => format!(
                "{at}: connection refused: is the server running, and is {}.address the port it listens on?",
                server.key
            ),
            _ => format!("{at}: {e}"),
        },
        Error::Driver(DriverError::FromRow { row }) => {
            let values: Vec<String> = row
                .columns_ref()
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} = {}", c.name_str(), row.as_ref(i).map_or("?".into(), |v| v.as_sql(true))))
                .collect();
            format!("{at}: an answer of a type the monitor does not expect: {}", values.join(", "))
        }
        other => format!("{at}: {other}"),
    }
}
