//! The load balancer through `BPF_PROG_TEST_RUN`: input frame → verdict and the exact frame
//! that leaves, for NAT both ways, DSR, IPv6, established flows, FIN and an empty backend set.
//!
//! The runs happen in a [`Router`] namespace, so the kernel's FIB lookup, and with it every
//! output byte, is fixed.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use foobar::dataplane::{
    Dataplane, Trust,
    firewall::Settings,
    rules::AllowRule,
    services::{BackendSpec, BackendState, Mode, Scheduler, ServiceSpec, Services},
};
use foobar_common::{counters::Counter::*, lb::LbSettings};
use foobar_tests::{
    gate::Need,
    netns::{Entered, Lab},
    packet::{CLIENT_MAC, Frame, TcpFlags, Transport},
    router::{Router, mac_of},
};
use libtest_mimic::Trial;

use crate::{
    fixtures::{Case, XDP_DROP, XDP_PASS, XDP_REDIRECT, run_cases},
    gated,
};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("lb_fixtures::nat_dsr_ipv6_and_flow_lifecycle", &[Need::Root, Need::Bpf], lb_fixtures),
        gated("lb_fixtures::weighted_maglev_and_backup_scheduling", &[Need::Root, Need::Bpf], scheduling),
        gated("lb_fixtures::active_flows_are_counted_over_the_whole_table", &[Need::Root, Need::Bpf], active_count),
        gated("lb_fixtures::a_closed_flows_nat_port_goes_to_the_next_flow", &[Need::Root, Need::Bpf], nat_port_reuse),
        gated("lb_fixtures::a_reused_tuple_leaves_a_draining_backend", &[Need::Root, Need::Bpf], resume_not_draining),
        gated("lb_fixtures::tracked_flows_skip_the_allow_rules", &[Need::Root, Need::Bpf], established_bypass),
        gated("lb_fixtures::udp_nat_patches_or_keeps_the_checksum", &[Need::Root, Need::Bpf], udp_nat_checksums),
        gated("lb_fixtures::cached_flows_follow_the_table_on_every_cpu", &[Need::Root, Need::Bpf], cached_flows),
    ]
}

const CLIENT: [u8; 4] = [192, 0, 2, 100];
const VIP: [u8; 4] = [192, 0, 2, 10];
const DNS: [u8; 4] = [192, 0, 2, 53];
const SNAT: [u8; 4] = [198, 51, 100, 1];
const WEB1: [u8; 4] = [198, 51, 100, 11];
const WEB2: [u8; 4] = [198, 51, 100, 12];
const APP: [u8; 4] = [198, 51, 100, 21];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("v6 literal")
}

fn backend(name: &str, addr: &str) -> BackendSpec {
    BackendSpec::new(name, addr.parse().expect("ip"))
}

fn service(name: &str, vip: &str, port: u16, protocol: u8, mode: Mode, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec { protocol, mode, ..ServiceSpec::tcp(name, vip.parse::<IpAddr>().expect("ip"), port, backends) }
}

/// ICMP "fragmentation needed" (MTU 1400) from `router` to `to`, quoting `sent`'s IP header and
/// the first eight bytes after it, as routers do at least.
fn icmp_error4(router: [u8; 4], to: [u8; 4], sent: &[u8]) -> Frame {
    let quoted = &sent[14..14 + 28];
    Frame { transport: Transport::Icmp { kind: 3, code: 4, rest: [0, 0, 0x05, 0x78] }, ..Frame::ping4(router, to) }
        .payload(quoted)
}

/// ICMPv6 "packet too big" (MTU 1400) quoting `sent`'s header and eight bytes after it.
fn icmp_error6(router: Ipv6Addr, to: Ipv6Addr, sent: &[u8]) -> Frame {
    let quoted = &sent[14..14 + 48];
    Frame {
        transport: Transport::Icmp { kind: 2, code: 0, rest: [0, 0, 0x05, 0x78] },
        ..Frame::icmp6(router, to, 2, 0)
    }
    .payload(quoted)
}

fn macs(mut f: Frame, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    f.src_mac = src;
    f.dst_mac = dst;
    f.build()
}

/// What the single-service fixtures run in: a router namespace this thread has entered, a
/// fresh data plane, and www (192.0.2.10:80/tcp, NAT) over the given backends. Fields drop in
/// order: the data plane, then the thread leaves the namespace, then the namespace goes.
struct WwwLab {
    dp: Dataplane,
    services: Services,
    _inside: Entered,
    n: Router,
    _lab: Lab,
}

fn www_lab(backends: Vec<BackendSpec>) -> WwwLab {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let inside = n.ns.enter();
    let mut dp = Dataplane::load().expect("load data plane");
    let mut services = Services::new();
    services.add(&mut dp, service("www", "192.0.2.10", 80, 6, Mode::Nat, backends)).expect("www");
    WwwLab { dp, services, _inside: inside, n, _lab: lab }
}

/// A TCP segment from the client's port `sport` to www, as it reaches the front interface.
fn to_www(n: &Router, sport: u16, flags: u8) -> Vec<u8> {
    macs(Frame::tcp4(CLIENT, sport, VIP, 80).flags(flags), CLIENT_MAC, n.front_mac)
}

/// The same segment as NAT sends it on to the backend at `web` (MAC ending `mac`) from `port`.
fn nat_to(n: &Router, port: u16, web: [u8; 4], mac: u8, flags: u8) -> Option<Vec<u8>> {
    Some(macs(Frame::tcp4(SNAT, port, web, 80).flags(flags), n.back_mac, mac_of(mac)))
}

fn lb_fixtures() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let mut dp = Dataplane::load().expect("load data plane");
    let mut services = Services::new();
    let web = || vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    services.add(&mut dp, service("www", "192.0.2.10", 80, 6, Mode::Nat, web())).expect("www");
    services
        .add(
            &mut dp,
            service(
                "www6",
                "2001:db8:1::10",
                80,
                6,
                Mode::Nat,
                vec![backend("web1", "2001:db8:2::11"), backend("web2", "2001:db8:2::12")],
            ),
        )
        .expect("www6");
    services
        .add(&mut dp, service("dns", "192.0.2.53", 53, 17, Mode::Dsr, vec![backend("app", "198.51.100.21")]))
        .expect("dns");
    services
        .add(&mut dp, service("empty", "192.0.2.10", 8080, 6, Mode::Nat, vec![backend("web1", "198.51.100.11")]))
        .expect("empty");
    services.set_state(&mut dp, "empty", "web1", BackendState::Down).expect("down");
    services
        .add(&mut dp, service("empty6", "2001:db8:1::10", 8080, 6, Mode::Nat, vec![backend("web1", "2001:db8:2::11")]))
        .expect("empty6");
    services.set_state(&mut dp, "empty6", "web1", BackendState::Down).expect("down");

    let client = CLIENT_MAC;
    let (front, back) = (n.front_mac, n.back_mac);
    let syn = |sport| Frame::tcp4(CLIENT, sport, VIP, 80).flags(TcpFlags::SYN);
    let cases = vec![
        Case {
            name: "first new flow: NAT to web1 from the node's back address",
            ingress: Some(n.front),
            frame: macs(syn(40000), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::SYN), back, mac_of(0x11))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "second new flow: round-robin to web2 with the next NAT port",
            ingress: Some(n.front),
            frame: macs(syn(40001), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::tcp4(SNAT, 10241, WEB2, 80).flags(TcpFlags::SYN), back, mac_of(0x12))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "established packet of the first flow stays on web1",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, VIP, 80).payload(b"GET / HTTP/1.1\r\n\r\n"), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp4(SNAT, 10240, WEB1, 80).payload(b"GET / HTTP/1.1\r\n\r\n"),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "web1's reply is translated back to come from the VIP",
            ingress: Some(n.back),
            frame: macs(Frame::tcp4(WEB1, 80, SNAT, 10240).flags(TcpFlags::SYN | TcpFlags::ACK), mac_of(0x11), back),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::tcp4(VIP, 80, CLIENT, 40000).flags(TcpFlags::SYN | TcpFlags::ACK), front, client)),
            counters: &[Ipv4, Tcp, LbNatReply],
        },
        Case {
            name: "a FIN is forwarded and marks the flow closing",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(TcpFlags::FIN | TcpFlags::ACK), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::FIN | TcpFlags::ACK),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowClosing],
        },
        Case {
            // Same backend and NAT port: web1 may hold the old connection in TIME_WAIT, which
            // only this tuple's next SYN gets through.
            name: "a new SYN on the closing tuple is a new flow on its backend and NAT port",
            ingress: Some(n.front),
            frame: macs(syn(40000), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::SYN), back, mac_of(0x11))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "IPv6 NAT to the v6 backends",
            ingress: Some(n.front),
            frame: macs(
                Frame::tcp6(v6("2001:db8:1::100"), 50000, v6("2001:db8:1::10"), 80).flags(TcpFlags::SYN),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp6(v6("2001:db8:2::1"), 10242, v6("2001:db8:2::11"), 80).flags(TcpFlags::SYN),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv6, Tcp, LbNewFlow],
        },
        Case {
            name: "IPv6 reply translated back",
            ingress: Some(n.back),
            frame: macs(
                Frame::tcp6(v6("2001:db8:2::11"), 80, v6("2001:db8:2::1"), 10242).flags(TcpFlags::SYN | TcpFlags::ACK),
                mac_of(0x11),
                back,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp6(v6("2001:db8:1::10"), 80, v6("2001:db8:1::100"), 50000)
                    .flags(TcpFlags::SYN | TcpFlags::ACK),
                front,
                client,
            )),
            counters: &[Ipv6, Tcp, LbNatReply],
        },
        Case {
            name: "DSR: only the MACs change",
            ingress: Some(n.front),
            frame: macs(Frame::udp4(CLIENT, 5353, DNS, 53).payload(b"query"), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::udp4(CLIENT, 5353, DNS, 53).payload(b"query"), back, mac_of(0x21))),
            counters: &[Ipv4, Udp, LbNewFlow],
        },
        Case {
            name: "DSR answer passing the node goes straight to the client",
            ingress: Some(n.back),
            frame: macs(Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer"), mac_of(0x21), back),
            verdict: XDP_REDIRECT,
            output: Some(macs(Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer"), front, client)),
            counters: &[Ipv4, Udp],
        },
        Case {
            name: "ICMP fragmentation-needed about a NAT flow goes to its backend, translated",
            ingress: Some(n.front),
            frame: macs(icmp_error4([192, 0, 2, 1], VIP, &Frame::tcp4(VIP, 80, CLIENT, 40001).build()), client, front),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                icmp_error4([192, 0, 2, 1], WEB2, &Frame::tcp4(WEB2, 80, SNAT, 10241).build()),
                back,
                mac_of(0x12),
            )),
            counters: &[Ipv4, Icmp, LbIcmpToBackend],
        },
        Case {
            name: "ICMP error about a DSR flow goes to its backend unchanged",
            ingress: Some(n.front),
            frame: macs(
                icmp_error4([192, 0, 2, 1], DNS, &Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer").build()),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                icmp_error4([192, 0, 2, 1], DNS, &Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer").build()),
                back,
                mac_of(0x21),
            )),
            counters: &[Ipv4, Icmp, LbIcmpToBackend],
        },
        Case {
            name: "ICMPv6 packet-too-big about a NAT flow goes to its backend, translated",
            ingress: Some(n.front),
            frame: macs(
                icmp_error6(
                    v6("2001:db8:1::1"),
                    v6("2001:db8:1::10"),
                    &Frame::tcp6(v6("2001:db8:1::10"), 80, v6("2001:db8:1::100"), 50000).build(),
                ),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                icmp_error6(
                    v6("2001:db8:1::1"),
                    v6("2001:db8:2::11"),
                    &Frame::tcp6(v6("2001:db8:2::11"), 80, v6("2001:db8:2::1"), 10242).build(),
                ),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv6, Icmpv6, LbIcmpToBackend],
        },
        Case {
            name: "ICMP error about no tracked flow passes to the stack",
            ingress: Some(n.front),
            frame: macs(icmp_error4([192, 0, 2, 1], VIP, &Frame::tcp4(VIP, 80, CLIENT, 1).build()), client, front),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Icmp],
        },
        Case {
            name: "no backend up: a SYN is answered with RST+ACK at once",
            ingress: Some(n.front),
            frame: macs(
                Frame::tcp4(CLIENT, 40100, VIP, 8080).flags(TcpFlags::SYN).tcp_numbers(1000, 0, 64240),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp4(VIP, 8080, CLIENT, 40100).flags(TcpFlags::RST | TcpFlags::ACK).tcp_numbers(0, 1001, 0),
                front,
                client,
            )),
            counters: &[Ipv4, Tcp, LbNoBackend, LbRefused],
        },
        Case {
            name: "no backend up: a stray ACK is answered with a RST from its ack number",
            ingress: Some(n.front),
            frame: macs(
                Frame::tcp4(CLIENT, 40101, VIP, 8080).payload(b"data").tcp_numbers(5000, 777, 64240),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp4(VIP, 8080, CLIENT, 40101).flags(TcpFlags::RST).tcp_numbers(777, 0, 0),
                front,
                client,
            )),
            counters: &[Ipv4, Tcp, LbNoBackend, LbRefused],
        },
        Case {
            name: "no backend up: a RST is never answered",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40102, VIP, 8080).flags(TcpFlags::RST), client, front),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbNoBackend],
        },
        Case {
            name: "no backend up over IPv6: RST+ACK",
            ingress: Some(n.front),
            frame: macs(
                Frame::tcp6(v6("2001:db8:1::100"), 50100, v6("2001:db8:1::10"), 8080)
                    .flags(TcpFlags::SYN)
                    .tcp_numbers(9, 0, 1),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(macs(
                Frame::tcp6(v6("2001:db8:1::10"), 8080, v6("2001:db8:1::100"), 50100)
                    .flags(TcpFlags::RST | TcpFlags::ACK)
                    .tcp_numbers(0, 10, 0),
                front,
                client,
            )),
            counters: &[Ipv6, Tcp, LbNoBackend, LbRefused],
        },
        Case {
            name: "traffic for no service passes untouched",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, [192, 0, 2, 2], 22).flags(TcpFlags::SYN), client, front),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp],
        },
        Case {
            name: "a reply-shaped packet to a port NAT never gave passes",
            ingress: Some(n.back),
            frame: macs(Frame::tcp4(WEB1, 80, SNAT, 33000).flags(TcpFlags::ACK), mac_of(0x11), back),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp],
        },
    ];
    let _ = APP;
    run_cases(&dp, Trust::Trusted, cases);
}

/// With one NAT port: a second flow finds it taken while the first is open, takes it once the
/// first has closed and stayed quiet for `nat_reuse_ns` (0 here: one clock tick), and the first
/// is forgotten.
fn nat_port_reuse() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, n, .. } = &mut www;
    let settings = LbSettings { nat_port_count: 1, nat_reuse_ns: 0, ..LbSettings::DEFAULT };
    dp.set_lb_settings(settings).expect("settings");
    let from = |sport: u16, flags: u8| to_www(n, sport, flags);
    let to_web1 = |flags: u8| nat_to(n, 10240, WEB1, 0x11, flags);
    let cases = vec![
        Case {
            name: "the first flow takes the only NAT port",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::SYN),
            verdict: XDP_REDIRECT,
            output: to_web1(TcpFlags::SYN),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "a second flow finds it held by an open flow",
            ingress: Some(n.front),
            frame: from(40001, TcpFlags::SYN),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbNatPortsExhausted],
        },
        Case {
            name: "the first flow closes",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::FIN | TcpFlags::ACK),
            verdict: XDP_REDIRECT,
            output: to_web1(TcpFlags::FIN | TcpFlags::ACK),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowClosing],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);
    // Flows are timed by a clock that moves once per timer tick (1-10 ms): let one pass.
    std::thread::sleep(Duration::from_millis(30));
    let cases = vec![
        Case {
            name: "the second flow now gets the port",
            ingress: Some(n.front),
            frame: from(40001, TcpFlags::SYN),
            verdict: XDP_REDIRECT,
            output: to_web1(TcpFlags::SYN),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "a late packet of the first flow is no longer tracked: it would need a new port",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::ACK),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbNatPortsExhausted],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);
}

/// A client reusing its port resumes its backend and NAT port only while that backend takes new
/// flows: once it drains, the reused tuple is scheduled afresh.
fn resume_not_draining() {
    let web = vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    let mut www = www_lab(web);
    let WwwLab { dp, services, n, .. } = &mut www;
    run_cases(dp, Trust::Trusted, vec![first_flow_to_web1(n)]);
    close_drain_and_reuse(dp, services, n);
}

/// The client's SYN from port 40000 to www, scheduled to web1 with the first NAT port.
fn first_flow_to_web1(n: &Router) -> Case {
    Case {
        name: "a flow to web1",
        ingress: Some(n.front),
        frame: to_www(n, 40000, TcpFlags::SYN),
        verdict: XDP_REDIRECT,
        output: nat_to(n, 10240, WEB1, 0x11, TcpFlags::SYN),
        counters: &[Ipv4, Tcp, LbNewFlow],
    }
}

/// Closes that flow, drains web1, and checks that the same tuple's next SYN goes to web2 with
/// a fresh NAT port.
fn close_drain_and_reuse(dp: &mut Dataplane, services: &mut Services, n: &Router) {
    let closed = vec![Case {
        name: "the flow closes",
        ingress: Some(n.front),
        frame: to_www(n, 40000, TcpFlags::FIN | TcpFlags::ACK),
        verdict: XDP_REDIRECT,
        output: nat_to(n, 10240, WEB1, 0x11, TcpFlags::FIN | TcpFlags::ACK),
        counters: &[Ipv4, Tcp, LbEstablished, LbFlowClosing],
    }];
    run_cases(dp, Trust::Trusted, closed);
    services.set_state(dp, "www", "web1", BackendState::Draining).expect("drain web1");
    let reused = vec![Case {
        name: "the same tuple again goes to web2 (web1 drains) with a fresh NAT port",
        ingress: Some(n.front),
        frame: to_www(n, 40000, TcpFlags::SYN),
        verdict: XDP_REDIRECT,
        output: nat_to(n, 10241, WEB2, 0x12, TcpFlags::SYN),
        counters: &[Ipv4, Tcp, LbNewFlow],
    }];
    run_cases(dp, Trust::Trusted, reused);
}

/// Which backend a new flow from `sport` to the VIP's `port` goes to (the last byte of the
/// rewritten frame's destination MAC: 0x11 web1, 0x12 web2).
fn pick(dp: &Dataplane, n: &Router, sport: u16, port: u16) -> u8 {
    use aya::programs::{TestRun, TestRunOptions};
    let frame = macs(Frame::tcp4(CLIENT, sport, VIP, port).flags(TcpFlags::SYN), CLIENT_MAC, n.front_mac);
    let md = foobar_tests::router::xdp_md(frame.len(), n.front);
    let mut out = vec![0u8; frame.len()];
    let r = dp
        .program(Trust::Trusted)
        .expect("program")
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ctx_in: Some(&md),
            ..TestRunOptions::default()
        })
        .expect("test run");
    assert_eq!(r.return_value, XDP_REDIRECT, "flow from port {sport} to VIP:{port} was not forwarded");
    out[5]
}

fn with_scheduler(name: &str, port: u16, scheduler: Scheduler, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec { scheduler, ..service(name, "192.0.2.10", port, 6, Mode::Nat, backends) }
}

fn scheduling() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let weighted = |w1, w2| {
        vec![
            BackendSpec { weight: w1, ..backend("web1", "198.51.100.11") },
            BackendSpec { weight: w2, ..backend("web2", "198.51.100.12") },
        ]
    };
    // Two independent data planes stand for two foobar nodes with the same configuration.
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut dp = Dataplane::load().expect("load");
        let mut services = Services::new();
        services.add(&mut dp, with_scheduler("wrr", 81, Scheduler::WeightedRoundRobin, weighted(3, 1))).expect("wrr");
        services.add(&mut dp, with_scheduler("maglev", 82, Scheduler::Maglev, weighted(1, 1))).expect("maglev");
        let backup =
            vec![backend("web1", "198.51.100.11"), BackendSpec { backup: true, ..backend("web2", "198.51.100.12") }];
        services.add(&mut dp, with_scheduler("ha", 83, Scheduler::RoundRobin, backup)).expect("ha");
        nodes.push((dp, services));
    }

    // Weighted round-robin: 3:1, interleaved.
    let (dp, services) = &mut nodes[0];
    let picks: Vec<u8> = (0..8).map(|i| pick(dp, &n, 2000 + i, 81)).collect();
    assert_eq!(picks.iter().filter(|&&b| b == 0x11).count(), 6, "weights 3:1 over 8 flows: {picks:02x?}");
    assert_ne!(picks[..4], [0x11; 4], "weighted turns must interleave: {picks:02x?}");

    // Active-passive: the backup takes new flows only while the primary is down.
    let ha: Vec<u8> = (0..4).map(|i| pick(dp, &n, 3000 + i, 83)).collect();
    assert_eq!(ha, [0x11; 4], "the backup took flows while the primary was up");
    services.set_state(dp, "ha", "web1", BackendState::Down).expect("down");
    let ha: Vec<u8> = (0..4).map(|i| pick(dp, &n, 3100 + i, 83)).collect();
    assert_eq!(ha, [0x12; 4], "the backup did not take over");
    services.set_state(dp, "ha", "web1", BackendState::Up).expect("up");
    assert_eq!(pick(dp, &n, 3200, 83), 0x11, "the primary did not come back");

    // Maglev: both nodes send each flow to the same backend, and both backends get flows.
    let a: Vec<u8> = (0..64).map(|i| pick(&nodes[0].0, &n, 4000 + i, 82)).collect();
    let b: Vec<u8> = (0..64).map(|i| pick(&nodes[1].0, &n, 4000 + i, 82)).collect();
    assert_eq!(a, b, "two nodes disagreed on Maglev picks");
    assert!(a.contains(&0x11) && a.contains(&0x12), "Maglev used one backend only: {a:02x?}");
}

/// The active-flow count `status` and `/metrics` report reads the connection table in batches
/// of 4096 entries; more flows than several batches hold must all be counted, per backend too.
fn active_count() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let mut dp = Dataplane::load().expect("load");
    let mut services = Services::new();
    let backends = vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    services.add(&mut dp, with_scheduler("rr", 84, Scheduler::RoundRobin, backends)).expect("rr");
    const FLOWS: u16 = 10_000;
    for sport in 10_000..10_000 + FLOWS {
        pick(&dp, &n, sport, 84);
    }
    let active = dp.active_flows().expect("active flows");
    let per_service: Vec<u64> = active.by_service.values().copied().collect();
    assert_eq!(per_service, [u64::from(FLOWS)], "flows per service");
    let mut per_backend: Vec<u64> = active.by_backend.values().copied().collect();
    per_backend.sort_unstable();
    assert_eq!(per_backend, [u64::from(FLOWS) / 2; 2], "round-robin flows per backend");
}

/// On an untrusted interface a tracked flow's packets are forwarded before the allow rules, as
/// a stateful firewall's established traffic: counted as such, still forwarded after the rule
/// that admitted the flow is gone, while a SYN meets the rules again; and a withdrawn service's
/// flows are forgotten, so their next packet is no longer balanced.
fn established_bypass() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    dp.set_firewall_settings(Settings { default_drop: true, syn_rate: 0, syn_burst: 0 }).expect("settings");
    let web = AllowRule { protocol: 6, dst: "192.0.2.10/32".parse().expect("cidr"), ports: vec![80], src: None };
    dp.set_allow_rules(std::slice::from_ref(&web)).expect("rules");
    let from = |sport: u16, flags: u8| to_www(n, sport, flags);
    let to_web1 = |flags: u8| nat_to(n, 10240, WEB1, 0x11, flags);
    // The flow's ACK, forwarded to web1 as established traffic (from the table, or from the
    // flow cache's copy).
    let established = |name: &'static str, counters: &'static [foobar_common::counters::Counter]| Case {
        name,
        ingress: Some(n.front),
        frame: from(40000, TcpFlags::ACK),
        verdict: XDP_REDIRECT,
        output: to_web1(TcpFlags::ACK),
        counters,
    };
    run_cases(
        dp,
        Trust::Untrusted,
        vec![
            Case {
                name: "a SYN meets the allow rules and starts a flow",
                ingress: Some(n.front),
                frame: from(40000, TcpFlags::SYN),
                verdict: XDP_REDIRECT,
                output: to_web1(TcpFlags::SYN),
                counters: &[Ipv4, Tcp, FwAllowed, LbNewFlow],
            },
            established(
                "the flow's next packet is forwarded as established",
                &[Ipv4, Tcp, FwEstablished, LbEstablished],
            ),
            // The fast path takes plain frames only; these two must leave it for the full path.
            Case {
                name: "with IP options the flow's packet takes the full path, still as established",
                ingress: Some(n.front),
                frame: macs(
                    Frame::tcp4(CLIENT, 40000, VIP, 80).flags(TcpFlags::ACK).ip_options(&[1]),
                    CLIENT_MAC,
                    n.front_mac,
                ),
                verdict: XDP_REDIRECT,
                output: Some(macs(
                    Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::ACK).ip_options(&[1]),
                    n.back_mac,
                    mac_of(0x11),
                )),
                counters: &[Ipv4, Tcp, FwEstablished, LbEstablished],
            },
            Case {
                name: "a malformed packet of the flow is dropped and counted, not forwarded",
                ingress: Some(n.front),
                frame: {
                    let mut f = from(40000, TcpFlags::ACK);
                    f[14 + 20 + 12] = 0x40; // data offset 16 bytes: less than a TCP header
                    f
                },
                verdict: XDP_DROP,
                output: None,
                counters: &[BadTcpOffset],
            },
        ],
    );
    dp.set_allow_rules(&[]).expect("no rules");
    run_cases(
        dp,
        Trust::Untrusted,
        vec![
            established(
                "without the rule the open flow carries on (from the cached copy)",
                &[Ipv4, Tcp, FwEstablished, LbEstablished, LbFlowCacheHit],
            ),
            Case {
                name: "but a SYN on the same tuple meets the rules: default drop",
                ingress: Some(n.front),
                frame: from(40000, TcpFlags::SYN),
                verdict: XDP_DROP,
                output: None,
                counters: &[Ipv4, Tcp, FwDefaultDrop],
            },
        ],
    );
    dp.set_allow_rules(&[web]).expect("rules again");
    services.remove(dp, "www").expect("remove www");
    run_cases(
        dp,
        Trust::Untrusted,
        vec![Case {
            name: "a withdrawn service's flow is forgotten: its packet goes to the stack untouched",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::ACK),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp, FwAllowed],
        }],
    );
}

/// UDP through NAT, both ways and on both paths (the first packet schedules the flow, the
/// next take the fast path): the checksum is patched, and a zero one ("none" over IPv4) stays
/// zero. Output bytes are compared whole, so a wrong checksum fails the case.
fn udp_nat_checksums() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    services
        .add(dp, service("dns-nat", "192.0.2.10", 53, 17, Mode::Nat, vec![backend("web1", "198.51.100.11")]))
        .expect("service");
    let query = |src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, mac: ([u8; 6], [u8; 6]), csum: bool| {
        let mut f = macs(Frame::udp4(src, sport, dst, dport).payload(b"query"), mac.0, mac.1);
        if !csum {
            f[14 + 20 + 6..14 + 20 + 8].fill(0);
        }
        f
    };
    let inbound = (CLIENT_MAC, n.front_mac);
    let outbound = (n.back_mac, mac_of(0x11));
    let reply_in = (mac_of(0x11), n.back_mac);
    let reply_out = (n.front_mac, CLIENT_MAC);
    // Every case is forwarded: `from` on `ingress` must leave as `to`.
    let forwarded = |name: String,
                     ingress: u32,
                     from: Vec<u8>,
                     to: Vec<u8>,
                     counters: &'static [foobar_common::counters::Counter]| Case {
        name: Box::leak(name.into_boxed_str()),
        ingress: Some(ingress),
        frame: from,
        verdict: XDP_REDIRECT,
        output: Some(to),
        counters,
    };
    let mut cases = Vec::new();
    for (csum, name) in [(true, "with a checksum"), (false, "with none")] {
        for (i, step) in ["first packet", "next packet"].into_iter().enumerate() {
            cases.push(forwarded(
                format!("{step} to the service, {name}"),
                n.front,
                query(CLIENT, 5353, VIP, 53, inbound, csum),
                query(SNAT, 10240, WEB1, 53, outbound, csum),
                // The first packet starts the flow; the next asks the table and caches the
                // flow; from then on packets are forwarded from the copy.
                match (csum, i) {
                    (true, 0) => &[Ipv4, Udp, LbNewFlow],
                    (true, _) => &[Ipv4, Udp, LbEstablished],
                    (false, _) => &[Ipv4, Udp, LbEstablished, LbFlowCacheHit],
                },
            ));
        }
        cases.push(forwarded(
            format!("the reply, {name}"),
            n.back,
            query(WEB1, 53, SNAT, 10240, reply_in, csum),
            query(VIP, 53, CLIENT, 5353, reply_out, csum),
            &[Ipv4, Udp, LbNatReply],
        ));
    }
    run_cases(dp, Trust::Trusted, cases);
}

/// Runs the calling thread on CPU `cpu` only: `BPF_PROG_TEST_RUN` runs the program on the
/// caller's CPU, so this picks whose per-CPU flow cache a case meets.
fn on_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity only write
    // and read it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(r, 0, "cannot run on CPU {cpu}: {}", std::io::Error::last_os_error());
}

/// The fast path forwards established packets from a per-CPU copy of their flow; the copy
/// must never outlive what the table says. A flow cached on CPU 0 is closed on CPU 1 and its
/// tuple scheduled afresh there, to another backend: CPU 0's next packet follows the new flow.
/// And a flow cached for a port its service no longer serves (the VIP still balanced on
/// another port) is forgotten by the daemon: its next packet goes to the stack.
fn cached_flows() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs to put a flow's copy on one and change it on the other");
    let web = vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    let mut www = www_lab(web);
    let WwwLab { dp, services, n, .. } = &mut www;
    let alt_backends = vec![backend("web1", "198.51.100.11")];
    services.add(dp, service("www-alt", "192.0.2.10", 8080, 6, Mode::Nat, alt_backends)).expect("www-alt");
    // An ACK forwarded to `web` from NAT port `port`: from the table, or from CPU's copy (`hit`).
    let ack_to = |name: &'static str, port: u16, web: [u8; 4], mac: u8, hit: bool| Case {
        name,
        ingress: Some(n.front),
        frame: to_www(n, 40000, TcpFlags::ACK),
        verdict: XDP_REDIRECT,
        output: nat_to(n, port, web, mac, TcpFlags::ACK),
        counters: if hit { &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit] } else { &[Ipv4, Tcp, LbEstablished] },
    };
    on_cpu(0);
    let cached = vec![
        first_flow_to_web1(n),
        ack_to("its next packet, from the table (and now cached on CPU 0)", 10240, WEB1, 0x11, false),
        ack_to("and the next, from CPU 0's copy", 10240, WEB1, 0x11, true),
    ];
    run_cases(dp, Trust::Trusted, cached);
    // On CPU 1 the flow closes and its tuple starts a new flow, to web2.
    on_cpu(1);
    close_drain_and_reuse(dp, services, n);
    on_cpu(0);
    let followed = vec![
        ack_to("CPU 0 forwards the new flow's packet to web2, from the table", 10241, WEB2, 0x12, false),
        ack_to("and its next from the new copy", 10241, WEB2, 0x12, true),
    ];
    run_cases(dp, Trust::Trusted, followed);

    let alt = |flags: u8| macs(Frame::tcp4(CLIENT, 40001, VIP, 8080).flags(flags), CLIENT_MAC, n.front_mac);
    let alt_to_web1 =
        |flags: u8| Some(macs(Frame::tcp4(SNAT, 10242, WEB1, 8080).flags(flags), n.back_mac, mac_of(0x11)));
    let alt_flow = vec![
        Case {
            name: "a flow to port 8080",
            ingress: Some(n.front),
            frame: alt(TcpFlags::SYN),
            verdict: XDP_REDIRECT,
            output: alt_to_web1(TcpFlags::SYN),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "its next packet, from the table (and now cached)",
            ingress: Some(n.front),
            frame: alt(TcpFlags::ACK),
            verdict: XDP_REDIRECT,
            output: alt_to_web1(TcpFlags::ACK),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "and the next, from the copy",
            ingress: Some(n.front),
            frame: alt(TcpFlags::ACK),
            verdict: XDP_REDIRECT,
            output: alt_to_web1(TcpFlags::ACK),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit],
        },
    ];
    run_cases(dp, Trust::Trusted, alt_flow);
    services.remove(dp, "www-alt").expect("remove www-alt");
    let withdrawn = vec![Case {
        name: "port 8080 withdrawn (the VIP still balanced on 80): the flow's packet goes to the stack",
        ingress: Some(n.front),
        frame: alt(TcpFlags::ACK),
        verdict: XDP_PASS,
        output: None,
        counters: &[Ipv4, Tcp],
    }];
    run_cases(dp, Trust::Trusted, withdrawn);
}
