//! The active-passive pair for sites without a BGP router (examples/pair): two foobar nodes on
//! one uplink segment, keepalived's VRRP holding the VIP on the master's uplink. The master's
//! uplink cut and its foobar stopped each move the VIP to the other node; both failovers are
//! timed with wrk running and a new connection every 20 ms.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use foobar_tests::{
    cluster::{Cluster, node_back},
    daemon::{DaemonProcess, foobar_binary, lab_config, socket_path},
    gate::Need,
    http::answered,
    netns::{Entry, Netns, Spawned},
    nginx,
    topology::VIP,
    wrk,
};
use libtest_mimic::Trial;

use crate::gated_alone;

const CONFIG: &str = include_str!("../../../examples/pair/foobar.toml");
const KEEPALIVED: &str = include_str!("../../../examples/pair/keepalived.conf");

pub fn trials() -> Vec<Trial> {
    vec![gated_alone("pair_lab::keepalived_moves_the_vip_when_the_master_fails", &[Need::Root, Need::Bpf], failovers)]
}

/// Node `i`'s keepalived config: the example's, made node `i`'s (node 2: the other router id,
/// priority and unicast addresses) and pointed at this lab's foobar and control socket.
fn keepalived_conf(ns: &Netns, i: usize) -> String {
    let (me, peer) = (node_back(i), node_back(1 - i));
    let status = format!("{} --socket {} status", foobar_binary().display(), socket_path(ns).display());
    let text = KEEPALIVED
        .replacen("/usr/sbin/foobar --socket /run/foobar/control.sock status", &status, 1)
        .replacen("unicast_src_ip 198.51.100.1", &format!("unicast_src_ip {me}"), 1)
        .replacen("        198.51.100.2\n", &format!("        {peer}\n"), 1);
    if i == 0 {
        text
    } else {
        text.replacen("router_id foobar1", "router_id foobar2", 1).replacen("priority 150", "priority 100", 1)
    }
}

/// keepalived in the foreground in `ns`, its pid files and log in the lab's scratch space.
fn keepalived(ns: &Netns, i: usize) -> Spawned {
    let conf = ns.scratch("keepalived.conf");
    std::fs::write(&conf, keepalived_conf(ns, i)).expect("keepalived.conf");
    let (pid, vrrp) = (ns.scratch("keepalived.pid"), ns.scratch("keepalived-vrrp.pid"));
    let args = [
        "keepalived",
        "--dont-fork",
        "--log-console",
        "--vrrp",
        "-f",
        conf.to_str().unwrap_or_default(),
        "-p",
        pid.to_str().unwrap_or_default(),
        "-r",
        vrrp.to_str().unwrap_or_default(),
    ];
    ns.spawn_via(Entry::Nsenter, &args, &ns.scratch("keepalived.log"))
}

fn holds_vip(ns: &Netns) -> bool {
    ns.ip(&["-4", "addr", "show", "dev", "front"]).contains(&format!("inet {VIP}/32"))
}

fn wait_vip(ns: &Netns, within: Duration) -> Duration {
    let started = Instant::now();
    while !holds_vip(ns) {
        assert!(started.elapsed() < within, "{} did not take the VIP within {within:?}", ns.name());
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// A new connection and one request every 20 ms from the client, each given 200 ms: the
/// instants at which one failed.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u32, Vec<Instant>)>,
}

impl Probe {
    fn start(client: &Netns) -> Probe {
        let (stop, client) = (Arc::new(AtomicBool::new(false)), client.clone());
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let _inside = client.enter();
            let addr: SocketAddr = format!("{VIP}:80").parse().expect("addr");
            let (mut tries, mut failed) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                tries += 1;
                if !answered(addr, Duration::from_millis(200), Duration::from_millis(200)) {
                    failed.push(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (tries, failed)
        });
        Probe { stop, thread }
    }

    /// Tries, failures, and the time from the first failure to the last.
    fn finish(self) -> (u32, usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let (tries, failed) = self.thread.join().expect("probe");
        let gap = match (failed.first(), failed.last()) {
            (Some(a), Some(b)) => *b - *a,
            _ => Duration::ZERO,
        };
        (tries, failed.len(), gap)
    }
}

fn failovers() {
    let c = Cluster::build(2);
    let _web1 = nginx::start(&c.web1, "web1");
    let _web2 = nginx::start(&c.web2, "web2");
    // No BGP: the router reaches the VIP on the uplink segment, by ARP, wherever it lives.
    c.router.ip(&["route", "add", &format!("{VIP}/32"), "dev", "uplink"]);
    let mut foobar: Vec<DaemonProcess> = c
        .nodes
        .iter()
        .map(|ns| {
            let file = ns.scratch("pair.toml");
            std::fs::write(&file, lab_config(ns, CONFIG, true)).expect("pair.toml");
            DaemonProcess::start(ns, Entry::Nsenter, &file, "foobar")
        })
        .collect();
    // Two daemons load and verify their programs at once, on two cores.
    for f in &foobar {
        f.wait_for_log("serving", Duration::from_secs(45));
    }
    let _k1 = keepalived(&c.nodes[0], 0);
    let took = wait_vip(&c.nodes[0], Duration::from_secs(10));
    let _k2 = keepalived(&c.nodes[1], 1);
    eprintln!("node 1 master after {took:?}");
    for _ in 0..10 {
        let out = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("web"), "{out:?}");
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(!holds_vip(&c.nodes[1]), "both nodes hold the VIP");

    // Drill 1: the master's uplink goes down. keepalived tracks it and gives the VIP up; the
    // backup takes it, announces it by gratuitous ARP, and the kept-alive connections carry
    // on through it (DSR + Maglev: it picks the same backends).
    let load = wrk::Load { seconds: 5, connections: 16, threads: 2, close: false };
    let run = wrk::start(&c.client, &format!("http://{VIP}/"), load);
    let probe = Probe::start(&c.client);
    std::thread::sleep(Duration::from_secs(1));
    c.nodes[0].ip(&["link", "set", "front", "down"]);
    let moved = wait_vip(&c.nodes[1], Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let (tries, failed, gap) = probe.finish();
    let summary = wrk::finish(run, load);
    eprintln!(
        "uplink cut: VIP on node 2 after {moved:?}; new connections {failed}/{tries} failed over {gap:?}; \
         wrk {} requests, {} failed",
        summary.requests,
        summary.failed()
    );
    assert!(moved < Duration::from_secs(2), "failover took {moved:?}");
    assert!(gap < Duration::from_secs(2), "new connections failed for {gap:?}");
    assert!(summary.failed() * 100 <= summary.requests.max(1), "{}", summary.text);

    // Node 1 comes back: nopreempt, so the VIP stays where it is and nothing fails.
    c.nodes[0].ip(&["link", "set", "front", "up"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(holds_vip(&c.nodes[1]) && !holds_vip(&c.nodes[0]), "the VIP moved back");

    // Drill 2: the master's foobar stops (and detaches): the track script sees `foobar status`
    // fail, the VIP goes back to node 1.
    let probe = Probe::start(&c.client);
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    drop(foobar.pop());
    let moved = wait_vip(&c.nodes[0], Duration::from_secs(8));
    let moved_after_stop = stopped.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (tries, failed, gap) = probe.finish();
    eprintln!(
        "foobar stopped on the master: VIP on node 1 after {moved_after_stop:?} (waited {moved:?}); \
         new connections {failed}/{tries} failed over {gap:?}"
    );
    assert!(moved_after_stop < Duration::from_secs(5), "failover took {moved_after_stop:?}");
    let out = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web"), "{out:?}");
}
