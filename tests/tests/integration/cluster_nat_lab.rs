//! Three foobar nodes in NAT mode with flow sync (`examples/cluster-nat.toml`): each NATs
//! from its own address, announced by its BIRD (and by its peers with a longer path), and
//! sends its NAT flows to its peers. A node whose uplink is cut, and then a node whose foobar
//! and BIRD are killed, cost none of the kept-alive connections it was carrying: the
//! survivors carry them on from its NAT address; nor does the cut node's return.

use std::time::Duration;

use foobar_tests::{
    bird::Bird,
    cluster::*,
    daemon::DaemonProcess,
    gate::Need,
    http::{self, Held},
    netns::Entry,
    nginx,
    topology::VIP,
    wrk::{self, Load},
};
use libtest_mimic::Trial;

use crate::gated_alone;

const CONFIG: &str = include_str!("../../../examples/cluster-nat.toml");

pub fn trials() -> Vec<Trial> {
    vec![gated_alone(
        "cluster_nat_lab::nat_flows_survive_a_node_cut_off_and_a_node_killed",
        &[Need::Root, Need::Bpf],
        drills,
    )]
}

fn drills() {
    let c = Cluster::build(3);
    let _web1 = nginx::start(&c.web1, "web1");
    let _web2 = nginx::start(&c.web2, "web2");
    let (router, mut nodes) = c.start_nat_nodes(&foobar_tests::daemon::foobar_binary(), CONFIG);
    let nat: Vec<String> = (0..3).map(node_nat).collect();
    let all: Vec<String> = (0..3).map(node_uplink).collect();
    let took = c.wait_next_hops(&all, Duration::from_secs(20));
    eprintln!("all three nodes announced after {took:?}");
    let out = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web"), "{out:?}");
    // Every node hears both its peers within seconds of starting, nothing to send or not.
    for (i, n) in nodes.iter().enumerate() {
        let heard = || {
            let sync = n.status().node.sync.expect("flow sync in status");
            let names: Vec<String> = sync.peers.iter().map(|p| p.name.clone()).collect();
            let want: Vec<String> = (0..3).filter(|j| *j != i).map(|j| format!("node{}", j + 1)).collect();
            assert_eq!(names, want);
            sync.peers.iter().all(|p| p.heard_ms_ago.is_some_and(|ms| ms < 1000)).then_some(()).ok_or(sync)
        };
        let started = std::time::Instant::now();
        while let Err(sync) = heard() {
            assert!(started.elapsed() < Duration::from_secs(5), "node{}: {sync:?}", i + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Forged datagrams to node 2's sync port, from node 1's address: refused, each by why.
    forge(&c.nodes[0], &node_back(1));
    let refused = |why: &str| metric(&nodes[1], &format!("foobar_sync_datagrams_refused_total{{reason=\"{why}\"}}"));
    for why in ["malformed", "bad_signature", "replayed"] {
        assert_eq!(refused(why), 1.0, "{why}");
    }

    // With every node up, node 1 holds bindings for its peers' flows, and lets them go once
    // those are over: closed on their node, synced, `conntrack.closing` (10 s) later, at the
    // next sweep. (A flow that a third node carried to its end is forgotten at `tcp_idle`.)
    assert_survived(&drill(&c, 5, || {}), "a quiet cluster", &router);
    let held = metric(&nodes[0], "foobar_sync_bindings_held");
    assert!(held > 0.0, "node 1 held no binding for its peers' flows");
    let started = std::time::Instant::now();
    while metric(&nodes[0], "foobar_sync_bindings_held") > 0.0 {
        assert!(started.elapsed() < Duration::from_secs(25), "bindings for peers' closed flows never went");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{held} bindings held for peers' flows, all gone {:?} after the connections closed", started.elapsed());

    // Node 2's uplink cut under load (wrk), with 24 kept-alive connections asking every
    // 20 ms, about a third of them through node 2: every one of them goes on.
    let new_flows = |n: &Node| n.status().services[0].new_flows;
    let before: Vec<u64> = nodes.iter().map(new_flows).collect();
    let held = drill(&c, 5, || {
        let carried: Vec<u64> = nodes.iter().zip(&before).map(|(n, b)| new_flows(n) - b).collect();
        eprintln!("connections per node before the cut: {carried:?}");
        assert!(carried[1] > 0, "node 2 carried none of the connections: {carried:?}");
        nodes[1].ns.ip(&["link", "set", "front", "down"]);
        let detected = c.wait_next_hops(&[all[0].clone(), all[2].clone()], Duration::from_secs(3));
        let moved = c.wait_routes(&nat[1], &[all[0].clone(), all[2].clone()], Duration::from_secs(3));
        eprintln!("uplink cut: VIP route gone after {detected:?}, its NAT address moved after {moved:?}");
    });
    assert_survived(&held, "the cut node", &router);
    let adopted = |n: &Node| metric(n, "foobar_sync_flows_adopted_total");
    assert!(adopted(&nodes[0]) + adopted(&nodes[2]) > 0.0, "no peer took on node 2's flows");

    // Node 2's uplink back: its routes return once BGP is up again, and the connections
    // ECMP moves to it (opened while it was away: it knows them from the sync) go on.
    let held = drill(&c, 5, || {
        nodes[1].ns.ip(&["link", "set", "front", "up"]);
        nodes[1].ns.ip(&["route", "replace", "default", "via", ROUTER_UPLINK]);
        let back = c.wait_next_hops(&all, Duration::from_secs(10));
        c.wait_routes(&nat[1], &all[1..2], Duration::from_secs(3));
        eprintln!("uplink back: routes back after {back:?}");
    });
    assert_survived(&held, "the connections moved to the returning node", &router);

    // Node 3's foobar and BIRD killed: its routes go, nodes 1 and 2 carry its flows on. Then
    // it comes back as after a reboot, with empty tables: its peers send it their flows and
    // give it back its own, and only then is it announced; the connections that come back to
    // it go on.
    let before = new_flows(&nodes[2]);
    let bird_conf = std::fs::read_to_string(nodes[2].bird.dir.join("bird.conf")).expect("node 3's bird.conf");
    let held = drill(&c, 12, || {
        let carried = new_flows(&nodes[2]) - before;
        eprintln!("connections on node 3 before it was killed: {carried}");
        assert!(carried > 0, "node 3 carried none of the connections");
        nodes[2].foobar.process.kill();
        nodes[2].bird.process.kill();
        let detected = c.wait_next_hops(&all[..2], Duration::from_secs(3));
        let moved = c.wait_routes(&nat[2], &all[..2], Duration::from_secs(3));
        eprintln!(
            "kill -9 of foobar and bird: VIP route gone after {detected:?}, its NAT address moved after {moved:?}"
        );
        // The reboot: its XDP and every table gone (the pins removed), then BIRD and foobar.
        std::fs::remove_dir_all(foobar_tests::daemon::pin_dir(&nodes[2].ns)).expect("node 3's pins");
        std::thread::sleep(Duration::from_millis(500));
        let restarted = std::time::Instant::now();
        nodes[2].bird = foobar_tests::bird::Bird::start(&nodes[2].ns, "node", &bird_conf);
        let file = nodes[2].config.clone();
        nodes[2].foobar = DaemonProcess::start(&nodes[2].ns, Entry::Nsenter, &file, "foobar-rebooted");
        nodes[2].foobar.wait_for_log("serving", Duration::from_secs(30));
        eprintln!("node 3 rebooted: serving {:?} after its start", restarted.elapsed());
        c.wait_next_hops(&all, Duration::from_secs(20));
        c.wait_routes(&nat[2], &all[2..], Duration::from_secs(3));
        eprintln!("node 3 rebooted: announced again {:?} after its start", restarted.elapsed());
    });
    assert_survived(&held, "the killed node, and those back on it after its reboot", &router);
    let said = nodes[2].foobar.logged();
    let settled = said.find("the cluster's peers have sent their flows").unwrap_or_else(|| panic!("{said}"));
    let announced = said.find("protocol=\"www_vip\" announce=true").unwrap_or_else(|| panic!("{said}"));
    assert!(settled < announced, "node 3's VIP was announced before its peers sent their flows:\n{said}");

    let text = foobar_tests::daemon::assert_metrics(&nodes[0].ns, &["foobar_sync_datagrams_refused_total"]);
    eprintln!(
        "node 1's sync: {}",
        text.lines().filter(|l| l.starts_with("foobar_sync")).collect::<Vec<_>>().join("; ")
    );
}

/// Runs `failure` 2 s into `seconds` + 1 of wrk (16 kept-alive connections) and `seconds` of
/// 24 kept-alive connections of [`http::keep_asking`]; how those fared.
fn drill(c: &Cluster, seconds: u32, failure: impl FnOnce()) -> Vec<Held> {
    let load = Load { seconds: seconds + 1, connections: 16, threads: 2, close: false };
    let run = wrk::start(&c.client, &format!("http://{VIP}/"), load);
    let vip = std::net::SocketAddr::from(([192, 0, 2, 10], 80));
    let asking = http::keep_asking(&c.client, vip, 24, Duration::from_secs(u64::from(seconds)));
    std::thread::sleep(Duration::from_secs(2));
    failure();
    let held: Vec<Held> = asking.into_iter().map(|t| t.join().expect("asking thread")).collect();
    let summary = wrk::finish(run, load);
    eprintln!("wrk meanwhile: {} requests, {} failed", summary.requests, summary.failed());
    held
}

/// Every connection went on; prints how long the worst stalled, and when. A failure shows
/// the router's BGP sessions coming and going, to tell a lost session from a lost flow.
fn assert_survived(held: &[Held], whose: &str, router: &Bird) {
    let failed: Vec<&String> = held.iter().filter_map(|h| h.failed.as_ref()).collect();
    let worst = held.iter().max_by_key(|h| h.longest).cloned().unwrap_or_default();
    let requests: u64 = held.iter().map(|h| h.requests).sum();
    eprintln!(
        "{} kept-alive connections, {requests} requests: {} failed, the longest request {:?}, {:?} in",
        held.len(),
        failed.len(),
        worst.longest,
        worst.longest_at
    );
    let sessions = || {
        let log = std::fs::read_to_string(router.dir.join("bird.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("State changed")).collect::<Vec<_>>().join("\n")
    };
    assert!(failed.is_empty(), "connections of {whose} failed: {failed:?}\nthe router's BGP sessions:\n{}", sessions());
}

/// Sends node `to`'s sync port, from `from`, a datagram of garbage, one signed with another
/// key, and one signed with the cluster's key but older than anything node 1 sent.
fn forge(from: &foobar_tests::netns::Netns, to: &str) {
    use foobar::sync::wire::{Entry, Header, Key, seal};
    let _inside = from.enter();
    let socket = std::net::UdpSocket::bind((node_back(0).as_str(), 0)).expect("bind");
    let to = format!("{to}:7470");
    let old = Header { slot: 1, epoch: 1, seq: 1, ..Header::default() };
    for datagram in [
        b"not a flow-sync datagram".to_vec(),
        seal(&Key::new(&[0x77; 32]), old, &[Entry::default()]),
        seal(&Key::new(&[0x5a; 32]), old, &[Entry::default()]),
    ] {
        socket.send_to(&datagram, &to).expect("send");
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// A metric's value on node `n`'s `/metrics` (0 when absent).
fn metric(n: &Node, name: &str) -> f64 {
    let text = n.ns.exec(&["curl", "-sS", "--max-time", "3", "http://127.0.0.1:9469/metrics"]);
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}
