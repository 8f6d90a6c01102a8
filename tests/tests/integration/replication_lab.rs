//! The replication monitor against real MariaDB in the lab: db1 primary, db2 replica, the
//! daemon on the node watching both and answering `db-write` / `db-read` from what it sees.

use std::time::{Duration, Instant};

use foobar::control::protocol::{DbServerStatus, Request, Response, StatusReport};
use foobar_tests::{
    daemon::{RunningDaemon, assert_metrics, lab_config, password_file},
    gate::Need,
    mariadb::Replication,
    tls::LabCa,
    topology::*,
};
use libtest_mimic::Trial;

use crate::{dns_lab::dig, firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    const NEEDS: &[Need] = &[Need::Root, Need::Bpf];
    vec![
        gated("replication_lab::stopped_sql_thread_breaks_the_replica_and_moves_db_read", NEEDS, broken),
        gated("replication_lab::master_delay_shows_as_heartbeat_lag", NEEDS, lagging),
        gated("replication_lab::dead_primary_is_unreachable_and_the_rest_goes_on", NEEDS, primary_dies),
        gated("replication_lab::bad_credentials_port_and_grants_are_explained", NEEDS, misconfigured),
        gated("replication_lab::a_failing_heartbeat_keeps_db_write_answering", NEEDS, heartbeat_fails),
        gated("replication_lab::a_null_where_a_number_belongs_does_not_stop_the_monitor", NEEDS, null_heartbeat),
        gated("replication_lab::a_hung_server_costs_its_timeout_and_wrong_roles_are_reported", NEEDS, hung_and_roles),
        gated("replication_lab::tls_to_servers_that_refuse_plain_tcp", NEEDS, tls),
        gated("replication_lab::monitors_on_two_nodes_keep_a_heartbeat_row_each", NEEDS, two_monitors),
    ]
}

/// One server's line in `status`.
pub(crate) fn server(report: &StatusReport, name: &str) -> DbServerStatus {
    let db = report.replication.as_ref().expect("status has a replication section");
    db.servers.iter().find(|s| s.name == name).cloned().unwrap_or_else(|| panic!("no server {name}: {db:?}"))
}

fn state_of(report: &StatusReport, name: &str) -> String {
    server(report, name).state
}

/// `dig +short NAME` from the client, through foobar's DNS.
pub(crate) fn resolve(stack: &Stack, name: &str) -> String {
    dig(&stack.client, &["+short", name]).trim().to_owned()
}

/// The lab with both databases replicating and the daemon on `config` (lab.toml's shape).
fn lab(config: &str) -> (Stack, Replication, RunningDaemon) {
    let stack = Stack::build();
    let db = Replication::start(&stack.db1, DB1, &stack.db2, DB2);
    let daemon = RunningDaemon::start(&stack.node, config);
    (stack, db, daemon)
}

fn broken() {
    let (stack, db, daemon) = lab(LAB_CONFIG);
    // The first round creates the heartbeat row; the replica has it from the next.
    daemon.wait_for(Duration::from_secs(5), "db2 healthy by heartbeat", |r| {
        let s = server(r, "db2");
        s.state == "healthy" && s.heartbeat_lag.is_some()
    });
    let report = daemon.status();
    let (db1, db2) = (server(&report, "db1"), server(&report, "db2"));
    assert_eq!((db1.state.as_str(), db1.read_only, db1.server_id), ("up", Some(false), Some(1)), "{db1:?}");
    assert_eq!((db2.io_thread.as_deref(), db2.sql_thread.as_deref()), (Some("Yes"), Some("Yes")), "{db2:?}");
    let lag = db2.heartbeat_lag.expect("heartbeat lag measured");
    assert!(lag < 1.0, "fresh lab lag {lag}s: {db2:?}");
    assert!(db2.gtid.as_deref().is_some_and(|g| g.starts_with("0-1-")), "{db2:?}");
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB1);
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB2);
    // The heartbeat row came from the monitor on the primary, by replication on the replica;
    // nothing was written on the replica itself (its binlog has no GTID of its own server id).
    let binlog = db.replica.sql("SELECT @@gtid_binlog_state");
    assert!(binlog.contains("0-1-") && !binlog.contains("0-2-"), "the replica wrote itself: {binlog}");
    let rows = db.replica.sql("SELECT node FROM foobar_monitor.heartbeat");
    assert_eq!(rows.trim(), report.node.name, "one row, this node's");

    db.replica.sql("STOP SLAVE SQL_THREAD");
    let took = daemon.wait_for(Duration::from_secs(5), "db2 broken", |r| state_of(r, "db2") == "broken");
    assert!(took < Duration::from_secs(2), "broken noticed after {took:?}, more than two intervals");
    eprintln!("fresh heartbeat lag {lag:.3} s; stopped SQL thread noticed after {took:?}");
    let db2 = server(&daemon.status(), "db2");
    assert_eq!(db2.reason, "SQL thread stopped", "{db2:?}");
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB1, "reads move to the primary");
    assert_metrics(
        &stack.node,
        &[
            "foobar_replication_state{server=\"db2\",role=\"replica\",state=\"broken\"} 1",
            "foobar_replication_state{server=\"db1\",role=\"primary\",state=\"up\"} 1",
            "foobar_replication_thread_running{server=\"db2\",thread=\"sql\"} 0",
            "foobar_replication_thread_running{server=\"db2\",thread=\"io\"} 1",
            "foobar_replication_lag_seconds{server=\"db2\",source=\"heartbeat\"}",
        ],
    );

    db.replica.sql("START SLAVE SQL_THREAD");
    daemon.wait_for(Duration::from_secs(5), "db2 healthy again", |r| state_of(r, "db2") == "healthy");
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB2);
    let rendered = foobar::cli::status::render(&daemon.status());
    assert!(rendered.contains("replication  db-write -> 198.51.100.31  db-read -> 198.51.100.32"), "{rendered}");
}

fn lagging() {
    // Well over max_lag even as read from below: see the bounds at the end.
    const DELAY: f64 = 5.0;
    let config = LAB_CONFIG.replacen(r#"max_lag = "5s""#, r#"max_lag = "2s""#, 1);
    let (stack, db, daemon) = lab(&config);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| state_of(r, "db2") == "healthy");
    db.replica.sql(&format!("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {DELAY}; START SLAVE;"));
    // A write load on the primary, next to the monitor's own heartbeat writes.
    db.primary.sql("CREATE TABLE demo.load (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))");
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut lags = Vec::new();
    while Instant::now() < deadline {
        db.primary.sql("INSERT INTO demo.load (at) VALUES (NOW(6))");
        let s = server(&daemon.status(), "db2");
        // A round whose heartbeat read failed judges by Seconds_Behind_Master instead (and
        // says so): only heartbeat readings are measured here.
        if let ("lagging", Some(lag)) = (s.state.as_str(), s.heartbeat_lag) {
            lags.push(lag);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(lags.len() >= 8, "db2 was lagging in only {} samples", lags.len());
    // The last few seconds, once the delay is in full effect. MariaDB holds an event until its
    // whole-second timestamp plus MASTER_DELAY, so a row written at fraction f of a second is
    // really held DELAY − f; the heartbeat reading is the age of the oldest row not applied yet,
    // up to one write spacing (1 s) below that. Either way it never reads above DELAY.
    for lag in &lags[lags.len() - 8..] {
        let (low, high) = (DELAY - 2.0 - 0.05, DELAY + 0.25);
        assert!((low..=high).contains(lag), "measured lag {lag}s vs delay {DELAY}s: {lags:?}");
    }
    eprintln!("MASTER_DELAY {DELAY} s measured as {:?} s", &lags[lags.len() - 8..]);
    daemon.wait_for(Duration::from_secs(3), "db2 lagging by heartbeat", |r| {
        server(r, "db2").reason.contains("by heartbeat > max_lag 2s")
    });
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB1, "a lagging replica leaves db-read");
}

fn primary_dies() {
    let (stack, mut db, daemon) = lab(LAB_CONFIG);
    let _web1 = foobar_tests::nginx::start(&stack.web1, "web1");
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| state_of(r, "db2") == "healthy");
    let errors_before = server(&daemon.status(), "db2").check_errors;
    db.primary.process.kill();
    // lab.toml: interval 1s, timeout 500ms.
    let took = daemon.wait_for(Duration::from_secs(5), "db1 unreachable", |r| state_of(r, "db1") == "unreachable");
    assert!(took <= Duration::from_millis(1500 + 300), "unreachable after {took:?}");
    eprintln!("killed primary unreachable after {took:?}");
    assert!(server(&daemon.status(), "db1").reason.starts_with("db1 (198.51.100.31:3306): "));
    // The open connection broke first; the next round's connect is refused.
    daemon.wait_for(Duration::from_secs(3), "connection refused", |r| {
        server(r, "db1").reason.contains("db1 (198.51.100.31:3306): connection refused")
    });
    assert_eq!(resolve(&stack, "db-write.foobar.com"), "", "no writable primary to answer");
    // The replica is still checked for real: its IO thread lost the primary.
    daemon.wait_for(Duration::from_secs(5), "db2 broken", |r| state_of(r, "db2") == "broken");
    let db2 = server(&daemon.status(), "db2");
    assert_eq!(db2.check_errors, errors_before, "db2's checks kept working: {db2:?}");
    // The daemon goes on: DNS answers, the control socket answers.
    assert_eq!(resolve(&stack, "www.foobar.com"), VIP);
    assert!(matches!(daemon.request(Request::Status), Response::Status(_)));
}

fn misconfigured() {
    let (stack, db, daemon) = lab(LAB_CONFIG);
    daemon.wait_for(Duration::from_secs(5), "db1 up", |r| state_of(r, "db1") == "up");
    let reload = |text: &str| {
        std::fs::write(&daemon.config_file, text).expect("config");
        match daemon.request(Request::Reload) {
            Response::Done { .. } => {}
            other => panic!("reload: {other:?}"),
        }
    };
    let reason_within = |what: &str, pred: &dyn Fn(&DbServerStatus) -> bool| {
        daemon.wait_for(Duration::from_secs(5), what, |r| pred(&server(r, "db1")));
        server(&daemon.status(), "db1").reason
    };

    // A wrong password: the reload rereads the file and the monitor starts again with it.
    std::fs::write(password_file(&stack.node), "not-the-password").expect("password");
    reload(&std::fs::read_to_string(&daemon.config_file).expect("config"));
    let why = reason_within("login refused", &|s| s.reason.contains("refused the monitor's login"));
    assert!(why.starts_with("db1 (198.51.100.31:3306) refused the monitor's login: Access denied"), "{why}");
    assert!(why.contains("replication.password_file") && why.contains("`foobar_monitor`"), "{why}");
    assert_eq!(state_of(&daemon.status(), "db1"), "unreachable");

    // No password file at all: the reload is refused, naming the file, and nothing changes.
    std::fs::remove_file(password_file(&stack.node)).expect("remove password file");
    match daemon.request(Request::Reload) {
        Response::Error { message } => {
            assert!(message.contains("replication.password_file") && message.contains("No such file"), "{message}");
        }
        other => panic!("reload without a password file: {other:?}"),
    }
    assert_eq!(state_of(&daemon.status(), "db1"), "unreachable", "the running monitor carries on");

    // A wrong port.
    let text = lab_config(&stack.node, LAB_CONFIG, true).replacen("198.51.100.31:3306", "198.51.100.31:3307", 1);
    reload(&text);
    let why = reason_within("refused", &|s| s.reason.contains("connection refused"));
    assert_eq!(
        why,
        "db1 (198.51.100.31:3307): connection refused: is the server running, and is \
         replication.primary.address the port it listens on?"
    );

    // Back to good, then a missing grant.
    reload(&lab_config(&stack.node, LAB_CONFIG, true));
    reason_within("db1 up", &|s| s.state == "up");
    // Global grants apply from the next login: end the monitor's sessions, as a DBA would.
    db.primary.sql("REVOKE SLAVE MONITOR ON *.* FROM 'foobar_monitor'@'%'");
    let sessions = db.primary.sql("SELECT id FROM information_schema.processlist WHERE user = 'foobar_monitor'");
    for id in sessions.split_whitespace() {
        db.primary.sql(&format!("KILL {id}"));
    }
    let why = reason_within("missing grant", &|s| s.reason.contains("lacks a grant"));
    assert!(why.starts_with("db1 (198.51.100.31:3306): `foobar_monitor` lacks a grant: Access denied"), "{why}");
    assert!(why.contains("GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'foobar_monitor'@'%'"), "{why}");
}

/// The heartbeat's grant taken away on the primary: the monitor says the heartbeat fails and
/// why, judges lag by Seconds_Behind_Master and says so, and `db-write` keeps answering the
/// primary, which is up and writable.
fn heartbeat_fails() {
    let (stack, db, daemon) = lab(LAB_CONFIG);
    // README's grants alone: the monitor created its database and the row reached db2.
    daemon.wait_for(Duration::from_secs(5), "db2 healthy by heartbeat", |r| server(r, "db2").heartbeat_lag.is_some());
    db.primary.sql("REVOKE INSERT, UPDATE ON foobar_monitor.* FROM 'foobar_monitor'@'%'");
    // Grants apply from the next login: end the monitor's sessions, as a DBA would.
    let sessions = db.primary.sql("SELECT id FROM information_schema.processlist WHERE user = 'foobar_monitor'");
    for id in sessions.split_whitespace() {
        db.primary.sql(&format!("KILL {id}"));
    }
    daemon.wait_for(Duration::from_secs(5), "db1's heartbeat failing", |r| server(r, "db1").heartbeat_error.is_some());
    // Some rounds later, still so.
    std::thread::sleep(Duration::from_secs(2));
    let report = daemon.status();
    let (db1, db2) = (server(&report, "db1"), server(&report, "db2"));
    assert_eq!(db1.state, "up", "{db1:?}");
    let why = db1.heartbeat_error.clone().unwrap_or_default();
    assert!(
        why.contains("`foobar_monitor` lacks a grant") && why.contains("GRANT SELECT, INSERT, UPDATE, CREATE"),
        "{why}"
    );
    assert_eq!(db2.state, "healthy", "{db2:?}");
    assert!(db2.reason.contains("by Seconds_Behind_Master") && db2.reason.contains("heartbeat fails"), "{db2:?}");
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB1);
    let rendered = foobar::cli::status::render(&report);
    assert!(rendered.contains("! db1: heartbeat failing: db1 (198.51.100.31:3306)"), "{rendered}");
    assert_metrics(
        &stack.node,
        &[
            r#"foobar_replication_heartbeat_failing{server="db1"} 1"#,
            r#"foobar_replication_state{server="db1",role="primary",state="up"} 1"#,
        ],
    );
}

/// The replica's heartbeat row reads NULL (a trigger there, as a DBA's mistake would): the
/// monitor reports it, judges db2 by Seconds_Behind_Master and keeps checking, so a stopped SQL
/// thread afterwards still shows. (mysql_async's typed reads panic on such a value.)
fn null_heartbeat() {
    let (_stack, db, daemon) = lab(LAB_CONFIG);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy by heartbeat", |r| server(r, "db2").heartbeat_lag.is_some());
    db.replica.sql(
        "SET SESSION sql_log_bin = 0; \
         ALTER TABLE foobar_monitor.heartbeat MODIFY ts BIGINT NULL; \
         CREATE TRIGGER foobar_monitor.nulls BEFORE UPDATE ON foobar_monitor.heartbeat \
           FOR EACH ROW SET NEW.ts = NULL; \
         SET GLOBAL slave_run_triggers_for_rbr = YES; \
         UPDATE foobar_monitor.heartbeat SET ts = NULL;",
    );
    daemon.wait_for(Duration::from_secs(5), "db2's heartbeat failing", |r| server(r, "db2").heartbeat_error.is_some());
    let db2 = server(&daemon.status(), "db2");
    let why = db2.heartbeat_error.clone().unwrap_or_default();
    assert!(why.contains("an answer of a type the monitor does not expect: ts = NULL"), "{why}");
    assert_eq!(db2.state, "healthy", "{db2:?}");
    assert!(db2.reason.contains("by Seconds_Behind_Master"), "{db2:?}");
    db.replica.sql("STOP SLAVE SQL_THREAD");
    daemon
        .wait_for(Duration::from_secs(5), "the monitor still checking: db2 broken", |r| state_of(r, "db2") == "broken");
    // Rounds keep coming (interval 1 s, timeout 500 ms), and status says how fresh the last is.
    let report = daemon.status();
    let age = report.replication.as_ref().and_then(|db| db.last_round_age_s).expect("the last round's age");
    assert!(age < 1.6, "last round {age}s ago");
    assert!(foobar::cli::status::render(&report).contains("s ago"), "the age in status");
}

fn hung_and_roles() {
    let (stack, db, daemon) = lab(LAB_CONFIG);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| state_of(r, "db2") == "healthy");
    let reload = |text: String| {
        std::fs::write(&daemon.config_file, text).expect("config");
        assert!(matches!(daemon.request(Request::Reload), Response::Done { .. }), "reload refused");
    };
    let config = |t: &str| lab_config(&stack.node, t, true);

    // A replica that accepts the connection and never says a word: unreachable once its
    // timeout (500 ms) is up, while the primary's checks go on as before.
    let _hung = foobar_tests::hung::start(&stack.db2, 3307);
    reload(config(&LAB_CONFIG.replacen("198.51.100.32:3306", "198.51.100.32:3307", 1)));
    daemon.wait_for(Duration::from_secs(5), "hung db2 unreachable", |r| state_of(r, "db2") == "unreachable");
    let report = daemon.status();
    let (db1, db2) = (server(&report, "db1"), server(&report, "db2"));
    assert_eq!(db2.reason, "db2 (198.51.100.32:3307): no answer within 500ms (replication.timeout)", "{db2:?}");
    assert!(db2.check_ms >= 500.0 && db2.check_ms < 700.0, "the hung check took {} ms", db2.check_ms);
    assert_eq!(db1.state, "up");
    assert!(db1.check_ms < 100.0, "db1's check took {} ms next to the hung one", db1.check_ms);

    // Roles swapped in the config: the "primary" replicates from db1, the "replica" from nobody.
    let swapped = LAB_CONFIG
        .replacen("198.51.100.31:3306", "PRIMARY", 1)
        .replacen("198.51.100.32:3306", "198.51.100.31:3306", 1)
        .replacen("PRIMARY", "198.51.100.32:3306", 1);
    reload(config(&swapped));
    daemon.wait_for(Duration::from_secs(5), "roles reported", |r| {
        server(r, "db1").topology.is_some() && state_of(r, "db2") == "broken"
    });
    let report = daemon.status();
    let (claimed_primary, claimed_replica) = (server(&report, "db1"), server(&report, "db2"));
    assert_eq!(claimed_primary.address, format!("{DB2}:3306"));
    assert_eq!(
        claimed_primary.topology.as_deref(),
        Some("the primary is itself a replica of 198.51.100.31:3306"),
        "{claimed_primary:?}"
    );
    assert_eq!(claimed_replica.reason, "not replicating: SHOW REPLICA STATUS is empty", "{claimed_replica:?}");
    // No heartbeat was written on the real replica: its binary log holds only db1's GTIDs.
    std::thread::sleep(Duration::from_secs(2));
    let binlog = db.replica.sql("SELECT @@gtid_binlog_state");
    assert!(!binlog.contains("0-2-"), "the monitor wrote on a replica: {binlog}");
}

/// Servers that take TCP over TLS only (`require_secure_transport`, replication included):
/// the monitor without `[replication.tls]` is refused and says so; with the lab CA it sees
/// db1 up and db2 healthy, and DNS answers them.
fn tls() {
    let stack = Stack::build();
    let ca = LabCa::create(&stack.node.scratch("db-tls"));
    let db = Replication::start_with(&stack.db1, DB1, &stack.db2, DB2, Some(&ca));
    let plain = RunningDaemon::start(&stack.node, LAB_CONFIG);
    plain.wait_for(Duration::from_secs(5), "db1 refused over plain TCP", |r| {
        let s = server(r, "db1");
        s.state == "unreachable" && s.reason.contains("if it takes TLS only, add [replication.tls]")
    });
    drop(plain);
    let text = format!("{LAB_CONFIG}\n[replication.tls]\nca_file = {:?}\n", ca.ca_cert.display().to_string());
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(5), "db1 up and db2 healthy over TLS", |r| {
        state_of(r, "db1") == "up" && state_of(r, "db2") == "healthy"
    });
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB1);
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB2);
    let accepted = db.primary.sql("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'");
    assert!(
        accepted.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0),
        "{accepted}"
    );
}

/// A second node's monitor (in the app namespace, as another foobar node on the back network
/// would be) watches the same servers: each keeps its own heartbeat row and measures its own
/// lag, so neither reads the other's timestamps. A table of the older one-row layout is
/// explained, not misread.
fn two_monitors() {
    let (stack, db, a) = lab(&LAB_CONFIG.replacen("[daemon]\n", "[daemon]\nnode_name = \"lb-a\"\n", 1));
    a.wait_for(Duration::from_secs(5), "db2 healthy by heartbeat", |r| server(r, "db2").heartbeat_lag.is_some());
    let replication = &LAB_CONFIG[LAB_CONFIG.find("[replication]").expect("[replication]")..][..LAB_CONFIG
        [LAB_CONFIG.find("[replication]").expect("[replication]")..]
        .find("[capacity]")
        .expect("[capacity]")];
    let second = |table: &str| {
        let text = format!(
            "[daemon]\ninterfaces = [\"eth0\"]\nnode_name = \"lb-b\"\npin_dir = \"/sys/fs/bpf/foobar\"\n\
             control_socket = \"/run/foobar/control.sock\"\nstate_file = \"/var/lib/foobar/state.json\"\n\
             metrics_listen = \"127.0.0.1:9469\"\n\n{}",
            replication.replacen("foobar_monitor.heartbeat", table, 1)
        );
        RunningDaemon::start(&stack.app, &text)
    };
    let b = second("foobar_monitor.heartbeat");
    b.wait_for(Duration::from_secs(5), "lb-b: db2 healthy by heartbeat", |r| server(r, "db2").heartbeat_lag.is_some());
    // Both write every second, a moment apart: each one's lag stays its own, fresh lab's.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut worst: f64 = 0.0;
    while Instant::now() < deadline {
        for (node, d) in [("lb-a", &a), ("lb-b", &b)] {
            let db2 = server(&d.status(), "db2");
            assert_eq!(db2.state, "healthy", "{node}: {db2:?}");
            worst = worst.max(db2.heartbeat_lag.unwrap_or(f64::MAX));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(worst < 1.0, "a monitor's heartbeat lag reached {worst}s with two monitors");
    let rows = db.replica.sql("SELECT node FROM foobar_monitor.heartbeat ORDER BY node");
    assert_eq!(rows.split_whitespace().collect::<Vec<_>>(), ["lb-a", "lb-b"], "a row per node on the replica");
    eprintln!("two monitors: worst heartbeat lag {worst:.3} s");
    drop(b);

    // An older foobar's table (one row, keyed by a literal id): said what to do, no lag misread.
    db.primary.sql("CREATE TABLE foobar_monitor.legacy (id INT UNSIGNED NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)");
    let b = second("foobar_monitor.legacy");
    b.wait_for(Duration::from_secs(5), "lb-b: db1's heartbeat failing", |r| server(r, "db1").heartbeat_error.is_some());
    let why = server(&b.status(), "db1").heartbeat_error.unwrap_or_default();
    assert!(
        why.contains("one-row layout of an older foobar") && why.contains("DROP TABLE foobar_monitor.legacy"),
        "{why}"
    );
    assert_eq!(server(&b.status(), "db1").state, "up");
}
