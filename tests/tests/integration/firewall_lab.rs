//! The firewall in the lab with real traffic: the daemon runs `examples/lab.toml` on the node
//! and the client sees only what the rules allow.

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use foobar::{config, daemon::Daemon, plan::Plan};
use foobar_common::counters::Counter;
use foobar_tests::{
    daemon::lab_config,
    gate::Need,
    netns::Netns,
    nginx,
    packet::{Frame, TcpFlags},
    raw,
    topology::*,
};
use libtest_mimic::Trial;

use crate::gated;

pub const LAB_CONFIG: &str = include_str!("../../../examples/lab.toml");

pub fn trials() -> Vec<Trial> {
    vec![gated("firewall_lab::client_sees_only_what_the_rules_allow", &[Need::Root, Need::Bpf], lab_firewall)]
}

/// `curl` from `ns` with a 1 s connect timeout; extra args go before the URL.
fn curl(ns: &Netns, args: &[&str], url: &str) -> Output {
    let mut cmd = vec!["curl", "-sS", "--connect-timeout", "1", "--max-time", "3"];
    cmd.extend_from_slice(args);
    cmd.push(url);
    ns.output(&cmd)
}

/// Exit code 28 is curl's timeout: the SYN vanished, rather than being refused by a stack.
fn assert_unanswered(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(28), "{what}: expected silence, got {out:?}");
}

fn lab_firewall() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let node_mac = stack.node.mac("front");

    let _inside = stack.node.enter();
    let text = lab_config(&stack.node, LAB_CONFIG, true);
    let cfg = config::parse(Path::new("examples/lab.toml"), &text, &config::interface_exists)
        .expect("the lab config is valid on the lab's node");
    let daemon = Daemon::start(Plan::compile(cfg).expect("plan")).expect("daemon starts");

    let ok = curl(&stack.client, &[], &format!("http://{VIP}/"));
    assert!(ok.status.success(), "allowed port: {ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("web"), "the VIP is served by the web servers: {ok:?}");
    assert_unanswered(&curl(&stack.client, &[], &format!("http://{VIP}:22/")), "port no rule allows");
    assert_unanswered(&curl(&stack.client, &[], &format!("http://{WEB1}/")), "web1 directly");
    stack.client.addr("eth0", "192.0.2.66/24");
    assert_unanswered(&curl(&stack.client, &["--interface", "192.0.2.66"], &format!("http://{VIP}/")), "denied source");

    // A bounded SYN flood from ten spoofed sources in 203.0.113.0/24, 600 SYNs each.
    let before = daemon.dataplane().counters().expect("counters");
    let flood: Vec<Vec<u8>> = (0..6000u16)
        .map(|i| {
            let mut f = Frame::tcp4([203, 0, 113, 1 + (i % 10) as u8], 1024 + i, [192, 0, 2, 10], 80)
                .flags(TcpFlags::SYN)
                .build();
            f[..6].copy_from_slice(&node_mac);
            f
        })
        .collect();
    let started = Instant::now();
    let client = stack.client.clone();
    let sender = std::thread::spawn(move || raw::send(&client, "eth0", &flood));
    let mut legit = 0;
    for _ in 0..5 {
        if curl(&stack.client, &[], &format!("http://{VIP}/")).status.success() {
            legit += 1;
        }
    }
    sender.join().expect("flood thread").expect("flood sent");
    let elapsed = started.elapsed().max(Duration::from_millis(1));
    let after = daemon.dataplane().counters().expect("counters");
    let limited = after.since(&before, Counter::FwSynRateLimited);
    let passed = after.since(&before, Counter::FwAllowed);
    // Each source may pass its burst (200) plus 200/s while the flood lasts; the legitimate
    // client's few connections pass too. (Under load the node's queue may drop some flood
    // frames before XDP sees them, so the bound is on what passed, not on what was cut.)
    let may_pass = 10 * (200 + (200.0 * elapsed.as_secs_f64()).ceil() as u64) + 100;
    eprintln!("SYN flood: 6000 sent in {elapsed:?}, {limited} cut, {passed} passed, legitimate {legit}/5");
    assert!(passed <= may_pass, "{passed} packets passed the limiter, at most {may_pass} may");
    assert!(limited >= 1000, "only {limited} of 6000 SYNs cut");
    assert_eq!(legit, 5, "the legitimate client was refused during the flood");

    daemon.stop().expect("daemon stops");
}
