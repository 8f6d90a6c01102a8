//! What the operator changed at run time, and which backend each flow goes to, outlive a
//! restart: blocks stay blocked, drains stay draining, and a restart after a reload that added
//! and removed backends keeps every open connection on its backend.

use std::{net::SocketAddr, time::Duration};

use foobar::control::protocol::{BackendAction, Request, Response};
use foobar_tests::{
    daemon::{RunningDaemon, lab_config},
    gate::Need,
    http::KeepAlive,
    netns::Netns,
    nginx,
    topology::*,
    wrk,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("state_lab::blocks_and_drains_outlive_a_restart", &[Need::Root, Need::Bpf], blocks_and_drains),
        gated("state_lab::a_restart_after_a_reload_keeps_every_flow_on_its_backend", &[Need::Root, Need::Bpf], ids),
    ]
}

/// A second address of the client's, blocked while the first goes on working.
const INTRUDER: &str = "192.0.2.101";

fn vip() -> SocketAddr {
    format!("{VIP}:80").parse().expect("addr")
}

/// A kept-alive connection from the client that web `name` answers.
fn connection_to(client: &Netns, name: &str) -> KeepAlive {
    for _ in 0..20 {
        let mut c = KeepAlive::open(client, vip());
        if c.get("/").starts_with(name) {
            return c;
        }
    }
    panic!("no connection reached {name} in 20 tries");
}

fn fetch_from(client: &Netns, source: &str) -> String {
    let out = client.output(&["curl", "-sS", "--max-time", "2", "--interface", source, &format!("http://{VIP}/")]);
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("(no answer)").to_owned()
}

fn done(response: Response) {
    assert!(matches!(response, Response::Done { .. }), "{response:?}");
}

fn blocks_and_drains() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    stack.client.addr("eth0", &format!("{INTRUDER}/24"));
    let first = RunningDaemon::start_with(&stack.node, &lab_config(&stack.node, LAB_CONFIG, false));
    done(first.request(Request::FirewallBlock { cidr: INTRUDER.into() }));
    assert_eq!(fetch_from(&stack.client, INTRUDER), "(no answer)");
    let mut on_web1 = connection_to(&stack.client, "web1");
    done(first.request(Request::Backend {
        service: "www".into(),
        backend: "web1".into(),
        action: BackendAction::Drain,
    }));
    drop(first);

    let second = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let web1 = |r: &foobar::control::protocol::StatusReport| {
        r.services[0].backends.iter().find(|b| b.name == "web1").map(|b| b.state.clone())
    };
    assert_eq!(web1(&second.status()).as_deref(), Some("draining"), "the drain did not outlive the restart");
    assert_eq!(fetch_from(&stack.client, INTRUDER), "(no answer)", "the block did not outlive the restart");
    assert_eq!(second.status().blocked_by_operator, [format!("{INTRUDER}/32")]);
    assert!(on_web1.get("/").starts_with("web1"), "the connection open to the draining web1 was lost");
    for _ in 0..4 {
        assert_eq!(fetch_from(&stack.client, CLIENT), "web2", "a new connection went to the draining web1");
    }
    // Blocks the config made are the config's to lift; the operator's are the operator's.
    match second.request(Request::FirewallUnblock { cidr: "192.0.2.66".into() }) {
        Response::Error { message } => assert!(message.contains("firewall.deny_sources"), "{message}"),
        other => panic!("{other:?}"),
    }
    done(second.request(Request::FirewallUnblock { cidr: INTRUDER.into() }));
    assert!(fetch_from(&stack.client, INTRUDER).starts_with("web"));
}

fn ids() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    // A third web server, on the app host, for the reload to add.
    let _web3 = nginx::start(&stack.app, "web3");
    let kept = lab_config(&stack.node, LAB_CONFIG, false);
    let first = RunningDaemon::start_with(&stack.node, &kept);
    let mut on_web1 = connection_to(&stack.client, "web1");
    let mut on_web2 = connection_to(&stack.client, "web2");

    // A backend that does not exist yet cannot be disabled, and the failed request leaves no trace.
    let disable = Request::Backend { service: "www".into(), backend: "web3".into(), action: BackendAction::Disable };
    assert!(matches!(first.request(disable), Response::Error { .. }));

    // web1 leaves (its open connection goes on), web3 comes in ahead of web2.
    let web1 = "[[service.backend]]\nname = \"web1\"\naddress = \"198.51.100.11\"\n";
    let web3 = "[[service.backend]]\nname = \"web3\"\naddress = \"198.51.100.21\"\n";
    let reloaded = kept.replacen(web1, web3, 1);
    assert_ne!(reloaded, kept);
    std::fs::write(&first.config_file, &reloaded).expect("write config");
    done(first.request(Request::Reload));
    assert!(on_web1.get("/").starts_with("web1"), "the reload moved web1's open connection");
    let state = |r: &foobar::control::protocol::StatusReport, name: &str| {
        r.services[0].backends.iter().find(|b| b.name == name).map(|b| b.state.clone())
    };
    assert_eq!(state(&first.status(), "web3").as_deref(), Some("up"), "the refused disable was kept");

    // New connections all through a restart on the reloaded config.
    let load = wrk::Load::light(4, true);
    let running = wrk::start(&stack.client, &format!("http://{VIP}/"), load);
    std::thread::sleep(Duration::from_millis(1000));
    drop(first);
    let second = RunningDaemon::start_with(&stack.node, &reloaded);
    let summary = wrk::finish(running, load);
    eprintln!("{}", summary.text);
    assert!(summary.requests > 100, "too few requests to prove anything: {}", summary.requests);
    assert_eq!(summary.failed(), 0, "requests failed across the restart");
    assert!(on_web1.get("/").starts_with("web1"), "after the restart web1's connection went elsewhere");
    assert!(on_web2.get("/").starts_with("web2"), "after the restart web2's connection went elsewhere");
    drop(second);
    // The pins were kept: detach and remove them.
    foobar::dataplane::Pins::remove_all(&foobar_tests::daemon::pin_dir(&stack.node)).expect("cleanup");
}
