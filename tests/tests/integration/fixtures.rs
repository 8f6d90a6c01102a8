//! Packet fixtures run through the loaded XDP program with `BPF_PROG_TEST_RUN`:
//! input frame → expected verdict, expected output bytes, and exactly which counters moved.

use std::net::Ipv6Addr;

use aya::programs::{TestRun, TestRunOptions};
use foobar::dataplane::{CounterSnapshot, Dataplane, Trust, VERIFIER_LIMIT};
use foobar_common::{counters::Counter, parse};
use foobar_tests::{
    gate::Need,
    packet::{Frame, TcpFlags, ip_offset, truncate_consistently, v6},
    router::xdp_md,
};
use libtest_mimic::Trial;

use crate::gated;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Fixture {
    pub name: &'static str,
    pub frame: Vec<u8>,
    pub verdict: u32,
    /// Counters that must move by exactly one (besides `received`); all others must not move.
    pub counters: &'static [Counter],
}

pub fn trials() -> Vec<Trial> {
    vec![
        gated("fixtures::parser_verdicts_and_counters", &[Need::Root, Need::Bpf], run_all),
        gated("fixtures::programs_verify_with_room_to_spare", &[Need::Root, Need::Bpf], verifier_headroom),
    ]
}

fn client6() -> Ipv6Addr {
    v6("2001:db8:1::64")
}

fn vip6() -> Ipv6Addr {
    v6("2001:db8:1::a")
}

fn corrupt(mut f: Vec<u8>, at_from_ip: usize, value: u8) -> Vec<u8> {
    let at = ip_offset(&f) + at_from_ip;
    f[at] = value;
    f
}

fn table() -> Vec<Fixture> {
    use Counter::*;
    let c = [192, 0, 2, 100];
    let vip = [192, 0, 2, 10];
    let syn = Frame::tcp4(c, 40000, vip, 80).flags(TcpFlags::SYN).build();
    let udp = Frame::udp4(c, 5353, [192, 0, 2, 53], 53).payload(b"query").build();
    let mut padded = Frame::udp4(c, 1, vip, 9).build();
    padded.resize(60, 0);
    let mut five_ext = Frame::udp6(client6(), 1, vip6(), 53);
    for _ in 0..5 {
        five_ext = five_ext.ext_header(parse::IPPROTO_DSTOPTS);
    }
    let mut bad_udp_len = udp.clone();
    let u = ip_offset(&bad_udp_len) + 20;
    bad_udp_len[u + 4..u + 6].copy_from_slice(&4u16.to_be_bytes());
    let mut long_udp_len = udp.clone();
    long_udp_len[u + 4..u + 6].copy_from_slice(&200u16.to_be_bytes());
    let mut bad_doff = syn.clone();
    bad_doff[ip_offset(&syn) + 20 + 12] = 0x40;
    let mut long_ip = syn.clone();
    long_ip[ip_offset(&syn) + 2..ip_offset(&syn) + 4].copy_from_slice(&400u16.to_be_bytes());
    vec![
        Fixture { name: "tcp4 syn", frame: syn.clone(), verdict: XDP_PASS, counters: &[Ipv4, Tcp] },
        Fixture { name: "udp4", frame: udp.clone(), verdict: XDP_PASS, counters: &[Ipv4, Udp] },
        Fixture { name: "udp4 with ethernet padding", frame: padded, verdict: XDP_PASS, counters: &[Ipv4, Udp] },
        Fixture { name: "icmp4 echo", frame: Frame::ping4(c, vip).build(), verdict: XDP_PASS, counters: &[Ipv4, Icmp] },
        Fixture { name: "arp", frame: Frame::arp(c, [192, 0, 2, 2]).build(), verdict: XDP_PASS, counters: &[Arp] },
        Fixture {
            name: "lldp (other ethertype)",
            frame: Frame { net: foobar_tests::packet::Net::Other(0x88cc), ..Frame::arp(c, c) }.build(),
            verdict: XDP_PASS,
            counters: &[OtherEthertype],
        },
        Fixture {
            name: "tcp4 in one vlan",
            frame: Frame::tcp4(c, 1, vip, 80).vlan(10).build(),
            verdict: XDP_PASS,
            counters: &[Ipv4, Vlan, Tcp],
        },
        Fixture {
            name: "tcp4 in q-in-q",
            frame: Frame::tcp4(c, 1, vip, 80).vlan(10).vlan(20).build(),
            verdict: XDP_PASS,
            counters: &[Ipv4, Vlan, Tcp],
        },
        Fixture {
            name: "three vlan tags",
            frame: Frame::tcp4(c, 1, vip, 80).vlan(1).vlan(2).vlan(3).build(),
            verdict: XDP_DROP,
            counters: &[TooManyVlans],
        },
        Fixture {
            name: "ipv4 options (router alert)",
            frame: Frame::udp4(c, 1, vip, 53).ip_options(&[0x94, 0x04, 0, 0]).build(),
            verdict: XDP_PASS,
            counters: &[Ipv4, Udp],
        },
        Fixture {
            name: "ipv4 first fragment",
            frame: Frame::udp4(c, 1, vip, 53).payload(&[0; 16]).fragment(0, true).build(),
            verdict: XDP_PASS,
            counters: &[Ipv4, Udp],
        },
        Fixture {
            name: "ipv4 later fragment",
            frame: Frame::udp4(c, 1, vip, 53).payload(&[0; 16]).fragment(2, false).build(),
            verdict: XDP_PASS,
            counters: &[Ipv4, Fragment],
        },
        Fixture {
            name: "tcp6",
            frame: Frame::tcp6(client6(), 1, vip6(), 443).flags(TcpFlags::SYN).build(),
            verdict: XDP_PASS,
            counters: &[Ipv6, Tcp],
        },
        Fixture {
            name: "icmp6 neighbour solicitation",
            frame: Frame::icmp6(client6(), vip6(), 135, 0).build(),
            verdict: XDP_PASS,
            counters: &[Ipv6, Icmpv6],
        },
        Fixture {
            name: "ipv6 hop-by-hop + dest-opts + udp",
            frame: Frame::udp6(client6(), 1, vip6(), 53).ext_header(0).ext_header(60).build(),
            verdict: XDP_PASS,
            counters: &[Ipv6, Udp],
        },
        Fixture {
            name: "ipv6 later fragment",
            frame: Frame::udp6(client6(), 1, vip6(), 53).payload(&[0; 16]).fragment(3, false).build(),
            verdict: XDP_PASS,
            counters: &[Ipv6, Fragment],
        },
        Fixture {
            name: "ipv6 five extension headers",
            frame: five_ext.build(),
            verdict: XDP_DROP,
            counters: &[TooManyExtHeaders],
        },
        // A frame shorter than an Ethernet header cannot be a fixture: BPF_PROG_TEST_RUN
        // refuses such input with EINVAL. The host parser tests cover every such cut.
        Fixture {
            name: "vlan tag cut short",
            frame: Frame::tcp4(c, 1, vip, 80).vlan(5).build()[..16].to_vec(),
            verdict: XDP_DROP,
            counters: &[TruncatedVlan],
        },
        Fixture {
            name: "ipv4 header cut short",
            frame: syn[..14 + 12].to_vec(),
            verdict: XDP_DROP,
            counters: &[TruncatedIpv4],
        },
        Fixture { name: "ipv4 ihl 4", frame: corrupt(syn.clone(), 0, 0x44), verdict: XDP_DROP, counters: &[BadIhl] },
        Fixture {
            name: "ipv4 ihl past frame",
            frame: corrupt(Frame::udp4(c, 1, vip, 9).build(), 0, 0x4f),
            verdict: XDP_DROP,
            counters: &[TruncatedIpv4],
        },
        Fixture {
            name: "ip version 5",
            frame: corrupt(syn.clone(), 0, 0x55),
            verdict: XDP_DROP,
            counters: &[BadIpVersion],
        },
        Fixture { name: "ipv4 total length past frame", frame: long_ip, verdict: XDP_DROP, counters: &[BadIpLength] },
        Fixture {
            name: "tcp header cut short",
            frame: truncate_consistently(&syn, 14 + 20 + 12),
            verdict: XDP_DROP,
            counters: &[TruncatedTcp],
        },
        Fixture { name: "tcp data offset 4", frame: bad_doff, verdict: XDP_DROP, counters: &[BadTcpOffset] },
        Fixture {
            name: "udp header cut short",
            frame: truncate_consistently(&udp, 14 + 20 + 6),
            verdict: XDP_DROP,
            counters: &[TruncatedUdp],
        },
        Fixture { name: "udp length 4", frame: bad_udp_len, verdict: XDP_DROP, counters: &[BadUdpLength] },
        Fixture {
            name: "udp length past ip payload",
            frame: long_udp_len,
            verdict: XDP_DROP,
            counters: &[BadUdpLength],
        },
        Fixture {
            name: "icmp cut short",
            frame: truncate_consistently(&Frame::ping4(c, vip).build(), 14 + 20 + 2),
            verdict: XDP_DROP,
            counters: &[TruncatedIcmp],
        },
        Fixture {
            name: "ipv6 payload length past frame",
            frame: Frame::tcp6(client6(), 1, vip6(), 80).build()[..14 + 40 + 10].to_vec(),
            verdict: XDP_DROP,
            counters: &[BadIpLength],
        },
        Fixture {
            name: "ipv6 extension header cut short",
            frame: truncate_consistently(&Frame::udp6(client6(), 1, vip6(), 53).ext_header(0).build(), 14 + 40 + 4),
            verdict: XDP_DROP,
            counters: &[TruncatedExtHeader],
        },
    ]
}

fn run_all() {
    let dp = Dataplane::load().expect("load data plane");
    // The parser's verdicts hold on both programs; with no rules loaded the firewall's
    // default policy (accept, the zeroed settings) adds one counter to every IP packet.
    run_table(&dp, Trust::Trusted, table());
}

/// Runs each fixture through `trust`'s program and fails listing every fixture that did not hold.
pub fn run_table(dp: &Dataplane, trust: Trust, fixtures: Vec<Fixture>) {
    run_cases(dp, trust, fixtures.into_iter().map(Case::from).collect());
}

/// A fixture with everything spelled out: where the frame arrives and what must leave.
pub struct Case {
    pub name: &'static str,
    /// Interface index the frame arrives on (the kernel's choice when `None`).
    pub ingress: Option<u32>,
    pub frame: Vec<u8>,
    pub verdict: u32,
    /// The frame that must come out; `None` means the input, unchanged.
    pub output: Option<Vec<u8>>,
    pub counters: &'static [Counter],
}

impl From<Fixture> for Case {
    fn from(f: Fixture) -> Case {
        Case { name: f.name, ingress: None, frame: f.frame, verdict: f.verdict, output: None, counters: f.counters }
    }
}

pub const XDP_REDIRECT: u32 = 4;

/// Runs each case and fails listing every case that did not hold.
pub fn run_cases(dp: &Dataplane, trust: Trust, cases: Vec<Case>) {
    let program = dp.program(trust).expect("xdp program");
    let mut failures = Vec::new();
    for case in cases {
        let before = dp.counters().expect("counters");
        let mut out = vec![0u8; case.frame.len() + 256];
        let md = case.ingress.map(|i| xdp_md(case.frame.len(), i));
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(&case.frame),
                data_out: Some(&mut out),
                ctx_in: md.as_ref().map(|m| &m[..]),
                ..TestRunOptions::default()
            })
            .unwrap_or_else(|e| panic!("{}: test run failed: {e}", case.name));
        let after = dp.counters().expect("counters");
        if let Err(why) = check(&case, result.return_value, &out[..result.data_size_out as usize], &before, &after) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "fixture failures:\n{}", failures.join("\n"));
}

fn check(
    case: &Case,
    verdict: u32,
    out: &[u8],
    before: &CounterSnapshot,
    after: &CounterSnapshot,
) -> Result<(), String> {
    if verdict != case.verdict {
        let moved: Vec<_> = Counter::ALL.iter().filter(|&&c| after.since(before, c) > 0).map(|c| c.name()).collect();
        return Err(format!("verdict {verdict}, expected {} (counters moved: {moved:?})", case.verdict));
    }
    if case.verdict != XDP_DROP {
        let expected = case.output.as_deref().unwrap_or(&case.frame);
        if out != expected {
            return Err(format!("output frame\n  got      {out:02x?}\n  expected {expected:02x?}"));
        }
    }
    for &c in Counter::ALL {
        let expected = u64::from(c == Counter::Received || case.counters.contains(&c));
        let moved = after.since(before, c);
        if moved != expected {
            return Err(format!("counter {} moved by {moved}, expected {expected}", c.name()));
        }
    }
    Ok(())
}

/// Each program's verification walks at most 80% of the kernel's instruction budget. The
/// verifier walks every path, so a small change (one more call site, one more inlined helper)
/// can multiply its cost: this fails while there is still room to rework the change, instead of
/// the day a program is refused at load.
fn verifier_headroom() {
    let dp = Dataplane::load().expect("load data plane");
    let costs = dp.verifier_costs().expect("program info");
    assert_eq!(costs.len(), 3 + foobar_common::XDP_PROXY_PROGRAMS.len(), "every program is loaded and checked");
    for (program, walked) in costs {
        let Some(walked) = walked else {
            panic!("this kernel does not report verified_insns (Linux 5.16+): cannot check");
        };
        println!("{program}: verifier walked {walked} of {VERIFIER_LIMIT} instructions");
        assert!(
            u64::from(walked) * 10 <= u64::from(VERIFIER_LIMIT) * 8,
            "{program}: the verifier walked {walked} instructions, over 80% of its {VERIFIER_LIMIT} budget"
        );
    }
}
