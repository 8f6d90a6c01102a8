//! BIRD 2 (Debian's `bird2`) routing daemons in lab namespaces: the cluster lab's router, and
//! one per foobar node announcing the VIPs, talking BGP with BFD over the uplink.

use std::{path::PathBuf, time::Duration};

use crate::netns::{Netns, Spawned};

/// A running bird and its control socket.
pub struct Bird {
    pub process: Spawned,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl Bird {
    /// Starts bird in the foreground in `ns` with config `conf`, and waits for its socket.
    pub fn start(ns: &Netns, name: &str, conf: &str) -> Bird {
        let dir = ns.scratch(&format!("bird-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bird dir");
        let (config, socket) = (dir.join("bird.conf"), dir.join("bird.ctl"));
        std::fs::write(&config, conf).expect("bird.conf");
        let check = ns.output(&["bird", "-p", "-c", config.to_str().expect("utf-8")]);
        assert!(check.status.success(), "bird.conf for {name}: {}\n{conf}", String::from_utf8_lossy(&check.stderr));
        let (c, s) = (config.display().to_string(), socket.display().to_string());
        let process = ns.spawn(&["bird", "-f", "-c", &c, "-s", &s], &dir.join("bird.log"));
        for _ in 0..100 {
            if socket.exists() {
                return Bird { process, socket, dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bird {name} made no control socket in 5 s");
    }
}

/// The router's config: BGP with BFD to each node (`nodes`: address and AS), routes merged
/// into kernel ECMP routes. A session that failed (BFD under a loaded machine) starts again
/// within seconds, not BIRD's default minute (`error wait time`), on both sides.
pub fn router_conf(router_id: &str, local_as: u32, nodes: &[(String, u32)]) -> String {
    let mut conf = format!(
        "router id {router_id};\n\
         log stderr all;\n\
         debug protocols {{ states }};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\n\
         protocol bfd {{ interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n"
    );
    for (i, (addr, asn)) in nodes.iter().enumerate() {
        conf.push_str(&format!(
            "protocol bgp node{} {{ local {router_id} as {local_as}; neighbor {addr} as {asn}; bfd on; \
             hold time 3; connect retry time 1; error wait time 1, 3; ipv4 {{ import all; export none; }}; }}\n",
            i + 1
        ));
    }
    conf
}

/// A node's config: the VIP's route in `protocol static <protocol>` (disabled until foobar
/// enables it), exported by BGP with BFD to the router.
pub fn node_conf(node: &str, local_as: u32, router: &str, router_as: u32, protocol: &str, vip: &str) -> String {
    format!(
        "router id {node};\n\
         protocol device {{ scan time 1; }}\n\
         protocol static {protocol} {{ ipv4; route {vip}/32 unreachable; disabled yes; }}\n\
         protocol bfd {{ interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         protocol bgp uplink {{ local {node} as {local_as}; neighbor {router} as {router_as}; bfd on; \
         hold time 3; connect retry time 1; error wait time 1, 3; ipv4 {{ import none; export where proto = \"{protocol}\"; next hop self; }}; }}\n"
    )
}

/// `conf` (a [`node_conf`]) with the cluster's NAT addresses added (`nat`, by node; `own`
/// this node's index): its own announced as it is, its peers' with a path two hops longer,
/// so the router sends each address's replies to its node while it lives, else to the others.
pub fn with_nat_addresses(conf: &str, protocol: &str, local_as: u32, nat: &[String], own: usize) -> String {
    let route = |a: &String| format!("route {a}/32 unreachable;");
    let peers: Vec<String> = nat.iter().enumerate().filter(|(i, _)| *i != own).map(|(_, a)| route(a)).collect();
    let statics = format!(
        "protocol static nat_own {{ ipv4; {} disabled yes; }}\nprotocol static nat_peers {{ ipv4; {} }}\n",
        route(&nat[own]),
        peers.join(" ")
    );
    let filter = format!(
        "export filter {{ if proto = \"{protocol}\" || proto = \"nat_own\" then accept; \
         if proto = \"nat_peers\" then {{ bgp_path.prepend({local_as}); bgp_path.prepend({local_as}); accept; }} reject; }};"
    );
    let conf = conf.replacen(&format!("export where proto = \"{protocol}\";"), &filter, 1);
    let at = conf.find("protocol bfd").expect("a node_conf");
    format!("{}{statics}{}", &conf[..at], &conf[at..])
}
