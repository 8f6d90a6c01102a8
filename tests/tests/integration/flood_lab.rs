//! Spoofed floods at the lab's VIP while real clients use it: the daemon runs
//! `examples/lab.toml` (www in NAT mode, its SYN proxy on as by default), nginx serves, wrk and
//! curl are the clients, and the floods come from sources spread over 203.0.113.0/24, each
//! under `syn_rate_per_source`, as a botnet's would.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use foobar::{config, daemon::Daemon, dataplane::CounterSnapshot, plan::Plan};
use foobar_common::counters::Counter;
use foobar_tests::{
    daemon::lab_config,
    gate::Need,
    http::KeepAlive,
    nginx,
    packet::{Frame, TcpFlags},
    raw,
    topology::*,
    wrk,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![gated("flood_lab::spoofed_floods_leave_the_service_up_lab", &[Need::Root, Need::Bpf], floods)]
}

const VIP_ADDR: [u8; 4] = [192, 0, 2, 10];

/// Sources the floods come from: every host of 203.0.113.0/24.
const SOURCES: u32 = 254;
/// The issue's flood: 60,000 segments in five seconds.
const FLOOD: u64 = 60_000;
const FLOOD_SECONDS: u64 = 5;

/// `n` distinct frames from the flood's sources, each made by `make(source, port, i)`.
fn spoofed(node_mac: [u8; 6], n: u32, make: impl Fn([u8; 4], u16, u32) -> Frame) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let source = [203, 0, 113, 1 + (i % SOURCES) as u8];
            let port = 1024 + (i / SOURCES) as u16;
            let mut f = make(source, port, i).build();
            f[..6].copy_from_slice(&node_mac);
            f
        })
        .collect()
}

/// What a flood did and what the legitimate clients saw while it lasted.
struct Outcome {
    sent: u64,
    /// Which services `status` said were under flood, a second into it.
    flooded: Vec<String>,
    requests: u64,
    failed: u64,
    before: CounterSnapshot,
    after: CounterSnapshot,
}

impl Outcome {
    fn delta(&self, c: Counter) -> u64 {
        self.after.since(&self.before, c)
    }
}

/// Runs wrk (a new connection per request) through `frames` sent at `per_second` for
/// `seconds`, then checks at once that a new connection is served.
fn under_flood(stack: &Stack, daemon: &Daemon, frames: &[Vec<u8>], per_second: u64, seconds: u64) -> Outcome {
    let before = daemon.dataplane().counters().expect("counters");
    let load = wrk::Load::light(seconds as u32 + 1, true);
    let running = wrk::start(&stack.client, &format!("http://{VIP}/"), load);
    let until = Instant::now() + Duration::from_secs(seconds);
    let (client, frames) = (stack.client.clone(), frames.to_vec());
    let sender = std::thread::spawn(move || raw::flood(&client, "eth0", &frames, per_second, until));
    std::thread::sleep(Duration::from_secs(1));
    let flooded = daemon.status().services.into_iter().filter(|s| s.under_flood).map(|s| s.name).collect();
    let sent = sender.join().expect("flood thread").expect("flood sent");
    let summary = wrk::finish(running, load);
    let after_flood = stack.client.output(&["curl", "-sS", "--max-time", "2", &format!("http://{VIP}/")]);
    assert!(
        String::from_utf8_lossy(&after_flood.stdout).starts_with("web"),
        "a new connection right after the flood was not served: {after_flood:?}"
    );
    let after = daemon.dataplane().counters().expect("counters");
    Outcome { sent, flooded, requests: summary.requests, failed: summary.failed(), before, after }
}

/// A UDP service on the VIP, NAT to the web servers (which run no UDP server: nothing answers,
/// so every flow stays unproven), for the UDP flood to meet the state it could fill.
const UDP_SERVICE: &str = r#"
[[firewall.allow]]
proto = "udp"
to = "192.0.2.10"
ports = [5300]

[[service]]
name = "udp"
vip = "192.0.2.10"
ports = [5300]
proto = "udp"
mode = "nat"

[[service.backend]]
name = "web1"
address = "198.51.100.11"

[[service.backend]]
name = "web2"
address = "198.51.100.12"
"#;

fn floods() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let node_mac = stack.node.mac("front");
    let _inside = stack.node.enter();
    let text = lab_config(&stack.node, LAB_CONFIG, true) + UDP_SERVICE;
    let cfg = config::parse(Path::new("examples/lab.toml"), &text, &config::interface_exists).expect("lab config");
    let daemon = Daemon::start(Plan::compile(cfg).expect("plan")).expect("daemon starts");

    // A real client's handshake goes through the proxy: cookie, backend handshake, data.
    let mut idle = KeepAlive::open(&stack.client, format!("{VIP}:80").parse().expect("addr"));
    assert!(idle.get("/").starts_with("web"), "a keep-alive request through the SYN proxy");
    let www = daemon.status().services.into_iter().find(|s| s.name == "www").expect("www");
    assert_eq!((www.syn_proxy.as_str(), www.exposed.as_deref()), ("always", None), "{www:?}");
    let c = daemon.dataplane().counters().expect("counters");
    for counter in [Counter::LbSynCookieSent, Counter::LbSynCookieValid, Counter::LbProxiedHandshake] {
        assert!(c.get(counter) >= 1, "{counter:?} did not move: the connection did not take the proxy");
    }

    let per_second = FLOOD / FLOOD_SECONDS;
    let syns =
        spoofed(node_mac, FLOOD as u32, |src, port, _| Frame::tcp4(src, port, VIP_ADDR, 80).flags(TcpFlags::SYN));
    let acks = spoofed(node_mac, FLOOD as u32, |src, port, i| {
        Frame::tcp4(src, port, VIP_ADDR, 80).tcp_numbers(i.wrapping_mul(2_654_435_761), i.rotate_left(13), 512)
    });
    let udp = spoofed(node_mac, FLOOD as u32, |src, port, _| Frame::udp4(src, port, VIP_ADDR, 5300).payload(b"flood"));
    let quiet = under_flood(&stack, &daemon, &[], per_second, 3);
    let quiet_rate = quiet.requests as f64 / 4.0;
    eprintln!("quiet: wrk {} requests ({quiet_rate:.0}/s)", quiet.requests);
    // The same SYN flood ten times as fast, as far as one sending thread gets: the sender and
    // the node share two cores and the client's link, so only "served, not failed" is asked.
    let rounds = [
        ("SYN flood", &syns, per_second, FLOOD_SECONDS, 0.5),
        ("ACK flood", &acks, per_second, FLOOD_SECONDS, 0.5),
        ("UDP flood", &udp, per_second, FLOOD_SECONDS, 0.5),
        ("10x SYN flood", &syns, 10 * per_second, 3, 0.0),
    ];
    for (name, frames, rate, seconds, kept) in rounds {
        let o = under_flood(&stack, &daemon, frames, rate, seconds);
        let (cookies, invalid, new_flows) =
            (o.delta(Counter::LbSynCookieSent), o.delta(Counter::LbSynCookieInvalid), o.delta(Counter::LbNewFlow));
        // SYNs the firewall cut: over a source's limit, or over the /24's (`syn_rate_per_net`).
        let (source_limited, net_limited) = (o.delta(Counter::FwSynRateLimited), o.delta(Counter::FwSynNetLimited));
        let refused = source_limited + net_limited;
        let served = o.requests as f64 / (seconds + 1) as f64;
        eprintln!(
            "{name}: {} sent; wrk {} requests ({served:.0}/s, {:.2}x quiet), {} failed; {cookies} cookies, \
             {invalid} bad cookie ACKs, {source_limited}+{net_limited} SYNs over the source/24 limits, {new_flows} new flows, \
             {} NAT ports exhausted",
            o.sent,
            o.requests,
            served / quiet_rate,
            o.failed,
            o.delta(Counter::LbNatPortsExhausted)
        );
        let moved: Vec<String> = o
            .after
            .nonzero()
            .filter_map(|(c, v)| {
                let d = v - o.before.get(c);
                (d > 0).then(|| format!("{c:?}+{d}"))
            })
            .collect();
        eprintln!("  {}", moved.join(" "));
        assert!(o.requests > 0 && o.failed == 0, "{name}: legitimate requests failed during the flood");
        assert!(served >= kept * quiet_rate, "{name}: {served:.0} requests/s kept of {quiet_rate:.0}");
        assert_eq!(o.delta(Counter::LbNatPortsExhausted), 0, "{name}: NAT ports ran out");
        // `status` says which service is under a flood of new flows (an ACK flood begins none).
        let expected: &[&str] = match name {
            "ACK flood" => &[],
            "UDP flood" => &["udp"],
            _ => &["www"],
        };
        assert_eq!(o.flooded, expected, "{name}: services under flood in `status`");
        match name {
            // Unproven UDP flows take state, but give their ports up to newer ones.
            "UDP flood" => assert!(new_flows * 10 >= o.sent * 8, "{name}: {new_flows} flows for {} datagrams", o.sent),
            _ => {
                // Only the legitimate connections began flows, not the flood.
                assert!(new_flows <= o.requests + 50, "{name}: {new_flows} flows for {} requests", o.requests);
                let answered = if name == "ACK flood" { invalid } else { cookies + refused };
                if name != "ACK flood" {
                    // 12,000 SYNs/s or more from one /24: the net limit lets 5,000/s reach the proxy.
                    assert!(
                        net_limited > 0 && cookies > 0,
                        "{name}: {cookies} cookies, {net_limited} cut by the /24 limit"
                    );
                }
                assert!(
                    answered * 10 >= o.sent * 8,
                    "{name}: only {answered} of {} segments refused or answered",
                    o.sent
                );
            }
        }
    }
    // The connection kept open from before the floods still answers.
    assert!(idle.get("/").starts_with("web"), "the idle keep-alive connection died in the floods");
    daemon.stop().expect("daemon stops");
}
