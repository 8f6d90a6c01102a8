//! `cargo xtask bench dataplane`: nanoseconds per packet of each data-plane path, measured by
//! the kernel with `BPF_PROG_TEST_RUN`, each as a multiple of a do-nothing XDP program measured
//! the same way in the same run.
//!
//! Each call runs the program once on a fresh copy of the frame (`repeat` would rerun it on the
//! buffer the previous run already rewrote, so NAT paths would measure something else), and the
//! kernel times that one run; the mean of the middle half of many calls is reported (see
//! `interquartile_mean`). The timer's fixed cost is in the floor too, so ratios compare like
//! with like. Each new flow is of a tuple not seen before; another row replays tuples whose
//! flows expired, which a client reusing its port meets.
//!
//! Paths: firewall drop (deny-list hit: a /32 entry, and a source in a denied /24), firewall
//! pass, new flow, established flow (with the firewall in front, as on the lab's front
//! interface, and without) and NAT reply; with 1, 10k
//! and 100k deny CIDRs, 2 and 1000 backends, and a 1M-flow connection table. The established
//! rows repeat one flow, which the fast path's flow cache then holds; "10k flows in turn" is
//! the same path when the cache cannot help.
//! Everything runs in a [`Router`] namespace so next-hop lookups succeed.

use std::{net::Ipv4Addr, process::ExitCode};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use foobar::{
    dataplane::{
        Dataplane, Trust,
        dns::{DnsAnswers, Limits},
        firewall::Settings,
        rules::{AllowRule, compile},
        services::{BackendSpec, Mode, Scheduler, ServiceSpec, Services, SynProxy},
    },
    dns::{render::Rendering, zone::Live},
    net::Cidr,
};
use foobar_common::{
    cookie::{self, Handshake},
    counters::Counter,
    lb::LbSettings,
};
use foobar_tests::{
    gate,
    netns::Lab,
    packet::{CLIENT_MAC, Frame, TcpFlags, tcp_option as opt, with_macs},
    router::{Router, mac_of},
};

/// Calls per measurement.
const CALLS: usize = 100_000;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// Kernel-timed ns of one run of `program` (the interquartile mean of `CALLS` runs), cycling
/// through `frames`, and the verdicts seen.
fn measure(program: &Xdp, frames: &[Vec<u8>], ingress: u32) -> (f64, Vec<u32>) {
    let mut times = Vec::with_capacity(CALLS);
    let mut verdicts = Vec::new();
    for i in 0..CALLS {
        let frame = &frames[i % frames.len()];
        let md = foobar_tests::router::xdp_md(frame.len(), ingress);
        let r = program
            .test_run(TestRunOptions { data_in: Some(frame), ctx_in: Some(&md), ..TestRunOptions::default() })
            .expect("test run");
        if !verdicts.contains(&r.return_value) {
            verdicts.push(r.return_value);
        }
        times.push(r.duration.as_nanos() as u64);
    }
    (interquartile_mean(&mut times), verdicts)
}

/// The mean of the middle half of `times`. The kernel's timer moves in steps of about 10 ns
/// here, so a median is always one of those steps: against a 60-90 ns floor that alone can
/// move a ratio by 0.15. The middle half's mean sees between the steps (the runs' own jitter
/// spreads them over neighbouring steps) and, like the median, ignores the tails (interrupts,
/// the first runs after a map change).
fn interquartile_mean(times: &mut [u64]) -> f64 {
    times.sort_unstable();
    let middle = &times[times.len() / 4..times.len() * 3 / 4];
    middle.iter().sum::<u64>() as f64 / middle.len() as f64
}

/// Measures `trust`'s program (or the floor) and panics, naming the counters that moved, unless
/// it returned `verdict`: a benchmark of the wrong path measures nothing.
fn bench(dp: &mut Dataplane, trust: Option<Trust>, frames: &[Vec<u8>], ingress: u32, verdict: u32) -> f64 {
    let before = dp.counters().expect("counters");
    let (ns, got) = match trust {
        Some(trust) => measure(dp.program(trust).expect("program"), frames, ingress),
        None => measure(dp.nop_program().expect("nop"), frames, ingress),
    };
    if got != [verdict] {
        let after = dp.counters().expect("counters");
        let moved: Vec<_> = Counter::ALL.iter().filter(|&&c| after.since(&before, c) > 0).map(|c| c.name()).collect();
        panic!("benchmarked path returned {got:?}, expected {verdict}; counters moved: {moved:?}");
    }
    ns
}

/// NAT ports 1024-65023 towards each backend: room for every tuple of `new_flows`.
const WIDE_NAT: LbSettings = LbSettings { nat_port_min: 1024, nat_port_count: 64_000, ..LbSettings::DEFAULT };

/// [`bench`] of SYNs that must each schedule a new flow, which it checks.
fn new_flow_bench(dp: &mut Dataplane, frames: &[Vec<u8>], ingress: u32) -> f64 {
    let before = dp.counters().expect("counters").get(Counter::LbNewFlow);
    let v = bench(dp, Some(Trust::Untrusted), frames, ingress, XDP_REDIRECT);
    let new = dp.counters().expect("counters").get(Counter::LbNewFlow) - before;
    assert_eq!(new, CALLS as u64, "every call must schedule a new flow");
    v
}

struct Row {
    name: String,
    ns: Vec<f64>,
}

/// A data plane with the lab's firewall, `denies` deny entries and one NAT service of `backends`.
fn dataplane(denies: u32, backends: usize) -> (Dataplane, Services) {
    let mut dp = Dataplane::load().expect("load");
    dp.set_nat_cursor(0).expect("NAT cursor");
    dp.set_firewall_settings(Settings { default_drop: true, syn_rate: 0, syn_burst: 0, syn_net_rate: 0 })
        .expect("settings");
    dp.deny_source("203.0.113.1/32".parse().expect("cidr")).expect("deny");
    // The other entries come from 198.18.0.0/15, the range set aside for benchmarks.
    for i in 1..denies {
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
        dp.deny_source(Cidr { addr: addr.into(), prefix: 32 }).expect("deny");
    }
    let rule = |protocol, dst: &str, port| AllowRule {
        protocol,
        dst: dst.parse().expect("cidr"),
        ports: vec![port],
        src: None,
    };
    dp.set_allow_rules(
        &compile(&[
            rule(6, "192.0.2.10", 80),
            rule(6, "192.0.2.10", 443),
            rule(6, "192.0.2.10", 8080),
            rule(6, "192.0.2.10", 8443),
            rule(17, "192.0.2.53", 53),
        ])
        .expect("rules"),
    )
    .expect("rules");
    let mut services = Services::new();
    // Addresses repeat past two: the cost depends on the ring, not on which address it holds.
    let backends = (0..backends)
        .map(|i| {
            let addr = if i % 2 == 0 { "198.51.100.11" } else { "198.51.100.12" };
            BackendSpec::new(&format!("web{i}"), addr.parse().expect("ip"))
        })
        .collect();
    let spec = ServiceSpec::tcp("www", "192.0.2.10".parse().expect("ip"), 80, backends);
    services.add(&mut dp, spec.clone()).expect("service");
    // The same backends behind the SYN proxy, on port 443.
    let proxied =
        ServiceSpec { name: "proxied".to_owned(), ports: vec![443], syn_proxy: SynProxy::Always, ..spec.clone() };
    services.add(&mut dp, proxied).expect("proxied service");
    // And in Katran's mode, on port 8080: DSR, Maglev, every new flow tracked.
    let dsr = ServiceSpec {
        name: "dsr".to_owned(),
        ports: vec![8080],
        mode: Mode::Dsr,
        scheduler: Scheduler::Maglev,
        syn_proxy: SynProxy::Off,
        ..spec
    };
    // The same under a flood, on port 8443: forwarded by hash, nothing kept.
    let flooded = ServiceSpec {
        name: "dsr-flooded".to_owned(),
        ports: vec![8443],
        syn_proxy: SynProxy::UnderFlood,
        ..dsr.clone()
    };
    services.add(&mut dp, dsr).expect("DSR service");
    services.add(&mut dp, flooded).expect("flooded DSR service");
    dp.set_syn_key(SYN_KEY).expect("cookie key");
    (dp, services)
}

const SYN_KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0x0f1e_2d3c_4b5a_6978];

/// One run of `trust`'s program on `frame`: its verdict and the frame that left.
fn once(dp: &Dataplane, trust: Trust, frame: &[u8], ingress: u32) -> (u32, Vec<u8>) {
    let md = foobar_tests::router::xdp_md(frame.len(), ingress);
    let mut out = vec![0u8; frame.len() + 256];
    let r = dp
        .program(trust)
        .expect("program")
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&md),
            ..TestRunOptions::default()
        })
        .expect("test run");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into `ts`; CLOCK_MONOTONIC is bpf_ktime_get_ns's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A client's SYN to the proxied port, with the options Linux sends.
fn proxied_syn(src: [u8; 4], sport: u16) -> Frame {
    let mut o = opt::mss(1460);
    o.extend(opt::sack_ok_timestamp(1000, 0));
    o.extend(opt::window_scale(7));
    Frame::tcp4(src, sport, [192, 0, 2, 10], 443).flags(TcpFlags::SYN).tcp_numbers(7, 0, 64240).tcp_options(&o)
}

/// The client's ACK of the cookie the proxy sends `src:sport` now (timestamp echo `echo`).
fn cookie_ack(src: [u8; 4], sport: u16, echo: u32) -> Frame {
    let (c, v) = ([u32::from_ne_bytes(src), 0, 0, 0], [u32::from_ne_bytes([192, 0, 2, 10]), 0, 0, 0]);
    let h = Handshake { client: &c, vip: &v, client_port: sport, vip_port: 443, client_isn: 7 };
    let cookie = cookie::make(&SYN_KEY, &h, cookie::slot(monotonic_ns()), 3);
    Frame::tcp4(src, sport, [192, 0, 2, 10], 443)
        .tcp_numbers(8, cookie + 1, 502)
        .tcp_options(&opt::timestamp(1001, echo))
}

/// The SYN proxy's rows, on the proxied port: a SYN answered with a cookie, a cookie's ACK
/// (the flow begun, the SYN to the backend sent), and a proxied flow's segments both ways.
fn proxy_rows(dp: &mut Dataplane, r: &Router) -> Vec<(&'static str, f64)> {
    let (client, front, back) = (CLIENT_MAC, r.front_mac, r.back_mac);
    let syns: Vec<Vec<u8>> =
        (0..20_000u16).map(|i| with_macs(proxied_syn([192, 0, 2, 100], 1024 + i), client, front)).collect();
    let mut rows = vec![(
        "SYN proxy: SYN answered with a cookie",
        bench(dp, Some(Trust::Untrusted), &syns, r.front, XDP_REDIRECT),
    )];
    // A flow per call (the same tuple twice would find its flow): two sources, 50k ports each,
    // as many NAT ports (the new-flow rows' range).
    dp.set_lb_settings(WIDE_NAT).expect("settings");
    let echo = foobar_common::cookie::timestamp(0, Some(7), true);
    let acks: Vec<Vec<u8>> = (0..CALLS as u32)
        .map(|i| with_macs(cookie_ack([192, 0, 2, 100 + (i % 2) as u8], 1024 + (i / 2) as u16, echo), client, front))
        .collect();
    rows.push((
        "SYN proxy: cookie ACK, SYN to the backend",
        bench(dp, Some(Trust::Untrusted), &acks, r.front, XDP_REDIRECT),
    ));
    dp.set_lb_settings(LbSettings::DEFAULT).expect("settings");
    // One proxied flow, its handshakes done: then its segments both ways.
    let (_, synack) =
        once(dp, Trust::Untrusted, &with_macs(proxied_syn([192, 0, 2, 200], 40000), client, front), r.front);
    let ts_at = 14 + 20 + 20 + 8;
    let proxy_ts = u32::from_be_bytes(synack[ts_at..ts_at + 4].try_into().expect("timestamp"));
    let (verdict, syn) =
        once(dp, Trust::Untrusted, &with_macs(cookie_ack([192, 0, 2, 200], 40000, proxy_ts), client, front), r.front);
    assert_eq!(verdict, XDP_REDIRECT, "the cookie ACK did not reach the backend");
    let backend = [syn[30], syn[31], syn[32], syn[33]];
    let nat_port = u16::from_be_bytes([syn[34], syn[35]]);
    let mut o = opt::mss(1460);
    o.extend(opt::sack_ok_timestamp(5000, 1001));
    o.extend(opt::window_scale(7));
    let backend_mac = mac_of(backend[3]);
    let synack = Frame::tcp4(backend, 443, [198, 51, 100, 1], nat_port)
        .flags(TcpFlags::SYN | TcpFlags::ACK)
        .tcp_numbers(90_000, 8, 65160)
        .tcp_options(&o);
    let (verdict, _) = once(dp, Trust::Trusted, &with_macs(synack, backend_mac, back), r.back);
    assert_eq!(verdict, XDP_REDIRECT, "the backend's SYN-ACK was not answered");
    let data = vec![with_macs(
        Frame::tcp4([192, 0, 2, 200], 40000, [192, 0, 2, 10], 443)
            .tcp_numbers(8, 1, 502)
            .tcp_options(&opt::timestamp(1002, proxy_ts)),
        client,
        front,
    )];
    rows.push((
        "SYN proxy: proxied flow, client segment",
        bench(dp, Some(Trust::Untrusted), &data, r.front, XDP_REDIRECT),
    ));
    let reply = vec![with_macs(
        Frame::tcp4(backend, 443, [198, 51, 100, 1], nat_port)
            .tcp_numbers(90_001, 8, 500)
            .tcp_options(&opt::timestamp(5001, 1002)),
        backend_mac,
        back,
    )];
    // The backend's first data (PSH) marks the flow answered, as a real reply would.
    let first = with_macs(
        Frame::tcp4(backend, 443, [198, 51, 100, 1], nat_port)
            .tcp_numbers(90_001, 8, 500)
            .tcp_options(&opt::timestamp(5001, 1002))
            .flags(TcpFlags::PSH | TcpFlags::ACK),
        backend_mac,
        back,
    );
    assert_eq!(once(dp, Trust::Trusted, &first, r.back).0, XDP_REDIRECT, "the backend's first data");
    rows.push((
        "SYN proxy: proxied flow, backend segment",
        bench(dp, Some(Trust::Trusted), &reply, r.back, XDP_REDIRECT),
    ));
    rows
}

/// The lab config's zone with www up, as the daemon renders it for XDP.
fn lab_zone() -> Rendering {
    let text = include_str!("../../../examples/lab.toml");
    let cfg = foobar::config::parse(std::path::Path::new("examples/lab.toml"), text, &|_| true).expect("lab config");
    let spec = foobar::plan::Plan::compile(cfg).expect("lab plan").zone.expect("dns section");
    let live = Live { services: ["www".to_owned()].into(), databases: None };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (_, catalog) = foobar::dns::catalog(&spec, &live, false).await;
        foobar::dns::render::render(&catalog, &spec).await
    })
}

fn main() -> ExitCode {
    if !gate::is_root() {
        eprintln!("bench-dataplane needs root (BPF, network namespaces): run `sudo -E cargo xtask bench dataplane`");
        return ExitCode::FAILURE;
    }
    let mut lab = Lab::new();
    let r = Router::build(&mut lab);
    let _inside = r.ns.enter();
    let (client, front, back) = (CLIENT_MAC, r.front_mac, r.back_mac);
    let syn_to = |host: u8, sport: u16, port: u16| {
        with_macs(Frame::tcp4([192, 0, 2, host], sport, [192, 0, 2, 10], port).flags(TcpFlags::SYN), client, front)
    };
    let syn_from = |host: u8, sport: u16| syn_to(host, sport, 80);
    let syn = vec![syn_from(100, 40000)];
    // One new flow per call, each of a tuple not seen before: two other clients' ports 1024..
    // (fewer than the NAT ports towards the backends, with the range widened to `WIDE_NAT`).
    let new_flows: Vec<Vec<u8>> =
        (0..CALLS as u32).map(|i| syn_from(101 + (i / 50_000) as u8, 1024 + (i % 50_000) as u16)).collect();
    let new_dsr_flows: Vec<Vec<u8>> =
        (0..CALLS as u32).map(|i| syn_to(101 + (i / 50_000) as u8, 1024 + (i % 50_000) as u16, 8080)).collect();
    // A spoofed flood: each SYN from the next of 150 sources, 100,000 tuples in all.
    let flood: Vec<Vec<u8>> = (0..CALLS as u32)
        .map(|i| {
            let src = [192, 0, 2, 101 + (i % 150) as u8];
            with_macs(
                Frame::tcp4(src, 1024 + (i / 150) as u16, [192, 0, 2, 10], 8443).flags(TcpFlags::SYN),
                client,
                front,
            )
        })
        .collect();
    // The first of those clients' first 20,000 tuples again.
    let reused: Vec<Vec<u8>> = (0..20_000u16).map(|i| syn_from(101, 1024 + i)).collect();
    let in_turn: Vec<Vec<u8>> = (0..10_000u16)
        .map(|i| with_macs(Frame::tcp4([192, 0, 2, 101], 1024 + i, [192, 0, 2, 10], 80), client, front))
        .collect();
    let ack = vec![with_macs(Frame::tcp4([192, 0, 2, 100], 40000, [192, 0, 2, 10], 80), client, front)];
    let syn_to_www_from = |src: [u8; 4]| {
        vec![with_macs(Frame::tcp4(src, 40000, [192, 0, 2, 10], 80).flags(TcpFlags::SYN), client, front)]
    };
    let denied = syn_to_www_from([203, 0, 113, 1]);
    let denied_net = syn_to_www_from([198, 19, 255, 7]);
    let dns =
        vec![with_macs(Frame::udp4([192, 0, 2, 100], 5353, [192, 0, 2, 53], 53).payload(b"query"), client, front)];
    let question = |name: &[u8]| {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 1, 0, 1]);
        vec![with_macs(Frame::udp4([192, 0, 2, 100], 5353, [192, 0, 2, 53], 53).payload(&q), client, front)]
    };
    let www_a = question(b"\x03www\x06foobar\x03com\x00");
    let unknown = question(b"\x07nothere\x06foobar\x03com\x00");
    let zone = lab_zone();

    let deny_counts = [1u32, 10_000, 100_000];
    let mut rows: Vec<Row> = Vec::new();
    let push = |rows: &mut Vec<Row>, name: &str, i: usize, v: f64| {
        if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
            row.ns[i] = v;
        } else {
            let mut ns = vec![f64::NAN; deny_counts.len()];
            ns[i] = v;
            rows.push(Row { name: name.to_owned(), ns });
        }
    };
    for (i, &denies) in deny_counts.iter().enumerate() {
        for backends in [2usize, 1000] {
            let (mut dp, _services) = dataplane(denies, backends);
            if backends == 2 {
                let floor = bench(&mut dp, None, &syn, r.front, XDP_PASS);
                push(&mut rows, "floor: empty XDP_PASS program", i, floor);
                let v = bench(&mut dp, Some(Trust::Untrusted), &denied, r.front, XDP_DROP);
                push(&mut rows, "firewall drop (deny hit, a /32 entry)", i, v);
                // The same list with a /24 in place of the /32: a flood from a denied network,
                // which the deny filter settles without the trie.
                let host: Cidr = "203.0.113.1/32".parse().expect("cidr");
                let net: Cidr = "198.19.255.0/24".parse().expect("cidr");
                dp.undeny_source(host).expect("undeny");
                dp.deny_source(net).expect("deny");
                let v = bench(&mut dp, Some(Trust::Untrusted), &denied_net, r.front, XDP_DROP);
                push(&mut rows, "firewall drop (deny hit, a denied /24)", i, v);
                dp.undeny_source(net).expect("undeny");
                dp.deny_source(host).expect("deny");
                let v = bench(&mut dp, Some(Trust::Untrusted), &dns, r.front, XDP_PASS);
                push(&mut rows, "firewall pass (allowed, no service)", i, v);
                // The lab's zone answered in XDP: a name it owns, and one it does not (the
                // NXDOMAIN template, its pointers moved).
                let listen = ["192.0.2.53:53".parse().expect("addr")];
                DnsAnswers::default().publish(&mut dp, &listen, &zone, Limits::default()).expect("DNS answers");
                let v = bench(&mut dp, Some(Trust::Untrusted), &www_a, r.front, XDP_TX);
                push(&mut rows, "DNS answer in XDP (www A)", i, v);
                let v = bench(&mut dp, Some(Trust::Untrusted), &unknown, r.front, XDP_TX);
                push(&mut rows, "DNS answer in XDP (NXDOMAIN)", i, v);
            }
            // The SYN records the flow (and its NAT port); the ACKs find it established.
            assert_eq!(once(&dp, Trust::Untrusted, &syn[0], r.front).0, XDP_REDIRECT, "the flow's SYN");
            let v = bench(&mut dp, Some(Trust::Untrusted), &ack, r.front, XDP_REDIRECT);
            push(&mut rows, &format!("LB established flow, {backends} backends"), i, v);
            if backends == 2 {
                // The same packet on a trusted interface: the load balancer without the firewall.
                let v = bench(&mut dp, Some(Trust::Trusted), &ack, r.front, XDP_REDIRECT);
                push(&mut rows, "LB established flow, no firewall", i, v);
            }
            // The flow of `ack` went to the first backend with the first NAT port.
            let reply =
                vec![with_macs(Frame::tcp4([198, 51, 100, 11], 80, [198, 51, 100, 1], 10240), mac_of(0x11), back)];
            // The backend's first data (PSH) marks the flow answered, as a real reply would.
            let data = with_macs(
                Frame::tcp4([198, 51, 100, 11], 80, [198, 51, 100, 1], 10240).flags(TcpFlags::PSH | TcpFlags::ACK),
                mac_of(0x11),
                back,
            );
            assert_eq!(once(&dp, Trust::Trusted, &data, r.back).0, XDP_REDIRECT, "the backend's first data");
            let v = bench(&mut dp, Some(Trust::Trusted), &reply, r.back, XDP_REDIRECT);
            push(&mut rows, &format!("NAT reply path, {backends} backends"), i, v);
            dp.set_lb_settings(WIDE_NAT).expect("settings");
            let v = new_flow_bench(&mut dp, &new_flows, r.front);
            push(&mut rows, &format!("LB new flow, {backends} backends"), i, v);
            if backends == 2 {
                // Idle timeout 0: a tuple met again is a new flow too, which takes its last
                // flow's backend and NAT port back (a client reusing its port).
                dp.set_lb_settings(LbSettings { tcp_idle_ns: 0, opening_ns: 0, ..WIDE_NAT }).expect("settings");
                let v = new_flow_bench(&mut dp, &reused, r.front);
                push(&mut rows, "LB new flow on a tuple seen before", i, v);
                dp.set_lb_settings(LbSettings::DEFAULT).expect("settings");
                let v = new_flow_bench(&mut dp, &new_dsr_flows, r.front);
                push(&mut rows, "LB new flow, DSR Maglev (Katran's mode)", i, v);
                // Flood mode from the first new flow on.
                dp.set_lb_settings(LbSettings { flood_new_flows: 1, ..LbSettings::DEFAULT }).expect("settings");
                let before = dp.counters().expect("counters").get(Counter::LbStateless);
                let v = bench(&mut dp, Some(Trust::Untrusted), &flood, r.front, XDP_REDIRECT);
                let stateless = dp.counters().expect("counters").get(Counter::LbStateless) - before;
                assert!(stateless >= CALLS as u64 - 2, "the flood was not forwarded by hash: {stateless}");
                push(&mut rows, "DSR Maglev under flood: forwarded by hash, no state", i, v);
                dp.set_lb_settings(LbSettings::DEFAULT).expect("settings");
            }
            dp.set_lb_settings(LbSettings::DEFAULT).expect("settings");
            if backends == 2 && denies == 1 {
                // Those flows are tracked now; a packet of each in turn misses the fast path's
                // per-CPU flow cache (1024 slots) nearly every time. Memory-bound, so it moves
                // with where the table's entries landed: measured once, not per deny count.
                let v = bench(&mut dp, Some(Trust::Untrusted), &in_turn, r.front, XDP_REDIRECT);
                push(&mut rows, "LB established, 10k flows in turn", i, v);
                for n in 0..1_000_000u32 {
                    let _ = dp.insert_flow(foobar_tests::table::flow_key(n), foobar_tests::table::live_flow());
                }
                // The full table may have evicted the measured flow: its SYN again tracks it anew.
                assert_eq!(once(&dp, Trust::Untrusted, &syn[0], r.front).0, XDP_REDIRECT, "the flow's SYN again");
                let v = bench(&mut dp, Some(Trust::Untrusted), &ack, r.front, XDP_REDIRECT);
                push(&mut rows, "LB established flow, 1M flows tracked", i, v);
            }
            if backends == 2 {
                for (name, v) in proxy_rows(&mut dp, &r) {
                    push(&mut rows, name, i, v);
                }
            }
        }
    }

    let floor = rows[0].ns.clone();
    println!(
        "\nXDP data plane, ns per packet (BPF_PROG_TEST_RUN, interquartile mean of {CALLS} kernel-timed runs); ×floor in brackets"
    );
    println!("{:<42} {:>18} {:>18} {:>18}", "path", "1 deny CIDR", "10k deny CIDRs", "100k deny CIDRs");
    for row in &rows {
        let cells: Vec<String> = row
            .ns
            .iter()
            .zip(&floor)
            .map(|(v, f)| if v.is_nan() { "-".to_owned() } else { format!("{v:.1} ({:.2}×)", v / f) })
            .collect();
        println!("{:<42} {:>18} {:>18} {:>18}", row.name, cells[0], cells[1], cells[2]);
    }
    println!("\ngrowth from 1 to 100k deny CIDRs:");
    for row in rows.iter().skip(1) {
        if !row.ns[0].is_nan() && !row.ns[2].is_nan() {
            println!("  {:<42} {:+.1}%", row.name, (row.ns[2] / row.ns[0] - 1.0) * 100.0);
        }
    }
    ExitCode::SUCCESS
}
