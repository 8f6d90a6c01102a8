//! `cargo xtask lab --demo`: the tour, run by itself with bounded traffic, saying what it sees.
//! Every step is a handful of requests with short timeouts; the whole demo takes seconds.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use foobar_tests::{
    mariadb::Replication,
    netns::Netns,
    nginx,
    tls::LabCa,
    topology::{self, Stack},
};

fn say(title: &str) {
    println!("\n### {title}");
}

fn fetch(client: &Netns, url: &str, extra: &[&str]) -> String {
    let mut cmd = vec!["curl", "-sS", "--connect-timeout", "1", "--max-time", "2"];
    cmd.extend_from_slice(extra);
    cmd.push(url);
    let out = client.output(&cmd);
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        format!("(no answer: {})", String::from_utf8_lossy(&out.stderr).trim())
    }
}

fn status(foobar: &Path) -> String {
    let out = Command::new(foobar).arg("status").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_else(|e| format!("(status failed: {e})"))
}

/// Polls `foobar status` until `pred` holds on its text (at most `within`); how long it took.
fn wait_status(foobar: &Path, within: Duration, pred: impl Fn(&str) -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if pred(&status(foobar)) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The status line that starts with `name` (a backend or a database server).
fn line_of(text: &str, name: &str) -> String {
    text.lines().find(|l| l.trim_start().starts_with(&format!("{name} "))).unwrap_or("").to_owned()
}

fn dig(client: &Netns, name: &str) -> String {
    client.exec(&["dig", "@192.0.2.53", "+short", "+time=2", "+tries=1", name]).trim().to_owned()
}

pub fn run(stack: &Stack, foobar: &Path, ca: &LabCa, web1: &mut Option<nginx::Nginx>, db: &Replication) {
    let (client, web1_ns) = (&stack.client, &stack.web1);
    let vip = format!("http://{}/", topology::VIP);
    say("DNS: foobar answers www.foobar.com with the VIP");
    println!("{}", dig(client, "www.foobar.com"));

    say("four new connections to http://www.foobar.com/ (resolved by foobar) alternate between the web servers");
    for _ in 0..4 {
        println!("{}", fetch(client, "http://www.foobar.com/", &[]));
    }
    say("/app: a web server proxies to the app, which writes via db-write and reads via db-read");
    for _ in 0..2 {
        println!("{}", fetch(client, "http://www.foobar.com/app", &[]));
    }
    say("HTTPS end to end through the VIP (certificate checked against the lab CA)");
    let cacert = ca.ca_cert.display().to_string();
    let resolve = format!("www.foobar.com:443:{}", topology::VIP);
    println!("{}", fetch(client, "https://www.foobar.com/", &["--cacert", &cacert, "--resolve", &resolve]));

    say("the firewall: web1 directly and the VIP's port 22 see nothing");
    println!("web1 directly: {}", fetch(client, &format!("http://{}/", topology::WEB1), &[]));
    println!("VIP port 22:   {}", fetch(client, &format!("http://{}:22/", topology::VIP), &[]));

    say("stop web1's nginx: health checks take it out");
    drop(web1.take());
    match wait_status(foobar, Duration::from_secs(5), |s| line_of(s, "web1").contains(" down ")) {
        Some(t) => {
            println!("web1 marked down after {:.1} s: {}", t.as_secs_f64(), line_of(&status(foobar), "web1").trim())
        }
        None => println!("web1 was not marked down within 5 s"),
    }
    for _ in 0..3 {
        println!("{}", fetch(client, &vip, &[]));
    }
    say("start it again: it comes back");
    *web1 = Some(nginx::start_tls(web1_ns, "web1", ca));
    match wait_status(foobar, Duration::from_secs(5), |s| line_of(s, "web1").contains(" up ")) {
        Some(t) => println!("web1 back up after {:.1} s", t.as_secs_f64()),
        None => println!("web1 did not come back within 5 s"),
    }
    for _ in 0..4 {
        println!("{}", fetch(client, &vip, &[]));
    }

    say("block the client at run time, then unblock it");
    let run = |args: &[&str]| {
        let out = Command::new(foobar).args(args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    };
    println!("{}", run(&["firewall", "block", topology::CLIENT]));
    println!("client: {}", fetch(client, &vip, &[]));
    println!("{}", run(&["firewall", "unblock", topology::CLIENT]));
    println!("client: {}", fetch(client, &vip, &[]));

    say("the databases: db-write is the primary, db-read the healthy replica");
    if wait_status(foobar, Duration::from_secs(5), |s| line_of(s, "db2").contains(" healthy ")).is_none() {
        println!("db2 did not turn healthy within 5 s");
    }
    println!("{}", line_of(&status(foobar), "db2").trim());
    println!("db-write -> {}   db-read -> {}", dig(client, "db-write.foobar.com"), dig(client, "db-read.foobar.com"));
    say("stop replication on db2: foobar marks it broken and db-read moves to the primary");
    db.replica.sql("STOP SLAVE SQL_THREAD");
    match wait_status(foobar, Duration::from_secs(5), |s| line_of(s, "db2").contains(" broken ")) {
        Some(t) => println!("db2 broken after {:.1} s: {}", t.as_secs_f64(), line_of(&status(foobar), "db2").trim()),
        None => println!("db2 was not marked broken within 5 s"),
    }
    println!("db-read -> {}", dig(client, "db-read.foobar.com"));
    println!("{}", fetch(client, "http://www.foobar.com/app", &[]));
    db.replica.sql("START SLAVE SQL_THREAD");
    match wait_status(foobar, Duration::from_secs(5), |s| line_of(s, "db2").contains(" healthy ")) {
        Some(t) => println!("replication restarted: db2 healthy after {:.1} s", t.as_secs_f64()),
        None => println!("db2 was not healthy again within 5 s"),
    }
    println!("db-read -> {}", dig(client, "db-read.foobar.com"));

    say("foobar status");
    print!("{}", status(foobar));
}
