//! The seeds' database tier in the lab: a MariaDB primary on db1 replicating to db2.

use std::time::Duration;

use foobar_tests::{gate::Need, mariadb::Replication, topology::*};
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    vec![gated("db_lab::primary_replicates_to_the_replica", &[Need::Root], replicates)]
}

fn replicates() {
    let stack = Stack::build();
    let db = Replication::start(&stack.db1, DB1, &stack.db2, DB2);
    let status = db.replica.replica_status();
    let field = |k: &str| status.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(field("Slave_IO_Running"), "Yes", "{status:?}");
    assert_eq!(field("Slave_SQL_Running"), "Yes", "{status:?}");
    assert_eq!(field("Master_Host"), DB1);
    // The demo schema is there, and a write on the primary reaches the replica.
    db.primary.sql("INSERT INTO demo.visits (id, web) VALUES (1, 'client')");
    db.wait_caught_up(Duration::from_secs(10));
    assert_eq!(db.replica.sql("SELECT web FROM demo.visits WHERE id = 1").trim(), "client");
    assert_eq!(db.replica.sql("SELECT @@read_only").trim(), "1", "the replica must be read-only");
    assert_eq!(db.primary.sql("SELECT @@read_only").trim(), "0");
    // The monitor user exists on both (created before replication started, replicated since).
    let grants = db.replica.sql("SHOW GRANTS FOR 'foobar_monitor'@'%'");
    assert!(grants.contains("REPLICATION CLIENT") || grants.contains("BINLOG MONITOR"), "{grants}");
}
