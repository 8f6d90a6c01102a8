//! The load balancer in the lab, with the daemon running `examples/lab.toml` (NAT) or the
//! same with `mode = "dsr"`: real nginx backends, real curl clients.

use std::{net::SocketAddr, path::Path, time::Duration};

use foobar::{
    config,
    control::protocol::{BackendAction, Request, Response, StatusReport},
    daemon::Daemon,
    plan::Plan,
};
use foobar_common::counters::Counter;
use foobar_tests::{
    daemon::{RunningDaemon, lab_config},
    gate::Need,
    http::KeepAlive,
    netns::Netns,
    nginx,
    topology::*,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("lb_lab::nat_round_robin_drain_and_counters", &[Need::Root, Need::Bpf], nat_mode),
        gated("lb_lab::dsr_round_robin_backends_see_the_client", &[Need::Root, Need::Bpf], dsr_mode),
        gated("lb_lab::dnat_backends_log_the_client_and_reply_through_the_node", &[Need::Root, Need::Bpf], dnat_mode),
        gated("lb_lab::one_arm_nat_on_a_single_interface", &[Need::Root, Need::Bpf], one_arm),
        gated("lb_lab::daemon_adds_missing_vips_and_removes_only_its_own", &[Need::Root, Need::Bpf], vip_addresses),
        gated("lb_lab::https_passes_through_the_vip_untouched", &[Need::Root, Need::Bpf], https),
        gated("lb_lab::source_and_network_affinity_keep_clients_on_one_backend", &[Need::Root, Need::Bpf], affinity),
        gated("lb_lab::least_connections_sends_new_flows_to_the_less_loaded_backend", &[Need::Root, Need::Bpf], least),
    ]
}

/// Starts the daemon on the node (the calling thread must be inside the node's namespace).
fn start_daemon(node: &Netns, text: &str) -> Daemon {
    let text = lab_config(node, text, true);
    let cfg = config::parse(Path::new("examples/lab.toml"), &text, &config::interface_exists).expect("config");
    Daemon::start(Plan::compile(cfg).expect("plan")).expect("daemon starts")
}

/// Waits until the node knows the web servers' MACs (XDP forwards only to known neighbours).
fn wait_for_neighbours(node: &Netns, dev: &str) {
    for _ in 0..50 {
        let out = node.ip(&["neigh", "show", "dev", dev]);
        if [WEB1, WEB2].iter().all(|w| out.lines().any(|l| l.starts_with(&format!("{w} ")) && l.contains("lladdr"))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the node never resolved web1 and web2: {}", node.ip(&["neigh"]));
}

/// One new connection to the VIP: the body `<web server> <address it saw>`.
fn fetch(client: &Netns) -> String {
    client.exec(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]).trim().to_owned()
}

fn server(body: &str) -> &str {
    body.split_whitespace().next().unwrap_or("")
}

/// Six new connections alternate strictly between the two web servers.
fn assert_alternates(client: &Netns, seen_as: &str) -> Vec<String> {
    let bodies: Vec<String> = (0..6).map(|_| fetch(client)).collect();
    for pair in bodies.windows(2) {
        assert_ne!(server(&pair[0]), server(&pair[1]), "not round-robin: {bodies:?}");
    }
    for b in &bodies {
        assert!(b.starts_with("web"), "unexpected answer {b:?}");
        assert!(b.ends_with(seen_as), "backend saw {b:?}, expected the source {seen_as}");
    }
    bodies
}

/// The lab as a container network has it (kernel-default veth offloads: the client's sockets
/// put partial checksums on the wire), and `auto` took generic mode on every veth for that.
fn assert_kernel_defaults(stack: &Stack, daemon: &Daemon) {
    let offloads = stack.client.exec(&["ethtool", "-k", "eth0"]);
    assert!(offloads.contains("tx-checksumming: on"), "the lab tuned the client's offloads: {offloads}");
    for a in daemon.dataplane().attachments() {
        assert_eq!(a.mode, aya::programs::XdpMode::Skb, "{} runs {:?}: {}", a.interface, a.mode, a.why);
        assert!(a.why.contains("auto on veth"), "{}: {}", a.interface, a.why);
    }
}

fn nat_mode() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let _inside = stack.node.enter();
    let mut daemon = start_daemon(&stack.node, LAB_CONFIG);
    wait_for_neighbours(&stack.node, "back");
    assert_kernel_defaults(&stack, &daemon);
    let before = daemon.dataplane().counters().expect("counters");

    // NAT: the backends see the node's own back address.
    assert_alternates(&stack.client, NODE_BACK);

    // Drain the backend holding an open connection: that connection goes on, new ones avoid it.
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let mut open = KeepAlive::open(&stack.client, vip);
    let holder = server(&open.get("/")).to_owned();
    let other = if holder == "web1" { "web2" } else { "web1" };
    let drain = Request::Backend { service: "www".into(), backend: holder.clone(), action: BackendAction::Drain };
    assert!(matches!(daemon.handle(drain), Response::Done { .. }));
    for _ in 0..4 {
        assert_eq!(server(&fetch(&stack.client)), other, "a new connection went to the draining {holder}");
    }
    assert_eq!(server(&open.get("/")), holder, "the open connection moved off the draining backend");
    let enable = Request::Backend { service: "www".into(), backend: holder.clone(), action: BackendAction::Enable };
    assert!(matches!(daemon.handle(enable), Response::Done { .. }));
    assert_alternates(&stack.client, NODE_BACK);

    let after = daemon.dataplane().counters().expect("counters");
    assert!(after.since(&before, Counter::LbNewFlow) >= 17, "{after:?}");
    assert!(after.since(&before, Counter::LbNatReply) >= 17, "replies not translated: {after:?}");
    assert_eq!(after.since(&before, Counter::LbNoRoute), 0);
    let www = daemon.services().get("www").expect("www");
    let service = daemon.dataplane().service_stats(www.id).expect("service stats");
    assert!(service.new_flows >= 17 && service.packets > service.new_flows && service.bytes > service.packets * 40);
    for &id in &www.backend_ids {
        let b = daemon.dataplane().backend_stats(id).expect("backend stats");
        assert!(b.new_flows >= 7, "backend {id} got {b:?}");
    }
    daemon.stop().expect("stop");
}

fn dsr_mode() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let _inside = stack.node.enter();
    let daemon = start_daemon(&stack.node, &LAB_CONFIG.replacen(r#"mode = "nat""#, r#"mode = "dsr""#, 1));
    wait_for_neighbours(&stack.node, "back");
    assert_kernel_defaults(&stack, &daemon);
    // DSR: the backends see the client itself and answer it from the VIP.
    assert_alternates(&stack.client, CLIENT);
    let after = daemon.dataplane().counters().expect("counters");
    assert_eq!(after.get(Counter::LbNatReply), 0, "DSR replies must not go through NAT");
    daemon.stop().expect("stop");
}

/// DNAT, as a user runs it (`foobar run`, the SYN proxy on by default): nginx logs the client's
/// own address, and the web servers' replies, routed back through the node (their gateway),
/// reach the client from the VIP, the proxied handshake's and a kept-alive connection's alike.
fn dnat_mode() {
    let stack = Stack::build();
    let web1 = nginx::start_logging(&stack.web1, "web1");
    let web2 = nginx::start_logging(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, &LAB_CONFIG.replacen(r#"mode = "nat""#, r#"mode = "dnat""#, 1));
    wait_for_neighbours(&stack.node, "back");
    let r = daemon.status();
    assert_eq!(r.services[0].mode, "dnat", "{:#?}", r.services[0]);
    assert_alternates(&stack.client, CLIENT);
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let mut open = KeepAlive::open(&stack.client, vip);
    for _ in 0..20 {
        let body = open.get("/");
        assert!(body.trim_end().ends_with(CLIENT), "a kept-alive request was seen as {body:?}");
    }
    for (name, nginx) in [("web1", &web1), ("web2", &web2)] {
        let log = nginx.access_log();
        let from_client = log.lines().filter(|l| l.starts_with(&format!("{CLIENT} "))).count();
        assert!(from_client >= 3, "{name} logged {from_client} requests from {CLIENT}:\n{log}");
        // The health checks come from the node; every client request from the client.
        let requests = log.lines().filter(|l| !l.contains("foobar-health-check"));
        assert!(requests.clone().all(|l| l.starts_with(&format!("{CLIENT} "))), "{name} saw another source:\n{log}");
        assert_eq!(requests.count(), from_client);
    }
    let counters = |r: &StatusReport, name: &str| r.counters.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
    let after = daemon.status();
    assert!(counters(&after, Counter::LbProxiedHandshake.name()) >= 7, "{:?}", after.counters);
    assert!(counters(&after, Counter::LbNatReply.name()) >= 26, "replies not translated: {:?}", after.counters);
    assert_eq!(counters(&after, Counter::LbDnatTupleTaken.name()), 0, "{:?}", after.counters);
}

fn one_arm() {
    let arm = OneArm::build();
    let _web1 = nginx::start(&arm.web1, "web1");
    let _web2 = nginx::start(&arm.web2, "web2");
    // One interface, and the firewall on it: backends' replies arrive there too, to the
    // clients' flows and to the node's own health checks.
    let text = LAB_CONFIG.replacen(r#"interfaces = ["front", "back"]"#, r#"interfaces = ["eth0"]"#, 1).replacen(
        r#"untrusted = ["front"]"#,
        r#"untrusted = ["eth0"]"#,
        1,
    );
    let daemon = RunningDaemon::start(&arm.node, &text);
    wait_for_neighbours(&arm.node, "eth0");
    let all_up = |r: &StatusReport| {
        r.services[0]
            .backends
            .iter()
            .all(|b| b.state == "up" && b.health.as_ref().is_some_and(|h| h.last == "HTTP 200"))
    };
    daemon.wait_for(Duration::from_secs(3), "health checks passing", all_up);
    assert_alternates(&arm.client, NODE_BACK);
    // Ten check intervals (fall is 3): the checks' replies keep getting through.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let r = daemon.status();
        assert!(all_up(&r), "a backend went down behind a one-arm firewall: {:#?}", r.services[0].backends);
    }
    let counters = |r: &StatusReport, name: &str| r.counters.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
    let after = daemon.status();
    assert!(counters(&after, Counter::LbNatReply.name()) >= 6, "replies were not translated: {:?}", after.counters);
    assert!(
        counters(&after, Counter::FwTrackedReply.name()) >= 6,
        "replies not admitted as tracked: {:?}",
        after.counters
    );
    assert!(counters(&after, Counter::FwLocalReply.name()) >= 10, "checks' replies not admitted: {:?}", after.counters);
    // Tracking lets replies through, not strangers: web1 reaching a port the node listens on
    // but no rule allows stays out (a listening socket is not a connection).
    let _listener = {
        let _inside = arm.node.enter();
        std::net::TcpListener::bind((NODE_BACK, 2222)).expect("listen on the node")
    };
    let out = arm.web1.output(&["curl", "-sS", "--connect-timeout", "1", &format!("http://{NODE_BACK}:2222/")]);
    assert_eq!(out.status.code(), Some(28), "an untracked packet passed the firewall: {out:?}");
}

fn vip_addresses() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    stack.node.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "front"]);
    let addrs = || stack.node.ip(&["-o", "addr", "show", "dev", "front"]);
    assert!(!addrs().contains(&format!("{VIP}/32")));
    let _inside = stack.node.enter();
    let daemon = start_daemon(&stack.node, LAB_CONFIG);
    assert!(addrs().contains(&format!("{VIP}/32")), "the daemon did not add the VIP: {}", addrs());
    wait_for_neighbours(&stack.node, "back");
    assert!(fetch(&stack.client).starts_with("web"));
    daemon.stop().expect("stop");
    let after = addrs();
    assert!(!after.contains(&format!("{VIP}/32")), "the daemon left its VIP behind: {after}");
    assert!(after.contains(&format!("{DNS}/32")), "the daemon removed the operator's DNS address: {after}");
    assert!(after.contains(&format!("{NODE_FRONT}/24")), "{after}");
}

fn https() {
    let stack = Stack::build();
    let ca = foobar_tests::tls::LabCa::create(&stack.node.scratch("tls"));
    let _web1 = nginx::start_tls(&stack.web1, "web1", &ca);
    let _web2 = nginx::start_tls(&stack.web2, "web2", &ca);
    let _inside = stack.node.enter();
    let daemon = start_daemon(&stack.node, LAB_CONFIG);
    wait_for_neighbours(&stack.node, "back");
    let cacert = ca.ca_cert.display().to_string();
    let resolve = format!("www.foobar.com:443:{VIP}");
    let bodies: Vec<String> = (0..4)
        .map(|_| {
            let out = stack.client.exec(&[
                "curl",
                "-sS",
                "--max-time",
                "3",
                "--cacert",
                &cacert,
                "--resolve",
                &resolve,
                "https://www.foobar.com/",
            ]);
            out.trim().to_owned()
        })
        .collect();
    // The certificate verified against the lab CA (curl would have failed otherwise), and new
    // connections still alternate: TLS went through the VIP untouched, end to end.
    assert_eq!(bodies.iter().filter(|b| b.starts_with("web1")).count(), 2, "{bodies:?}");
    assert_eq!(bodies.iter().filter(|b| b.starts_with("web2")).count(), 2, "{bodies:?}");
    daemon.stop().expect("stop");
}

/// Maglev by connection spreads one client's connections over both web servers; with
/// `affinity = "source"` every connection of a client goes to the same one, and with
/// `"network"` every connection from the client's /24.
fn affinity() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    stack.client.addr("eth0", "192.0.2.101/24");
    let served = |from: &str| -> std::collections::BTreeSet<String> {
        (0..16)
            .map(|_| {
                let url = format!("http://{VIP}/");
                let out = stack.client.exec(&["curl", "-sS", "--max-time", "3", "--interface", from, &url]);
                server(&out).to_owned()
            })
            .collect()
    };
    let maglev = LAB_CONFIG.replacen(r#"scheduler = "round-robin""#, r#"scheduler = "maglev""#, 1);
    let sticky = maglev.replacen(r#"scheduler = "maglev""#, "scheduler = \"maglev\"\naffinity = \"source\"", 1);
    for (text, affine) in [(maglev, false), (sticky, true)] {
        let daemon = RunningDaemon::start(&stack.node, &text);
        daemon.wait_for(Duration::from_secs(3), "both up", |r| r.services[0].backends.iter().all(|b| b.state == "up"));
        for from in [CLIENT, "192.0.2.101"] {
            let seen = served(from);
            eprintln!("affinity {affine}: 16 connections from {from} went to {seen:?}");
            assert!(seen.iter().all(|s| s.starts_with("web")), "{seen:?}");
            assert_eq!(seen.len() == 1, affine, "from {from}: {seen:?}");
        }
        drop(daemon);
    }
    // Eight addresses of one /24 (a NAT pool's, say): `"source"` spreads them over both web
    // servers, `"network"` gives them all one.
    let pool: Vec<String> = (100..108).map(|h| format!("192.0.2.{h}")).collect();
    for a in &pool[2..] {
        stack.client.addr("eth0", &format!("{a}/24"));
    }
    let maglev = LAB_CONFIG.replacen(r#"scheduler = "round-robin""#, r#"scheduler = "maglev""#, 1);
    for (affinity, shared) in [("source", false), ("network", true)] {
        let text = maglev.replacen(
            r#"scheduler = "maglev""#,
            &format!("scheduler = \"maglev\"\naffinity = \"{affinity}\""),
            1,
        );
        let daemon = RunningDaemon::start(&stack.node, &text);
        daemon.wait_for(Duration::from_secs(3), "both up", |r| r.services[0].backends.iter().all(|b| b.state == "up"));
        let url = format!("http://{VIP}/");
        let seen: std::collections::BTreeSet<String> = pool
            .iter()
            .flat_map(|from| [from, from])
            .map(|from| {
                server(&stack.client.exec(&["curl", "-sS", "--max-time", "3", "--interface", from, &url])).to_owned()
            })
            .collect();
        eprintln!("affinity {affinity}: 16 connections from 8 addresses of one /24 went to {seen:?}");
        assert_eq!(seen.len() == 1, shared, "affinity {affinity}: {seen:?}");
        drop(daemon);
    }
}

/// `scheduler = "least-connections"`: web1 holds twelve kept-alive connections (opened while
/// web2 was disabled), web2 none; once web2 is back and a census has counted them, new
/// connections go to web2 (round-robin would send every other one to web1), until the two
/// even out.
fn least() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let text = LAB_CONFIG.replacen(r#"scheduler = "round-robin""#, r#"scheduler = "least-connections""#, 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(3), "both up", |r| r.services[0].backends.iter().all(|b| b.state == "up"));
    let switch = |action| {
        let r = Request::Backend { service: "www".into(), backend: "web2".into(), action };
        assert!(matches!(daemon.request(r), Response::Done { .. }));
    };
    switch(BackendAction::Disable);
    let addr: SocketAddr = format!("{VIP}:80").parse().expect("addr");
    let mut held: Vec<KeepAlive> = (0..12).map(|_| KeepAlive::open(&stack.client, addr)).collect();
    for k in &mut held {
        assert!(k.get("/").starts_with("web1"), "web2 is disabled");
    }
    switch(BackendAction::Enable);
    let web1_flows =
        |r: &StatusReport| r.services[0].backends.iter().find(|b| b.name == "web1").map_or(0, |b| b.active_flows);
    daemon.wait_for(Duration::from_secs(4), "the census counting web1's 12", |r| {
        web1_flows(r) == 12 && r.services[0].backends.iter().all(|b| b.state == "up")
    });
    // The count is in; the next census round (a second) rebuilds the ring from it.
    std::thread::sleep(Duration::from_millis(2500));
    let served: Vec<String> = (0..8).map(|_| server(&fetch(&stack.client)).to_owned()).collect();
    eprintln!("least-connections, web1 holding 12: 8 new connections went to {served:?}");
    assert!(served.iter().all(|s| s == "web2"), "{served:?}");
    assert_eq!(daemon.status().services[0].scheduler, "least-connections");
    // Twelve more held connections even the two out; from then on new ones go to both.
    for _ in 0..12 {
        let mut k = KeepAlive::open(&stack.client, addr);
        k.get("/");
        held.push(k);
    }
    let flows = |r: &StatusReport, name: &str| {
        r.services[0].backends.iter().find(|b| b.name == name).map_or(0, |b| b.active_flows)
    };
    daemon.wait_for(Duration::from_secs(4), "12 flows on each", |r| flows(r, "web1") == 12 && flows(r, "web2") == 12);
    std::thread::sleep(Duration::from_millis(2500));
    let served: std::collections::BTreeSet<String> = (0..8).map(|_| server(&fetch(&stack.client)).to_owned()).collect();
    eprintln!("least-connections, 12 on each: 8 new connections went to {served:?}");
    assert_eq!(served.len(), 2, "{served:?}");
    drop(held);
}
