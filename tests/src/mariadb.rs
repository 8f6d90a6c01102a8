//! Real MariaDB servers (Debian's) inside lab namespaces: a primary and a replica with GTID
//! replication, each with its own data directory, server id and binary log, plus the monitor
//! user foobar connects as, holding only the grants it needs.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    netns::{Netns, Spawned},
    tls::LabCa,
};

/// The replication user's password (lab only).
const REPL_PASSWORD: &str = "lab-replication";
/// The monitor user's password (lab only); foobar reads it from `replication.password_file`.
pub const MONITOR_PASSWORD: &str = "lab-monitor";
/// The demo app's database user and password (lab only).
pub const APP_USER: &str = "foobar_app";
pub const APP_PASSWORD: &str = "lab-app";

/// A running mariadbd and where it keeps its files.
pub struct Mariadb {
    pub process: Spawned,
    pub dir: PathBuf,
    pub ns: Netns,
    /// How it was started, to start it again on the same data.
    argv: Vec<String>,
}

impl Mariadb {
    /// Initialises a data directory and starts mariadbd on `addr:3306` in `ns`.
    pub fn start(ns: &Netns, name: &str, addr: &str, server_id: u32) -> Mariadb {
        Mariadb::start_with(ns, name, addr, server_id, None)
    }

    /// [`Mariadb::start`], accepting only TLS over TCP when `tls` gives the lab CA (with a
    /// certificate for `addr` it signs).
    pub fn start_with(ns: &Netns, name: &str, addr: &str, server_id: u32, tls: Option<&LabCa>) -> Mariadb {
        let dir = ns.scratch("mariadb");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mariadb dir");
        let data = dir.join("data");
        // A temporary directory of its own: parallel servers sharing /tmp trip over each
        // other's temporary tables while bootstrapping.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("mariadb tmp dir");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let d = dir.display();
        let args = [
            "mariadbd".to_owned(),
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--socket={d}/mysqld.sock"),
            format!("--pid-file={d}/mysqld.pid"),
            format!("--bind-address={addr}"),
            "--port=3306".to_owned(),
            format!("--server-id={server_id}"),
            format!("--log-bin={d}/{name}-bin"),
            "--binlog-format=ROW".to_owned(),
            "--log-slave-updates".to_owned(),
            "--skip-name-resolve".to_owned(),
            format!("--log-error={d}/error.log"),
            // Semi-synchronous both ways, so a switchover or failover keeps it: a commit is
            // acknowledged once a replica has it, and a primary with no replica does not wait.
            "--rpl-semi-sync-master-enabled=ON".to_owned(),
            "--rpl-semi-sync-slave-enabled=ON".to_owned(),
            "--rpl-semi-sync-master-wait-no-slave=OFF".to_owned(),
            "--rpl-semi-sync-master-timeout=2000".to_owned(),
        ];
        let mut args = args.to_vec();
        if let Some(ca) = tls {
            let (cert, key) = ca.issue(name, &format!("IP:{addr}"));
            args.extend([
                format!("--ssl-ca={}", ca.ca_cert.display()),
                format!("--ssl-cert={}", cert.display()),
                format!("--ssl-key={}", key.display()),
                "--require-secure-transport=ON".to_owned(),
            ]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = ns.spawn(&argv, &dir.join("stdout.log"));
        let m = Mariadb { process, dir, ns: ns.clone(), argv: args };
        m.wait_started();
        m
    }

    /// Starts the server again on its data (after [`Spawned::kill`]: a crash and a restart).
    pub fn restart(&mut self) {
        let argv: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        self.process = self.ns.spawn(&argv, &self.dir.join("stdout-again.log"));
        self.wait_started();
    }

    fn wait_started(&self) {
        let m = self;
        let deadline = Instant::now() + Duration::from_secs(30);
        while m.sql_raw("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd in {} did not start: {}",
                m.ns.name(),
                std::fs::read_to_string(m.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn sql_raw(&self, sql: &str) -> Result<String, String> {
        self.client(&["-N", "-B", "-e", sql])
    }

    fn client(&self, args: &[&str]) -> Result<String, String> {
        let socket = format!("--socket={}/mysqld.sock", self.dir.display());
        let mut cmd = vec!["mariadb", "--no-defaults", &socket, "-uroot"];
        cmd.extend_from_slice(args);
        let out = self.ns.output(&cmd);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL as root over the local socket; panics with the server's error.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_raw(sql).unwrap_or_else(|e| panic!("SQL in {} failed: {sql}: {e}", self.ns.name()))
    }

    /// `SHOW SLAVE STATUS` as (field, value) pairs.
    pub fn replica_status(&self) -> Vec<(String, String)> {
        let out = self.client(&["-B", "-e", "SHOW SLAVE STATUS"]).unwrap_or_else(|e| panic!("SHOW SLAVE STATUS: {e}"));
        let mut lines = out.lines();
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return Vec::new() };
        names.split('\t').zip(values.split('\t')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }
}

/// A primary and its replica, replicating by GTID, with the monitor user, the demo schema
/// (`demo.visits`) and the demo app's user on both.
pub struct Replication {
    pub primary: Mariadb,
    pub replica: Mariadb,
}

impl Replication {
    pub fn start(primary_ns: &Netns, primary_addr: &str, replica_ns: &Netns, replica_addr: &str) -> Replication {
        Replication::start_with(primary_ns, primary_addr, replica_ns, replica_addr, None)
    }

    /// [`Replication::start`], both servers accepting TCP over TLS only (replication too)
    /// with certificates from `tls`.
    pub fn start_with(
        primary_ns: &Netns,
        primary_addr: &str,
        replica_ns: &Netns,
        replica_addr: &str,
        tls: Option<&LabCa>,
    ) -> Replication {
        let primary = Mariadb::start_with(primary_ns, "db1", primary_addr, 1, tls);
        let replica = Mariadb::start_with(replica_ns, "db2", replica_addr, 2, tls);
        // Created before replication starts, so the replica gets the users by replication too.
        // The monitor's statements are README's, in its order: no CREATE DATABASE (the monitor
        // creates its heartbeat's database with the grant on it).
        primary.sql(&format!(
            "CREATE USER 'repl'@'%' IDENTIFIED BY '{REPL_PASSWORD}'; \
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'; \
             CREATE USER 'foobar_monitor'@'%' IDENTIFIED BY '{MONITOR_PASSWORD}'; \
             GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'foobar_monitor'@'%'; \
             GRANT SELECT, INSERT, UPDATE, CREATE ON foobar_monitor.* TO 'foobar_monitor'@'%'; \
             CREATE DATABASE demo; \
             CREATE TABLE demo.visits (id INT AUTO_INCREMENT PRIMARY KEY, web VARCHAR(32) NOT NULL, \
               at DATETIME(6) NOT NULL DEFAULT NOW(6)); \
             CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; \
             GRANT SELECT, INSERT ON demo.* TO '{APP_USER}'@'%';"
        ));
        replica.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='{primary_addr}', MASTER_PORT=3306, MASTER_USER='repl', \
             MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=slave_pos, MASTER_SSL={}; START SLAVE; \
             SET GLOBAL read_only=1;",
            u8::from(tls.is_some())
        ));
        Replication { primary, replica }
    }

    /// What switchover and failover need beyond README's monitoring grants: the monitor may
    /// set read_only, stop and point replication and end client sessions, and the replication
    /// user's password is where `replication.replication_password_file` points.
    pub fn allow_failover(&self, replication_password_file: &Path) {
        self.primary.sql(
            "GRANT READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, RELOAD, CONNECTION ADMIN, PROCESS ON *.* TO 'foobar_monitor'@'%'",
        );
        write_secret(replication_password_file, REPL_PASSWORD);
    }

    /// Waits until the replica has applied everything the primary has written (by GTID).
    pub fn wait_caught_up(&self, within: Duration) {
        let target = self.primary.sql("SELECT @@gtid_binlog_pos").trim().to_owned();
        let deadline = Instant::now() + within;
        loop {
            let have = self.replica.sql("SELECT @@gtid_slave_pos").trim().to_owned();
            if have == target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica at {have:?}, primary at {target:?}: {:?}",
                self.replica.replica_status()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes the monitor password where `replication.password_file` points, readable by its
/// owner only, as a secret should be.
pub fn write_password_file(path: &Path) {
    write_secret(path, MONITOR_PASSWORD);
}

/// Writes `secret` to `path`, readable by its owner only.
fn write_secret(path: &Path, secret: &str) {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("password file");
    f.write_all(secret.as_bytes()).expect("write password file");
}
