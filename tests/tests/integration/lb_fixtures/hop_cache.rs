//! New flows reuse the next hop their CPU found towards a backend within the last second (no
//! route lookup of their own), and a neighbour change reaches them once that second is out; a
//! flood's stateless forwards share one hop unless a routing rule chooses by source.

use std::{thread, time::Duration};

use foobar::dataplane::services::SynProxy;
use foobar_common::lb::LbSettings;

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

/// A DSR Maglev service under a flood forwards by hash and keeps nothing; its next hop is
/// looked up once for every source while no routing rule chooses by source, and per source
/// while one does.
pub fn stateless_flood_hops() {
    on_cpu(0);
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    let dsr = ServiceSpec {
        scheduler: Scheduler::Maglev,
        syn_proxy: SynProxy::UnderFlood,
        ..service("dsr", "192.0.2.10", 8080, 6, Mode::Dsr, vec![backend("web1", "198.51.100.11")])
    };
    services.add(dp, dsr).expect("dsr");
    // Flood mode from this CPU's second new flow in a window.
    dp.set_lb_settings(LbSettings { flood_new_flows: 1, ..LbSettings::DEFAULT }).expect("settings");
    // Frames from 192.0.2.200 reach web1 through web2's host, by their own table.
    n.ns.ip(&["route", "add", "198.51.100.11", "via", "198.51.100.12", "dev", "back", "table", "100"]);
    n.ns.ip(&["rule", "add", "from", "192.0.2.200", "lookup", "100", "priority", "100"]);
    assert!(dp.refresh_surroundings().expect("surroundings").rules_by_source, "the rule by source was not seen");
    let syn =
        |src: [u8; 4], sport| macs(Frame::tcp4(src, sport, VIP, 8080).flags(TcpFlags::SYN), CLIENT_MAC, n.front_mac);
    let out = |src: [u8; 4], sport, mac| {
        Some(fwd(Frame::tcp4(src, sport, VIP, 8080).flags(TcpFlags::SYN), n.back_mac, mac_of(mac)))
    };
    let case = |name, src, sport, mac, counters| Case {
        name,
        ingress: Some(n.front),
        frame: syn(src, sport),
        verdict: XDP_REDIRECT,
        output: out(src, sport, mac),
        counters,
    };
    let cases = vec![
        case("the window's first new flow is tracked", CLIENT, 40000, 0x11, &[Ipv4, Tcp, LbNewFlow]),
        case("the next is forwarded by hash, no entry kept", CLIENT, 40001, 0x11, &[Ipv4, Tcp, LbStateless]),
        case(
            "one from 192.0.2.200 goes by its rule, not by the hop found for the client",
            [192, 0, 2, 200],
            40000,
            0x12,
            &[Ipv4, Tcp, LbStateless],
        ),
    ];
    run_cases(dp, Trust::Trusted, cases);
    n.ns.ip(&["rule", "del", "from", "192.0.2.200", "lookup", "100", "priority", "100"]);
    assert!(!dp.refresh_surroundings().expect("surroundings").rules_by_source, "no rule by source is left");
    let cases = vec![
        case(
            "with no rule by source, a flood's sources share one hop",
            [192, 0, 2, 201],
            40000,
            0x11,
            &[Ipv4, Tcp, LbStateless],
        ),
        case("192.0.2.200 too, now its rule is gone", [192, 0, 2, 200], 40001, 0x11, &[Ipv4, Tcp, LbStateless]),
    ];
    run_cases(dp, Trust::Trusted, cases);
}
