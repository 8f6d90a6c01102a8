//! What the load-balancer fixtures share: the lab's addresses, service and frame builders, and
//! the single-service lab most scenarios run in.

pub use foobar::dataplane::{
    Dataplane, Trust,
    services::{BackendSpec, BackendState, Mode, Scheduler, ServiceSpec, Services},
};
pub use foobar_common::counters::Counter::*;
pub use foobar_tests::{
    netns::{Entered, Lab},
    packet::{CLIENT_MAC, Frame, TcpFlags, Transport, v6, with_macs as macs},
    router::{Router, mac_of},
};
use std::net::{IpAddr, Ipv6Addr};

use aya::programs::{TestRun, TestRunOptions};
use foobar_common::counters::Counter;
use foobar_tests::router::xdp_md;

pub use crate::fixtures::{Case, XDP_DROP, XDP_PASS, XDP_REDIRECT, run_cases};

pub const CLIENT: [u8; 4] = [192, 0, 2, 100];
pub const VIP: [u8; 4] = [192, 0, 2, 10];
pub const DNS: [u8; 4] = [192, 0, 2, 53];
pub const SNAT: [u8; 4] = [198, 51, 100, 1];
pub const WEB1: [u8; 4] = [198, 51, 100, 11];
pub const WEB2: [u8; 4] = [198, 51, 100, 12];

pub fn backend(name: &str, addr: &str) -> BackendSpec {
    BackendSpec::new(name, addr.parse().expect("ip"))
}

pub fn service(name: &str, vip: &str, port: u16, protocol: u8, mode: Mode, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec { protocol, mode, ..ServiceSpec::tcp(name, vip.parse::<IpAddr>().expect("ip"), port, backends) }
}

/// ICMP "fragmentation needed" (MTU 1400) from `router` to `to`, quoting `sent`'s IP header and
/// the first eight bytes after it, as routers do at least.
pub fn icmp_error4(router: [u8; 4], to: [u8; 4], sent: &[u8]) -> Frame {
    let quoted = &sent[14..14 + 28];
    Frame { transport: Transport::Icmp { kind: 3, code: 4, rest: [0, 0, 0x05, 0x78] }, ..Frame::ping4(router, to) }
        .payload(quoted)
}

/// ICMPv6 "packet too big" (MTU 1400) quoting `sent`'s header and eight bytes after it.
pub fn icmp_error6(router: Ipv6Addr, to: Ipv6Addr, sent: &[u8]) -> Frame {
    let quoted = &sent[14..14 + 48];
    Frame {
        transport: Transport::Icmp { kind: 2, code: 0, rest: [0, 0, 0x05, 0x78] },
        ..Frame::icmp6(router, to, 2, 0)
    }
    .payload(quoted)
}

/// What the single-service fixtures run in: a router namespace this thread has entered, a
/// fresh data plane, and www (192.0.2.10:80/tcp, NAT) over the given backends. Fields drop in
/// order: the data plane, then the thread leaves the namespace, then the namespace goes.
pub struct WwwLab {
    pub dp: Dataplane,
    pub services: Services,
    _inside: Entered,
    pub n: Router,
    _lab: Lab,
}

/// A fresh data plane whose NAT ports start at the range's first (10240), as the expected
/// frames say.
pub fn fixture_dataplane() -> Dataplane {
    let mut dp = Dataplane::load().expect("load data plane");
    dp.set_nat_cursor(0).expect("NAT cursor");
    dp
}

pub fn www_lab(backends: Vec<BackendSpec>) -> WwwLab {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let inside = n.ns.enter();
    let mut dp = fixture_dataplane();
    let mut services = Services::new();
    services.add(&mut dp, service("www", "192.0.2.10", 80, 6, Mode::Nat, backends)).expect("www");
    WwwLab { dp, services, _inside: inside, n, _lab: lab }
}

/// A TCP segment from the client's port `sport` to www, as it reaches the front interface.
pub fn to_www(n: &Router, sport: u16, flags: u8) -> Vec<u8> {
    macs(Frame::tcp4(CLIENT, sport, VIP, 80).flags(flags), CLIENT_MAC, n.front_mac)
}

/// The same segment as NAT sends it on to the backend at `web` (MAC ending `mac`) from `port`.
pub fn nat_to(n: &Router, port: u16, web: [u8; 4], mac: u8, flags: u8) -> Option<Vec<u8>> {
    Some(fwd(Frame::tcp4(SNAT, port, web, 80).flags(flags), n.back_mac, mac_of(mac)))
}

/// `f` as the node forwards it (one hop less), between MACs `src` and `dst`.
pub fn fwd(f: Frame, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    macs(f.forwarded(), src, dst)
}

/// The client's SYN from port 40000 to www, scheduled to web1 with the first NAT port.
pub fn first_flow_to_web1(n: &Router) -> Case {
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
pub fn close_drain_and_reuse(dp: &mut Dataplane, services: &mut Services, n: &Router) {
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
pub fn pick(dp: &Dataplane, n: &Router, sport: u16, port: u16) -> u8 {
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

pub fn with_scheduler(name: &str, port: u16, scheduler: Scheduler, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec { scheduler, ..service(name, "192.0.2.10", port, 6, Mode::Nat, backends) }
}

/// Runs the calling thread on CPU `cpu` only: `BPF_PROG_TEST_RUN` runs the program on the
/// caller's CPU, so this picks whose per-CPU flow cache a case meets.
pub fn on_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity only write
    // and read it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(r, 0, "cannot run on CPU {cpu}: {}", std::io::Error::last_os_error());
}

/// One frame through the trusted program: its verdict, the frame that left, the counters moved.
pub fn run_one(dp: &Dataplane, ingress: u32, frame: &[u8]) -> (u32, Vec<u8>, Vec<Counter>) {
    let program = dp.program(Trust::Trusted).expect("program");
    let before = dp.counters().expect("counters");
    let mut out = vec![0u8; frame.len() + 256];
    let md = xdp_md(frame.len(), ingress);
    let r = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&md[..]),
            ..TestRunOptions::default()
        })
        .expect("test run");
    let after = dp.counters().expect("counters");
    out.truncate(r.data_size_out as usize);
    let moved = Counter::ALL.iter().copied().filter(|&c| after.since(&before, c) > 0).collect();
    (r.return_value, out, moved)
}
