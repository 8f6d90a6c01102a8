//! Moving the MariaDB primary in the lab, under the app's write load through
//! `db-write.foobar.com`: a planned switchover, a SIGKILLed primary with auto_failover, a
//! partition that cuts only foobar from the primary, and the old primary coming back.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use foobar::control::protocol::{Request, Response};
use foobar_tests::{
    app,
    daemon::{RunningDaemon, assert_metrics, lab_config},
    gate::Need,
    mariadb::Replication,
    netns::Netns,
    topology::*,
};
use libtest_mimic::Trial;

use crate::{
    firewall_lab::LAB_CONFIG,
    gated,
    replication_lab::{resolve, server},
};

pub fn trials() -> Vec<Trial> {
    const NEEDS: &[Need] = &[Need::Root, Need::Bpf];
    vec![
        gated("failover_lab::switchover_under_write_load_loses_no_acknowledged_row", NEEDS, switchover),
        gated("failover_lab::a_killed_primary_fails_over_and_comes_back_fenced", NEEDS, failover),
        gated("failover_lab::a_partition_from_foobar_alone_never_fails_over", NEEDS, partition),
        gated("failover_lab::an_old_primary_with_errant_transactions_is_flagged_not_joined", NEEDS, errant),
    ]
}

/// lab.toml with the replication user switchover needs, and `extra` keys under [replication].
fn config(node: &Netns, extra: &str) -> String {
    let password = node.scratch("replication.pass");
    LAB_CONFIG.replacen(
        "heartbeat_table = \"foobar_monitor.heartbeat\"",
        &format!(
            "heartbeat_table = \"foobar_monitor.heartbeat\"\nreplication_user = \"repl\"\n\
             replication_password_file = {:?}\n{extra}",
            password.display().to_string()
        ),
        1,
    )
}

/// The lab with both databases (allowed to fail over) and the app, not the daemon yet.
fn lab() -> (Stack, Replication, foobar_tests::netns::Spawned) {
    let stack = Stack::build();
    let db = Replication::start(&stack.db1, DB1, &stack.db2, DB2);
    db.allow_failover(&stack.node.scratch("replication.pass"));
    let app = app::start(&stack.app, Path::new(env!("CARGO_BIN_EXE_lab-app")));
    (stack, db, app)
}

/// One `/app` request's outcome: when it ended, and the visit id written or the error.
type Outcome = (Instant, Result<u64, String>);

/// The app's write load: `/app` requests one after another (each looks db-write up through
/// foobar's DNS and commits one row) until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Outcome>>,
}

impl Load {
    fn start(app_ns: &Netns) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, flag) = (app_ns.clone(), stop.clone());
        let url = format!("http://{APP}:{}/app", app::PORT);
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let page = ns.output(&["curl", "-sS", "--max-time", "3", &url]);
                let text = String::from_utf8_lossy(&page.stdout).into_owned();
                let id = text
                    .strip_prefix("app: visit ")
                    .and_then(|t| t.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok());
                out.push((Instant::now(), id.ok_or(text)));
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        });
        Load { stop, thread }
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("load thread")
    }
}

/// The longest time no write succeeded: from the last success before a run of failures to the
/// first success after it.
fn write_gap(outcomes: &[Outcome]) -> Duration {
    let ok: Vec<Instant> = outcomes.iter().filter(|(_, r)| r.is_ok()).map(|(t, _)| *t).collect();
    ok.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// Every acknowledged visit id is on `db` (the new primary).
fn assert_all_present(outcomes: &[Outcome], db: &foobar_tests::mariadb::Mariadb) {
    let have: std::collections::HashSet<u64> =
        db.sql("SELECT id FROM demo.visits").lines().filter_map(|l| l.trim().parse().ok()).collect();
    let acked: Vec<u64> = outcomes.iter().filter_map(|(_, r)| r.as_ref().ok().copied()).collect();
    let lost: Vec<&u64> = acked.iter().filter(|id| !have.contains(id)).collect();
    assert!(acked.len() > 20, "too few writes acknowledged: {}", acked.len());
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged rows are missing on the new primary: {lost:?}",
        lost.len(),
        acked.len()
    );
}

fn field(db: &foobar_tests::mariadb::Mariadb, name: &str) -> String {
    db.replica_status().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_default()
}

fn switchover() {
    let (stack, db, _app) = lab();
    let text = config(&stack.node, "max_lag = \"2s\"");
    let text = text.replacen("max_lag = \"5s\"", "", 1);
    let daemon = RunningDaemon::start_with(&stack.node, &lab_config(&stack.node, &text, false));
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| server(r, "db2").state == "healthy");

    // Refused while db2 lags: nothing changes, db1 stays writable.
    db.replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 4; START SLAVE;");
    db.primary.sql("CREATE TABLE demo.pad (id INT AUTO_INCREMENT PRIMARY KEY)");
    let lagging = Instant::now();
    while server(&daemon.status(), "db2").state != "lagging" {
        assert!(lagging.elapsed() < Duration::from_secs(8), "db2 never lagged: {:?}", server(&daemon.status(), "db2"));
        db.primary.sql("INSERT INTO demo.pad VALUES ()");
        std::thread::sleep(Duration::from_millis(200));
    }
    match daemon.request(Request::DbSwitchover { to: "db2".into() }) {
        Response::Error { message } => {
            assert!(message.starts_with("switchover refused: db2 is lagging (lag "), "{message}");
            assert!(message.contains("within max_lag 2s"), "{message}");
        }
        other => panic!("a switchover to a lagging replica: {other:?}"),
    }
    assert_eq!(db.primary.sql("SELECT @@read_only").trim(), "0", "the refused switchover touched db1");
    match daemon.request(Request::DbSwitchover { to: "db9".into() }) {
        Response::Error { message } => assert_eq!(message, "no database server `db9`; the servers are db1, db2"),
        other => panic!("{other:?}"),
    }
    db.replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE;");
    daemon.wait_for(Duration::from_secs(10), "db2 healthy again", |r| server(r, "db2").state == "healthy");

    // Under the app's writes, with one long-held session on db1 (a connection pool's, say).
    let password = format!("--password={}", foobar_tests::mariadb::APP_PASSWORD);
    let user = format!("--user={}", foobar_tests::mariadb::APP_USER);
    let argv = ["mariadb", "--no-defaults", "--host", DB1, &user, &password, "-e", "SELECT SLEEP(60)"];
    let mut held = stack.app.spawn(&argv, &stack.app.scratch("held-session.log"));
    let load = Load::start(&stack.app);
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let answer = daemon.request(Request::DbSwitchover { to: "db2".into() });
    let took = started.elapsed();
    let message = match answer {
        Response::Done { message } => message,
        other => panic!("switchover: {other:?}"),
    };
    assert!(message.starts_with("switchover: db2 promoted at 0-1-"), "{message}");
    assert!(message.ends_with("; 1 client sessions on db1 ended"), "{message}");
    assert!(held.wait_done(Duration::from_secs(2)), "the session held on db1 was not ended");
    std::thread::sleep(Duration::from_secs(3));
    let outcomes = load.finish();
    let gap = write_gap(&outcomes);
    let failed = outcomes.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "switchover took {took:?}; {} writes, {failed} failed, longest gap between acknowledged writes {gap:?}: {message}",
        outcomes.len()
    );
    assert!(gap < Duration::from_secs(2), "writes stopped for {gap:?}");
    assert_all_present(&outcomes, &db.replica);

    // db2 is the primary, db1 replicates from it; DNS follows.
    assert_eq!(db.replica.sql("SELECT @@read_only").trim(), "0");
    assert_eq!(db.primary.sql("SELECT @@read_only").trim(), "1");
    assert_eq!(
        (field(&db.primary, "Master_Host"), field(&db.primary, "Slave_IO_Running")),
        (DB2.to_owned(), "Yes".to_owned())
    );
    let report = daemon.status();
    let repl = report.replication.as_ref().expect("replication");
    assert_eq!((repl.primary.as_str(), repl.switchovers), ("db2", 1), "{repl:?}");
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB2);
    daemon.wait_for(Duration::from_secs(5), "db1 a healthy replica", |r| server(r, "db1").state == "healthy");
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB1);
    assert_metrics(
        &stack.node,
        &[
            "foobar_replication_primary{server=\"db2\"} 1",
            "foobar_replication_primary{server=\"db1\"} 0",
            "foobar_replication_switchovers_total 1",
            "foobar_replication_state{server=\"db1\",role=\"replica\",state=\"healthy\"} 1",
        ],
    );

    // A restart keeps db2 the primary (the state file), whatever the config's `primary` says.
    drop(daemon);
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(5), "db2 still the primary", |r| {
        r.replication.as_ref().is_some_and(|d| d.primary == "db2" && d.write == [DB2.to_owned()])
    });
    assert_eq!(server(&daemon.status(), "db2").role, "primary");
}

fn failover() {
    let (stack, mut db, _app) = lab();
    let text = config(&stack.node, "auto_failover = true\nfailover_after = 2\nauto_rejoin = true");
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| server(r, "db2").state == "healthy");
    let load = Load::start(&stack.app);
    std::thread::sleep(Duration::from_secs(2));
    db.primary.process.kill();
    let killed = Instant::now();
    let took = daemon.wait_for(Duration::from_secs(10), "db2 promoted", |r| {
        r.replication.as_ref().is_some_and(|d| d.primary == "db2" && d.write == [DB2.to_owned()])
    });
    std::thread::sleep(Duration::from_secs(3));
    let outcomes = load.finish();
    let after_kill: Vec<Outcome> = outcomes.iter().filter(|(t, _)| *t > killed).cloned().collect();
    let resumed = after_kill.iter().find(|(_, r)| r.is_ok()).map(|(t, _)| *t - killed);
    let gap = write_gap(&outcomes);
    eprintln!("failover: promoted {took:?} after the kill, writes resumed after {resumed:?}, longest gap {gap:?}");
    let resumed = resumed.expect("no write succeeded after the failover");
    assert!(resumed < Duration::from_secs(5), "writes resumed only after {resumed:?}");
    assert_all_present(&outcomes, &db.replica);
    let report = daemon.status();
    let repl = report.replication.as_ref().expect("replication");
    assert_eq!(repl.failovers, 1, "{repl:?}");
    let change = repl.last_change.clone().unwrap_or_default();
    assert!(
        change.starts_with("failover: db2 promoted at 0-1-") && change.contains("db1 was semi-synchronous"),
        "{change}"
    );
    assert!(change.contains("it had everything db1 had at its last check"), "{change}");
    assert_eq!(db.replica.sql("SELECT @@read_only").trim(), "0");
    assert_metrics(
        &stack.node,
        &["foobar_replication_failovers_total 1", "foobar_replication_primary{server=\"db2\"} 1"],
    );

    // db1 comes back (with read_only off, as a crashed primary restarts): fenced at once, kept
    // out of db-write, then rejoined as db2's replica or flagged for a person.
    db.primary.restart();
    let back = Instant::now();
    let fenced = loop {
        if db.primary.sql("SELECT @@read_only").trim() == "1" {
            break back.elapsed();
        }
        assert!(back.elapsed() < Duration::from_secs(5), "db1 still writable 5 s after it came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB2);
    daemon.wait_for(Duration::from_secs(10), "db1 rejoined or flagged", |r| {
        let s = server(r, "db1");
        s.state == "healthy" || s.flagged.is_some()
    });
    let db1 = server(&daemon.status(), "db1");
    eprintln!("old primary fenced {fenced:?} after it came back; then {}: {:?}", db1.state, db1.flagged);
    if db1.state == "healthy" {
        assert_eq!(field(&db.primary, "Master_Host"), DB2);
        assert_eq!(resolve(&stack, "db-read.foobar.com"), DB1);
    } else {
        assert!(db1.flagged.as_deref().is_some_and(|f| f.starts_with("holds transactions db2 never had")), "{db1:?}");
    }
}

fn partition() {
    let (stack, db, _app) = lab();
    let text = config(&stack.node, "auto_failover = true\nfailover_after = 2");
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| server(r, "db2").state == "healthy");
    // db1 drops what comes from the node only; db2 keeps replicating from it.
    stack.db1.exec(&["nft", "add table inet cut"]);
    stack.db1.exec(&["nft", "add chain inet cut in { type filter hook input priority 0; }"]);
    stack.db1.exec(&["nft", &format!("add rule inet cut in ip saddr {NODE_BACK} drop")]);
    daemon.wait_for(Duration::from_secs(10), "failover refused", |r| {
        r.replication.as_ref().is_some_and(|d| d.failover_refused)
    });
    std::thread::sleep(Duration::from_secs(3));
    let report = daemon.status();
    let repl = report.replication.as_ref().expect("replication");
    assert_eq!((repl.primary.as_str(), repl.failovers), ("db1", 0), "{repl:?}");
    assert_eq!(
        repl.failover.as_deref(),
        Some(
            "failover refused: db2 still replicates from db1 (its IO thread runs): only foobar lost db1, so nothing is promoted"
        )
    );
    assert_eq!(db.replica.sql("SELECT @@read_only").trim(), "1", "db2 was made writable");
    assert_eq!(field(&db.replica, "Slave_IO_Running"), "Yes");
    assert_metrics(&stack.node, &["foobar_replication_failover_refused 1", "foobar_replication_failovers_total 0"]);
    stack.db1.exec(&["nft", "delete table inet cut"]);
    daemon.wait_for(Duration::from_secs(5), "db1 up again", |r| {
        r.replication.as_ref().is_some_and(|d| d.failover.is_none() && d.write == [DB1.to_owned()])
    });
}

fn errant() {
    let (stack, mut db, _app) = lab();
    let text = config(&stack.node, "auto_failover = true\nfailover_after = 2\nauto_rejoin = true");
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| server(r, "db2").state == "healthy");
    // db2 stops receiving, and db1 commits a row db2 never gets (semi-synchronous replication
    // gives up waiting after its 2 s timeout); the monitor sees db1's position, then db1 dies.
    db.replica.sql("STOP SLAVE IO_THREAD");
    db.primary.sql("INSERT INTO demo.visits (web) VALUES ('errant')");
    let errant_gtid = db.primary.sql("SELECT @@gtid_binlog_pos").trim().to_owned();
    daemon.wait_for(Duration::from_secs(3), "db1's errant position seen", |r| {
        server(r, "db1").gtid.as_deref() == Some(errant_gtid.as_str())
    });
    db.primary.process.kill();
    daemon.wait_for(Duration::from_secs(10), "db2 promoted", |r| {
        r.replication.as_ref().is_some_and(|d| d.primary == "db2" && d.write == [DB2.to_owned()])
    });
    let change = daemon.status().replication.and_then(|d| d.last_change).unwrap_or_default();
    assert!(
        // The heartbeat goes on writing on db1 until it dies: db1 may be a row or two further.
        change.contains("it lacks 0-1-")
            && change.contains("that db1 had at its last check")
            && change.contains("db1 was asynchronous at its last check"),
        "{change}"
    );

    db.primary.restart();
    daemon.wait_for(Duration::from_secs(10), "db1 flagged", |r| server(r, "db1").flagged.is_some());
    let db1 = server(&daemon.status(), "db1");
    let flag = db1.flagged.clone().unwrap_or_default();
    let seq = |g: &str| g.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let (held, promoted) = flag
        .strip_prefix("holds transactions db2 never had (")
        .and_then(|rest| rest.split_once(", beyond "))
        .map(|(held, rest)| (seq(held), seq(rest.split(',').next().unwrap_or(""))))
        .unwrap_or_else(|| panic!("{flag}"));
    assert!(held >= seq(&errant_gtid) && promoted < seq(&errant_gtid), "errant {errant_gtid}: {flag}");
    assert_eq!(db.primary.sql("SELECT @@read_only").trim(), "1", "the old primary is fenced");
    assert!(db.primary.replica_status().is_empty(), "db1 was joined to db2: {:?}", db.primary.replica_status());
    assert_eq!(resolve(&stack, "db-write.foobar.com"), DB2);
    assert_eq!(resolve(&stack, "db-read.foobar.com"), DB2, "a flagged server takes no reads");
    assert_metrics(&stack.node, &["foobar_replication_flagged{server=\"db1\"} 1"]);
    eprintln!("errant old primary flagged: {flag}");
}
