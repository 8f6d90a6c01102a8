//! The seeds' whole stack end to end, as `cargo xtask lab` runs it: the client finds
//! www.foobar.com through foobar's DNS, browses through the VIP, and `/app` reaches the app
//! server, which finds the databases through foobar's DNS too.

use std::{path::Path, time::Duration};

use foobar_tests::{
    app, daemon::RunningDaemon, gate::Need, mariadb::Replication, netns::Netns, nginx, topology::*, wrk,
};
use libtest_mimic::Trial;

use crate::{dns_lab::dig, firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    const NEEDS: &[Need] = &[Need::Root, Need::Bpf];
    vec![
        gated("e2e_lab::client_browses_by_name_and_the_app_follows_the_databases", NEEDS, by_name),
        gated("e2e_lab::web_servers_die_under_load_and_foobar_follows", NEEDS, web_servers_die_under_load),
    ]
}

/// `curl -sS URL` from the client (3 s at most), the body or the error.
fn get(client: &Netns, url: &str) -> String {
    let out = client.output(&["curl", "-sS", "--connect-timeout", "1", "--max-time", "3", url]);
    let text = if out.status.success() { &out.stdout } else { &out.stderr };
    String::from_utf8_lossy(text).trim().to_owned()
}

fn by_name() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let db = Replication::start(&stack.db1, DB1, &stack.db2, DB2);
    let _app = app::start(&stack.app, Path::new(env!("CARGO_BIN_EXE_lab-app")));
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    daemon.wait_for(Duration::from_secs(5), "db2 healthy", |r| {
        r.replication.as_ref().is_some_and(|d| d.servers.iter().any(|s| s.name == "db2" && s.state == "healthy"))
    });

    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP);
    // By name, as a browser would: the client's resolver is foobar's DNS.
    let pages: Vec<String> = (0..4).map(|_| get(&stack.client, "http://www.foobar.com/")).collect();
    let servers: Vec<&str> = pages.iter().map(|p| p.split_whitespace().next().unwrap_or("")).collect();
    assert!(servers == ["web1", "web2", "web1", "web2"] || servers == ["web2", "web1", "web2", "web1"], "{pages:?}");

    // /app: web server -> app -> db-write (db1) and db-read (db2), by name through foobar.
    let first = get(&stack.client, "http://www.foobar.com/app");
    let second = get(&stack.client, "http://www.foobar.com/app");
    for page in [&first, &second] {
        assert!(
            page.contains(&format!("written via db-write ({DB1})")) && page.contains(&format!("via db-read ({DB2})")),
            "{page}"
        );
    }
    assert!(first.contains("from web1") != second.contains("from web1"), "/app not balanced: {first} / {second}");
    db.wait_caught_up(Duration::from_secs(5));
    assert_eq!(db.replica.sql("SELECT COUNT(*) FROM demo.visits").trim(), "2", "both visits replicated");

    // Stop replication: db-read moves to the primary, and the app reads there.
    db.replica.sql("STOP SLAVE SQL_THREAD");
    daemon.wait_for(Duration::from_secs(5), "db2 broken", |r| {
        r.replication.as_ref().is_some_and(|d| d.read == [DB1.to_owned()])
    });
    let page = get(&stack.client, "http://www.foobar.com/app");
    assert!(page.contains(&format!("via db-read ({DB1})")), "{page}");

    // The firewall: only the VIP's allowed ports and DNS answer the client.
    for url in [format!("http://{WEB1}/"), format!("http://{APP}:{}/app", app::PORT), format!("http://{VIP}:22/")] {
        let out = get(&stack.client, &url);
        assert!(out.contains("Connection timed out") || out.contains("Timeout was reached"), "{url}: {out}");
    }
    let mysql = stack.client.output(&["timeout", "2", "bash", "-c", &format!("exec 3<>/dev/tcp/{DB1}/3306")]);
    assert!(!mysql.status.success(), "the client reached db1's MariaDB directly");
}

/// Under bounded wrk load: once a dead web1 is out, no request fails; once web2 dies too,
/// DNS stops answering www and the VIP refuses new connections at once.
fn web_servers_die_under_load() {
    let stack = Stack::build();
    let web1 = nginx::start(&stack.web1, "web1");
    let web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let url = format!("http://{VIP}/");
    let both = wrk::run(&stack.client, &url, wrk::Load::light(2, true));
    assert!(both.requests > 100 && both.failed() == 0, "with both up: {}", both.text);

    drop(web1);
    daemon.wait_for(Duration::from_secs(4), "web1 marked down", |r| {
        r.services[0].backends.iter().any(|b| b.name == "web1" && b.state == "down")
    });
    let alone = wrk::run(&stack.client, &url, wrk::Load::light(3, true));
    assert!(alone.requests > 100, "too few requests with web2 alone: {}", alone.text);
    assert_eq!(alone.failed(), 0, "requests failed after web1 was taken out: {}", alone.text);
    eprintln!("both up: {} requests in 2 s; web1 out: {} in 3 s, none failed", both.requests, alone.requests);

    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP);
    let load = wrk::Load::light(3, true);
    let running = wrk::start(&stack.client, &url, load);
    std::thread::sleep(Duration::from_millis(500));
    drop(web2);
    daemon.wait_for(Duration::from_secs(4), "web2 marked down", |r| r.services[0].backends.iter().all(|b| !b.active));
    let during = wrk::finish(running, load);
    assert!(during.requests > 0, "no request got through before web2 died: {}", during.text);
    let www = dig(&stack.client, &["www.foobar.com", "A"]);
    assert!(www.contains("status: NXDOMAIN") && www.contains("ANSWER: 0"), "www still answered: {www}");
    let started = std::time::Instant::now();
    let refused = stack.client.output(&["curl", "-sS", "--max-time", "3", &url]);
    assert_eq!(refused.status.code(), Some(7), "the VIP did not refuse: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "refusing took {:?}", started.elapsed());
}
