//! Three foobar nodes behind a router that spreads the VIP by ECMP, each announcing it with
//! its own BIRD (BGP + BFD) only while it can serve: traffic reaches every node, a drained
//! node's route leaves the router without a failed request, a node whose uplink is cut is
//! routed around within BFD's detection time, and a node that sees no backend withdraws.

use std::time::{Duration, Instant};

use foobar::control::protocol::NodeAction;
use foobar_tests::{
    cluster::*,
    daemon::DaemonProcess,
    gate::Need,
    netns::Entry,
    nginx,
    topology::{VIP, WEB1, WEB2},
    wrk,
};
use libtest_mimic::Trial;

use crate::gated_alone;

const CONFIG: &str = include_str!("../../../examples/cluster.toml");

pub fn trials() -> Vec<Trial> {
    vec![
        gated_alone("cluster_lab::three_nodes_behind_ecmp_drain_die_and_withdraw", &[Need::Root, Need::Bpf], drills),
        gated_alone("cluster_lab::announce_command_drives_another_routing_daemon", &[Need::Root, Need::Bpf], hook),
    ]
}

/// `announce.command` instead of `bird_socket`: a hook script (as an ExaBGP or GoBGP user
/// would write one) that logs what it is told and passes it on to the node's BIRD with
/// birdc. The route follows the hook; a failing hook shows in `status`.
fn hook() {
    let c = Cluster::build(1);
    let _web1 = nginx::start(&c.web1, "web1");
    let _web2 = nginx::start(&c.web2, "web2");
    let ns = &c.nodes[0];
    let (script, told, fail) = (ns.scratch("vip-route"), ns.scratch("vip-route.log"), ns.scratch("vip-route.fail"));
    let bird_socket = ns.scratch("bird-node").join("bird.ctl");
    let body = format!(
        "#!/bin/sh\necho \"$1 $2\" >> {told:?}\n[ -e {fail:?} ] && {{ echo 'peer 192.0.2.129 is down' >&2; exit 1; }}\n\
         case $1 in announce) v=enable;; withdraw) v=disable;; *) exit 2;; esac\nexec birdc -s {bird_socket:?} $v \"$2\"\n"
    );
    std::fs::write(&script, body).expect("hook script");
    let config = CONFIG.replacen(
        "bird_socket = \"/run/bird/bird.ctl\"",
        &format!("command = [\"/bin/sh\", {:?}]", script.display().to_string()),
        1,
    );
    let (_router, nodes) = c.start_nodes(&foobar_tests::daemon::foobar_binary(), &config);
    let took = c.wait_next_hops(&[node_uplink(0)], Duration::from_secs(20));
    eprintln!("announced through the hook after {took:?}");
    let log = || std::fs::read_to_string(&told).unwrap_or_default();
    assert!(log().lines().all(|l| l == "announce www_vip"), "{}", log());
    let a = nodes[0].status().services[0].announce.clone().expect("announce");
    assert!(a.wanted && a.announced == Some(true) && a.error.is_none(), "{a:?}");

    nodes[0].node(NodeAction::Drain);
    let took = c.wait_next_hops(&[], Duration::from_secs(5));
    eprintln!("drained: the hook withdrew the route after {took:?}");
    assert!(log().lines().any(|l| l == "withdraw www_vip"), "{}", log());

    // The routing daemon's side fails: status says so (and why); the last confirmed state stays.
    std::fs::write(&fail, "").expect("fail flag");
    nodes[0].node(NodeAction::Enable);
    let started = Instant::now();
    let a = loop {
        let a = nodes[0].status().services[0].announce.clone().expect("announce");
        if a.error.is_some() || started.elapsed() > Duration::from_secs(5) {
            break a;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let e = a.error.clone().unwrap_or_default();
    assert!(a.wanted && a.announced == Some(false) && e.contains("peer 192.0.2.129 is down"), "{a:?}");
    assert!(c.vip_next_hops().is_empty(), "routed while the hook failed");
    // Fixed: the next reassertion announces (the hook is run again until it succeeds).
    std::fs::remove_file(&fail).expect("fail flag");
    let took = c.wait_next_hops(&[node_uplink(0)], Duration::from_secs(8));
    eprintln!("hook fixed: announced again after {took:?}");
}

fn drills() {
    let c = Cluster::build(3);
    let _web1 = nginx::start(&c.web1, "web1");
    let _web2 = nginx::start(&c.web2, "web2");
    let (_router, nodes) = c.start_nodes(&foobar_tests::daemon::foobar_binary(), CONFIG);
    let all: Vec<String> = (0..3).map(node_uplink).collect();
    let took = c.wait_next_hops(&all, Duration::from_secs(20));
    eprintln!("all three nodes announced after {took:?}");
    let s = nodes[0].status();
    assert_eq!(s.node.name, "node1");
    let a = s.services[0].announce.as_ref().expect("announce status");
    assert!(a.wanted && a.announced == Some(true) && a.protocol == "www_vip", "{a:?}");

    // Spread: new connections from the client land on every node, and all are answered.
    for _ in 0..60 {
        let out = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.starts_with("web1") || body.starts_with("web2"), "{out:?}");
    }
    let flows: Vec<u64> = nodes.iter().map(|n| n.status().services[0].new_flows).collect();
    eprintln!("60 connections: new flows per node {flows:?}");
    assert!(flows.iter().all(|f| *f > 0), "ECMP did not reach every node: {flows:?}");

    // Drain node 1 under load: its route leaves the router, no request fails.
    let load = wrk::Load { seconds: 4, connections: 16, threads: 2, close: false };
    let run = wrk::start(&c.client, &format!("http://{VIP}/"), load);
    std::thread::sleep(Duration::from_secs(1));
    nodes[0].node(NodeAction::Drain);
    let took = c.wait_next_hops(&all[1..], Duration::from_secs(5));
    let summary = wrk::finish(run, load);
    eprintln!("drain: route gone after {took:?}; wrk {} requests, {} failed", summary.requests, summary.failed());
    assert_eq!(summary.failed(), 0, "{}", summary.text);
    let a = nodes[0].status().services[0].announce.clone().expect("announce");
    assert!(!a.wanted && a.why.contains("drained") && a.announced == Some(false), "{a:?}");
    nodes[0].node(NodeAction::Enable);
    c.wait_next_hops(&all, Duration::from_secs(5));

    // kill -9 of node 1's foobar, then a new run: the route stays (BIRD keeps it) and the
    // pinned data plane forwards meanwhile, so nothing fails; the new run takes over.
    let mut nodes = nodes;
    let run = wrk::start(&c.client, &format!("http://{VIP}/"), load);
    std::thread::sleep(Duration::from_secs(1));
    nodes[0].foobar.process.kill();
    std::thread::sleep(Duration::from_millis(500));
    let hops = c.vip_next_hops();
    assert_eq!(hops.len(), 3, "a crashed foobar withdrew its route: {hops:?}");
    let file = nodes[0].config.clone();
    nodes[0].foobar = DaemonProcess::start(&nodes[0].ns, Entry::Nsenter, &file, "foobar-again");
    nodes[0].foobar.wait_for_log("serving", Duration::from_secs(15));
    // Until its checks settle, the new run leaves BIRD alone: the route never goes away.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        let hops = c.vip_next_hops();
        assert_eq!(hops.len(), 3, "the restarted foobar withdrew its route: {hops:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = wrk::finish(run, load);
    eprintln!("kill -9 and restart: wrk {} requests, {} failed", summary.requests, summary.failed());
    assert_eq!(summary.failed(), 0, "{}", summary.text);
    let said = nodes[0].foobar.logged();
    assert!(said.contains("took over"), "{said}");
    assert!(!said.contains("announce=false"), "the restarted foobar told BIRD to withdraw: {said}");

    // Cut node 2's uplink under load: BFD takes its route away, the rest carry on.
    let run = wrk::start(&c.client, &format!("http://{VIP}/"), load);
    std::thread::sleep(Duration::from_secs(1));
    nodes[1].ns.ip(&["link", "set", "front", "down"]);
    let detected = c.wait_next_hops(&[all[0].clone(), all[2].clone()], Duration::from_secs(3));
    let summary = wrk::finish(run, load);
    eprintln!(
        "uplink cut: route gone after {detected:?}; wrk {} requests, {} failed",
        summary.requests,
        summary.failed()
    );
    assert!(detected < Duration::from_millis(1500), "BFD noticed after {detected:?}");
    assert!(summary.failed() * 100 <= summary.requests.max(1), "{}", summary.text);

    // Node 3 can reach no backend: it withdraws while node 1 keeps the VIP.
    for web in [WEB1, WEB2] {
        nodes[2].ns.ip(&["route", "add", "prohibit", &format!("{web}/32")]);
    }
    let took = c.wait_next_hops(&all[..1], Duration::from_secs(5));
    eprintln!("node 3 without backends withdrew after {took:?}");
    let a = nodes[2].status().services[0].announce.clone().expect("announce");
    assert!(!a.wanted && a.why.contains("no backend"), "{a:?}");
    let out = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web"), "{out:?}");
}
