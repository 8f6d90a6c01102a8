//! Monitoring and alerting as shipped: the alert rules pass promtool's checks and unit tests,
//! and in the lab Prometheus and Alertmanager (Debian's) scraping foobar deliver
//! FoobarBackendDown to a webhook when web1 dies, and its resolution when web1 is back.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use foobar_tests::{
    daemon::RunningDaemon,
    gate::Need,
    nginx,
    prometheus::{Alertmanager, Prometheus, Webhook, promtool},
    topology::*,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated, plain};

pub fn trials() -> Vec<Trial> {
    vec![
        plain("monitoring::the_alert_rules_pass_promtool", rules),
        gated("monitoring_lab::a_dead_web_server_alerts_and_resolves", &[Need::Root, Need::Bpf], alert),
        gated("monitoring_lab::the_status_page_shows_a_backend_going_down", &[Need::Root, Need::Bpf], status_page),
    ]
}

fn monitoring_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monitoring")
}

fn rules() {
    let dir = monitoring_dir();
    if let Err(said) = promtool(&dir, &["check", "rules", "foobar.rules.yml"]) {
        panic!("promtool check rules:\n{said}");
    }
    if let Err(said) = promtool(&dir, &["test", "rules", "foobar.rules.test.yml"]) {
        panic!("promtool test rules:\n{said}");
    }
}

/// Waits until the webhook got a notification of `alertname` with `status`; how long it took.
fn wait_for_notification(hook: &Webhook, alertname: &str, status: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = hook.received.lock().expect("webhook log").clone();
        let seen = got.iter().any(|body| {
            body.contains(&format!("\"alertname\":\"{alertname}\""))
                && body.contains(&format!("\"status\":\"{status}\""))
        });
        if seen {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "no {status} {alertname} within {within:?}; the webhook got {got:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alert() {
    let stack = Stack::build();
    let web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let _daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let hook = Webhook::start(&stack.node, "127.0.0.1:9099");
    let _am = Alertmanager::start(&stack.node, "127.0.0.1:9093", "http://127.0.0.1:9099/");
    let rules = monitoring_dir().join("foobar.rules.yml");
    let _prom = Prometheus::start(&stack.node, "127.0.0.1:9469", &rules, "127.0.0.1:9093");
    // Every metric the rules and the dashboard use is one foobar exposes.
    let scrape = stack.node.exec(&["curl", "-sS", "--max-time", "3", "http://127.0.0.1:9469/metrics"]);
    for file in ["foobar.rules.yml", "foobar.dashboard.json"] {
        let text = std::fs::read_to_string(monitoring_dir().join(file)).expect("monitoring file");
        for name in metric_names(&text) {
            let family = name.trim_end_matches("_bucket");
            assert!(scrape.contains(&format!("# TYPE {family} ")), "{file} uses {name}, which foobar does not expose");
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(web1);
    // fall 3 × 500 ms, then the rule's `for: 15s`, a scrape and an evaluation (1 s each): 17-19 s
    // here alone, over 30 s once on a CI machine busy with the other labs.
    let fired = wait_for_notification(&hook, "FoobarBackendDown", "firing", Duration::from_secs(45));
    eprintln!("FoobarBackendDown reached the webhook {fired:?} after web1 died");
    assert!(hook.received.lock().expect("log").iter().any(|b| b.contains("\"backend\":\"web1\"")));
    let _web1 = nginx::start(&stack.web1, "web1");
    let resolved = wait_for_notification(&hook, "FoobarBackendDown", "resolved", Duration::from_secs(20));
    eprintln!("and its resolution {resolved:?} after web1 came back");
}

/// The `foobar_…` metric names a rules or dashboard file mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (at, _) in text.match_indices("foobar_") {
        let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        // Rule and dashboard titles are not metrics.
        if name.len() > "foobar_".len() && text[..at].chars().last().is_none_or(|c| !c.is_ascii_alphanumeric()) {
            out.insert(name);
        }
    }
    out
}

/// Headless Chromium in `ns` (flags for a machine without a network out): `args` then `url`.
fn chromium(ns: &foobar_tests::netns::Netns, args: &[&str], url: &str) -> String {
    let profile = ns.scratch("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let profile = format!("--user-data-dir={}", profile.display());
    let mut cmd = vec![
        "timeout",
        "30",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &profile,
    ];
    cmd.extend_from_slice(args);
    cmd.push(url);
    // A headless Chromium starting on a machine busy with other labs sometimes exits with
    // nothing (seen once in CI): it gets three tries, and says what it printed last.
    let mut said = String::new();
    for _ in 0..3 {
        let out = ns.output(&cmd);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && (!stdout.is_empty() || !args.contains(&"--dump-dom")) {
            return stdout;
        }
        said = format!("{}: {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    panic!("chromium failed three times; the last: {said}");
}

/// The page at / as a browser renders it: web1 up, then, once nginx on web1 is gone, down;
/// a screenshot of each is kept in target/test-artifacts.
fn status_page() {
    let stack = Stack::build();
    let web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let state = |r: &foobar::control::protocol::StatusReport, want: &str| {
        r.services[0].backends.iter().any(|b| b.name == "web1" && b.state == want)
    };
    daemon.wait_for(Duration::from_secs(3), "web1 up", |r| state(r, "up"));
    let url = "http://127.0.0.1:9469/";
    let dom = chromium(&stack.node, &["--dump-dom"], url);
    assert!(dom.contains("<tr class=\"up\"><td>web1</td>") && dom.contains("<h2>service www"), "{dom}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("status-up.png");
    chromium(&stack.node, &["--window-size=1200,700", &format!("--screenshot={}", shot.display())], url);
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000), "no screenshot at {}", shot.display());
    drop(web1);
    daemon.wait_for(Duration::from_secs(4), "web1 down", |r| state(r, "down"));
    let dom = chromium(&stack.node, &["--dump-dom"], url);
    assert!(dom.contains("<tr class=\"down\"><td>web1</td>"), "{dom}");
    let down = artifacts.join("status-down.png");
    chromium(&stack.node, &["--window-size=1200,700", &format!("--screenshot={}", down.display())], url);
    eprintln!("status page screenshots: {} and {}", shot.display(), down.display());
}
