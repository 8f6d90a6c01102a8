//! New flows reuse the next hop their CPU found towards a backend within the last second (no
//! route lookup of their own), and a neighbour change reaches them once that second is out.

use std::{thread, time::Duration};

use super::lab::*;

pub fn run() {
    // The hops are remembered per CPU: every run on one.
    on_cpu(0);
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, n, .. } = &mut www;
    run_cases(dp, Trust::Trusted, vec![first_flow_to_web1(n)]);
    // web1's address moves to another host (another MAC), as a failover's gratuitous ARP does.
    let moved = mac_of(0x21).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    n.ns.ip(&["neigh", "replace", "198.51.100.11", "lladdr", &moved, "dev", "back", "nud", "permanent"]);
    thread::sleep(Duration::from_millis(1100));
    let cases = vec![Case {
        name: "a new flow a second later goes to web1's new MAC",
        ingress: Some(n.front),
        frame: to_www(n, 40001, TcpFlags::SYN),
        verdict: XDP_REDIRECT,
        output: nat_to(n, 10241, WEB1, 0x21, TcpFlags::SYN),
        counters: &[Ipv4, Tcp, LbNewFlow],
    }];
    run_cases(dp, Trust::Trusted, cases);
}
