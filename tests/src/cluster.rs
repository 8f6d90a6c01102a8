//! The cluster lab (DESIGN.md's addresses): a client behind a router that spreads the VIP's
//! traffic over foobar nodes by ECMP, the routes announced by each node's BIRD.
//!
//! ```text
//! client 192.0.2.100/27 ─ router ─┬─ uplink bridge 192.0.2.128/26 ─ node1..3 (.131–.133) front
//!          (.97)          (.129)   │
//!                    lan .254 ─────┴─ lan bridge 198.51.100.0/24 ─ node1..3 back (.1–.3), web1, web2
//! ```
//!
//! Each node holds the VIP on `lo` (foobar adds it: `vip_interface = "lo"`); the web servers
//! hold it on `lo` too, for DSR, and answer clients through the router (their gateway).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use foobar::control::{
    client,
    protocol::{NodeAction, Request, Response, StatusReport},
};

use crate::{
    bird::{self, Bird},
    daemon::{DaemonProcess, lab_config, socket_path},
    netns::{Entry, Lab, Netns},
    topology::{VIP, WEB1, WEB2},
};

pub const CLIENT: &str = "192.0.2.100";
pub const ROUTER_CLIENT: &str = "192.0.2.97";
pub const ROUTER_UPLINK: &str = "192.0.2.129";
pub const ROUTER_LAN: &str = "198.51.100.254";
pub const ROUTER_AS: u32 = 64512;

/// Node `i`'s (from 0) uplink address, private address and AS.
pub fn node_uplink(i: usize) -> String {
    format!("192.0.2.{}", 131 + i)
}
pub fn node_back(i: usize) -> String {
    format!("198.51.100.{}", 1 + i)
}
pub fn node_as(i: usize) -> u32 {
    64601 + i as u32
}
/// Node `i`'s NAT address in `examples/cluster-nat.toml`.
pub fn node_nat(i: usize) -> String {
    format!("192.0.2.{}", 201 + i)
}

pub struct Cluster {
    pub client: Netns,
    pub router: Netns,
    pub nodes: Vec<Netns>,
    pub web1: Netns,
    pub web2: Netns,
    /// Kept last so namespaces are deleted after everything above is done with them.
    pub lab: Lab,
}

impl Cluster {
    pub fn build(nodes: usize) -> Cluster {
        let mut lab = Lab::new();
        let (uplink, lan) = (lab.ns("uplink"), lab.ns("lan"));
        let (client, router) = (lab.ns("client"), lab.ns("router"));
        let node_list: Vec<Netns> = (0..nodes).map(|i| lab.ns(&format!("node{}", i + 1))).collect();
        let (web1, web2) = (lab.ns("web1"), lab.ns("web2"));
        for sw in [&uplink, &lan] {
            sw.ip(&["link", "add", "br0", "type", "bridge"]);
            sw.ip(&["link", "set", "br0", "up"]);
        }
        let plug = |host: &Netns, name: &str, switch: &Netns, port: &str| {
            lab.veth(host, name, switch, port);
            switch.ip(&["link", "set", port, "master", "br0"]);
        };
        lab.veth(&client, "eth0", &router, "clients");
        client.addr("eth0", &format!("{CLIENT}/27"));
        client.ip(&["route", "add", "default", "via", ROUTER_CLIENT]);
        router.addr("clients", &format!("{ROUTER_CLIENT}/27"));
        plug(&router, "uplink", &uplink, "p-router");
        router.addr("uplink", &format!("{ROUTER_UPLINK}/26"));
        plug(&router, "lan", &lan, "p-router");
        router.addr("lan", &format!("{ROUTER_LAN}/24"));
        router.exec(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]);
        for (i, node) in node_list.iter().enumerate() {
            plug(node, "front", &uplink, &format!("p-node{}", i + 1));
            plug(node, "back", &lan, &format!("p-node{}", i + 1));
            node.addr("front", &format!("{}/26", node_uplink(i)));
            node.addr("back", &format!("{}/24", node_back(i)));
            node.ip(&["route", "add", "default", "via", ROUTER_UPLINK]);
        }
        for (ns, addr, role) in [(&web1, WEB1, "web1"), (&web2, WEB2, "web2")] {
            plug(ns, "eth0", &lan, &format!("p-{role}"));
            ns.addr("lo", &format!("{VIP}/32"));
            ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"]);
            ns.addr("eth0", &format!("{addr}/24"));
            ns.ip(&["route", "add", "default", "via", ROUTER_LAN]);
        }
        Cluster { client, router, nodes: node_list, web1, web2, lab }
    }

    /// The router's next hops for the VIP, as its kernel holds them (one per announcing node).
    pub fn vip_next_hops(&self) -> Vec<String> {
        self.next_hops(VIP)
    }

    /// The router's next hops for `addr`/32.
    pub fn next_hops(&self, addr: &str) -> Vec<String> {
        let out = self.router.ip(&["-4", "route", "show", &format!("{addr}/32")]);
        out.split("via ").skip(1).filter_map(|s| s.split_whitespace().next().map(str::to_owned)).collect()
    }
}

/// One node of a running cluster: its BIRD and its foobar (a separate process, so it can be
/// killed as a crash would).
pub struct Node {
    pub ns: Netns,
    pub bird: Bird,
    pub foobar: DaemonProcess,
    pub socket: PathBuf,
    /// The config it runs (`config` of [`Cluster::start_nodes`] made its own).
    pub config: PathBuf,
}

impl Node {
    pub fn status(&self) -> StatusReport {
        self.foobar.status(&self.socket)
    }

    /// `foobar node drain|enable` on this node.
    pub fn node(&self, action: NodeAction) {
        let r = client::request(&self.socket, &Request::Node { action });
        assert!(matches!(r, Ok(Response::Done { .. })), "{r:?}");
    }
}

impl Cluster {
    /// BIRD on the router, then on every node BIRD announcing the VIP (`protocol static
    /// www_vip`) and `foobar` (the binary at `bin`) with `config` (examples/cluster.toml's
    /// shape), each with its own control socket, pins and BIRD socket; returns once every
    /// foobar serves.
    pub fn start_nodes(&self, bin: &std::path::Path, config: &str) -> (Bird, Vec<Node>) {
        self.start_nodes_with(bin, config, |_, conf| conf)
    }

    /// [`Cluster::start_nodes`], each node's BIRD config passed through `bird_conf` (with the
    /// node's index) first.
    pub fn start_nodes_with(
        &self,
        bin: &std::path::Path,
        config: &str,
        bird_conf: impl Fn(usize, String) -> String,
    ) -> (Bird, Vec<Node>) {
        let peers: Vec<(String, u32)> = (0..self.nodes.len()).map(|i| (node_uplink(i), node_as(i))).collect();
        let router = Bird::start(&self.router, "router", &bird::router_conf(ROUTER_UPLINK, ROUTER_AS, &peers));
        let nodes: Vec<Node> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let conf = bird::node_conf(&node_uplink(i), node_as(i), ROUTER_UPLINK, ROUTER_AS, "www_vip", VIP);
                let conf = bird_conf(i, conf);
                let bird = Bird::start(ns, "node", &conf);
                let socket = format!("bird_socket = {:?}", bird.socket.display().to_string());
                let text = lab_config(ns, config, true)
                    .replacen("bird_socket = \"/run/bird/bird.ctl\"", &socket, 1)
                    .replacen("[daemon]\n", &format!("[daemon]\nnode_name = \"node{}\"\n", i + 1), 1);
                let file = ns.scratch("cluster.toml");
                std::fs::write(&file, text).expect("node config");
                let foobar = DaemonProcess::spawn(ns, Entry::Nsenter, &[], bin, &file, "foobar");
                Node { ns: ns.clone(), bird, foobar, socket: socket_path(ns), config: file }
            })
            .collect();
        // Three daemons load and verify their XDP programs at once, on two cores that may be
        // running another lab too: seconds each, and a CI run once took more than 15 s.
        for n in &nodes {
            n.foobar.wait_for_log("serving", Duration::from_secs(45));
        }
        (router, nodes)
    }

    /// [`Cluster::start_nodes`] with `config` shaped as `examples/cluster-nat.toml`: NAT with
    /// flow sync, a shared key written for the nodes, each node's BIRD announcing its own NAT
    /// address and its peers' (a longer path). Returns once every node's NAT address is routed
    /// to it.
    pub fn start_nat_nodes(&self, bin: &std::path::Path, config: &str) -> (Bird, Vec<Node>) {
        let key = self.nodes[0].scratch("cluster.key");
        std::fs::write(&key, [0x5a; 32]).expect("cluster key");
        let config = config.replacen("/etc/foobar/cluster.key", &key.display().to_string(), 1);
        let nat: Vec<String> = (0..self.nodes.len()).map(node_nat).collect();
        let started = self
            .start_nodes_with(bin, &config, |i, conf| bird::with_nat_addresses(&conf, "www_vip", node_as(i), &nat, i));
        for (i, addr) in nat.iter().enumerate() {
            self.wait_routes(addr, &[node_uplink(i)], Duration::from_secs(20));
        }
        started
    }

    /// Waits until the router's next hops for the VIP are exactly `want` (in any order);
    /// how long it took.
    pub fn wait_next_hops(&self, want: &[String], within: Duration) -> Duration {
        self.wait_routes(VIP, want, within)
    }

    /// Waits until the router's next hops for `addr` are exactly `want`; how long it took.
    pub fn wait_routes(&self, addr: &str, want: &[String], within: Duration) -> Duration {
        let mut want = want.to_vec();
        want.sort();
        let started = Instant::now();
        loop {
            let mut hops = self.next_hops(addr);
            hops.sort();
            if hops == want {
                return started.elapsed();
            }
            if started.elapsed() >= within {
                // What BIRD on the router says of each session, for the reader of the failure.
                let ctl = self.router.scratch("bird-router").join("bird.ctl");
                let said = self.router.output(&["birdc", "-s", ctl.to_str().unwrap_or(""), "show", "protocols", "all"]);
                panic!(
                    "router's next hops for {addr} {hops:?}, expected {want:?} within {within:?}; the router's BIRD:\n{}",
                    String::from_utf8_lossy(&said.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
