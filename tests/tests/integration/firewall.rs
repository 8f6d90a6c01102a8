//! The firewall through `BPF_PROG_TEST_RUN` on `xdp_untrusted`: every rule kind, the deny
//! list, control ICMP, the SYN limiter, per-rule counters, and changes made at run time.

use foobar::{
    dataplane::{
        Dataplane, Trust,
        firewall::Settings,
        rules::{AllowRule, compile},
    },
    net::Cidr,
};
use foobar_common::counters::Counter::{self, *};
use foobar_tests::{
    gate::Need,
    packet::{Frame, TcpFlags, v6},
};
use libtest_mimic::Trial;

use crate::{
    fixtures::{Fixture, XDP_DROP, XDP_PASS, run_table},
    gated,
};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("firewall::rules_deny_list_and_icmp_control", &[Need::Root, Need::Bpf], rules_and_lists),
        gated("firewall::syn_rate_limit_per_source", &[Need::Root, Need::Bpf], syn_limit),
        gated("firewall::syn_rate_limit_per_v4_net_and_v6_sixty_four", &[Need::Root, Need::Bpf], syn_limit_by_prefix),
        gated("firewall::changes_apply_at_run_time", &[Need::Root, Need::Bpf], runtime_changes),
        gated("firewall::a_deny_list_of_100k_entries_decides_exactly", &[Need::Root, Need::Bpf], deny_scale),
        gated("firewall::counters_pinned_by_an_older_build_still_read", &[Need::Root, Need::Bpf], short_counter_pin),
    ]
}

const CLIENT: [u8; 4] = [192, 0, 2, 100];
const DENIED: [u8; 4] = [192, 0, 2, 66];
const VIP: [u8; 4] = [192, 0, 2, 10];
const DNS: [u8; 4] = [192, 0, 2, 53];
const PARTNER: [u8; 4] = [203, 0, 113, 5];

fn cidr(s: &str) -> Cidr {
    s.parse().expect("cidr literal")
}

fn rule(protocol: u8, dst: &str, ports: &[u16], src: Option<&str>) -> AllowRule {
    AllowRule { protocol, dst: cidr(dst), ports: ports.to_vec(), src: src.map(cidr) }
}

/// The lab's rules plus one of each other kind; rule ids are the indexes.
fn rules() -> Vec<AllowRule> {
    vec![
        rule(6, "192.0.2.10", &[80, 443], None),                    // 0
        rule(17, "192.0.2.53", &[53], None),                        // 1
        rule(6, "192.0.2.0/24", &[8080], None),                     // 2
        rule(6, "192.0.2.10", &[8080, 22], Some("203.0.113.0/24")), // 3
        rule(1, "192.0.2.10", &[], None),                           // 4
        rule(6, "2001:db8:1::10", &[80], None),                     // 5
        rule(17, "192.0.2.20", &[], None),                          // 6
    ]
}

fn loaded(settings: Settings) -> Dataplane {
    let mut dp = Dataplane::load().expect("load data plane");
    dp.set_firewall_settings(settings).expect("settings");
    for c in ["192.0.2.66/32", "2001:db8:1::66/128", "203.0.113.128/25"] {
        dp.deny_source(cidr(c)).expect("deny");
    }
    dp.set_allow_rules(&compile(&rules()).expect("compile")).expect("rules");
    dp
}

const DROP_DEFAULT: Settings = Settings { default_drop: true, syn_rate: 0, syn_burst: 0, syn_net_rate: 0 };

fn fx(name: &'static str, frame: Vec<u8>, verdict: u32, counters: &'static [Counter]) -> Fixture {
    Fixture { name, frame, verdict, counters }
}

/// Runs one fixture and checks that exactly `rule` (or no rule) counted a hit.
fn run_with_rule(dp: &Dataplane, fixture: Fixture, rule: Option<usize>) {
    let n = rules().len();
    let before = dp.rule_hits(n).expect("rule hits");
    let name = fixture.name;
    run_table(dp, Trust::Untrusted, vec![fixture]);
    let after = dp.rule_hits(n).expect("rule hits");
    for i in 0..n {
        let expected = u64::from(rule == Some(i));
        assert_eq!(after[i] - before[i], expected, "{name}: rule {i} hits");
    }
}

fn rules_and_lists() {
    let dp = loaded(DROP_DEFAULT);
    let syn = |src: [u8; 4], dst: [u8; 4], port: u16| Frame::tcp4(src, 40000, dst, port).flags(TcpFlags::SYN).build();
    let cases: Vec<(Fixture, Option<usize>)> = vec![
        (fx("web syn to the VIP", syn(CLIENT, VIP, 80), XDP_PASS, &[Ipv4, Tcp, FwAllowed]), Some(0)),
        (fx("https to the VIP", syn(CLIENT, VIP, 443), XDP_PASS, &[Ipv4, Tcp, FwAllowed]), Some(0)),
        (fx("ssh to the VIP", syn(CLIENT, VIP, 22), XDP_DROP, &[Ipv4, Tcp, FwDefaultDrop]), None),
        (fx("web to a non-VIP", syn(CLIENT, [192, 0, 2, 2], 80), XDP_DROP, &[Ipv4, Tcp, FwDefaultDrop]), None),
        (
            fx(
                "dns query",
                Frame::udp4(CLIENT, 5353, DNS, 53).payload(b"q").build(),
                XDP_PASS,
                &[Ipv4, Udp, FwAllowed],
            ),
            Some(1),
        ),
        (
            fx("udp 53 to the VIP", Frame::udp4(CLIENT, 5353, VIP, 53).build(), XDP_DROP, &[Ipv4, Udp, FwDefaultDrop]),
            None,
        ),
        (fx("tcp 53 to dns", syn(CLIENT, DNS, 53), XDP_DROP, &[Ipv4, Tcp, FwDefaultDrop]), None),
        (fx("8080 by the /24 rule", syn(CLIENT, VIP, 8080), XDP_PASS, &[Ipv4, Tcp, FwAllowed]), Some(2)),
        (fx("8080 from the partner net", syn(PARTNER, VIP, 8080), XDP_PASS, &[Ipv4, Tcp, FwAllowed]), Some(2)),
        (fx("ssh from the partner net", syn(PARTNER, VIP, 22), XDP_PASS, &[Ipv4, Tcp, FwAllowed]), Some(3)),
        (
            fx(
                "ping the VIP (any-port icmp rule)",
                Frame::ping4(CLIENT, VIP).build(),
                XDP_PASS,
                &[Ipv4, Icmp, FwAllowed],
            ),
            Some(4),
        ),
        (
            fx("ping the node", Frame::ping4(CLIENT, [192, 0, 2, 2]).build(), XDP_DROP, &[Ipv4, Icmp, FwDefaultDrop]),
            None,
        ),
        (fx("denied source to an allowed port", syn(DENIED, VIP, 80), XDP_DROP, &[FwDeniedSource]), None),
        (fx("denied /25 to an allowed port", syn([203, 0, 113, 200], VIP, 80), XDP_DROP, &[FwDeniedSource]), None),
        (
            fx(
                "tcp6 to the v6 VIP",
                Frame::tcp6(v6("2001:db8:1::100"), 1, v6("2001:db8:1::10"), 80).flags(TcpFlags::SYN).build(),
                XDP_PASS,
                &[Ipv6, Tcp, FwAllowed],
            ),
            Some(5),
        ),
        (
            fx(
                "denied v6 source",
                Frame::tcp6(v6("2001:db8:1::66"), 1, v6("2001:db8:1::10"), 80).build(),
                XDP_DROP,
                &[FwDeniedSource],
            ),
            None,
        ),
        (
            fx(
                "fragmentation needed passes (PMTU)",
                Frame { transport: icmp(3, 4), ..Frame::ping4([198, 51, 100, 254], [192, 0, 2, 2]) }.build(),
                XDP_PASS,
                &[Ipv4, Icmp, FwIcmpControl],
            ),
            None,
        ),
        (
            fx(
                "port unreachable is not control",
                Frame { transport: icmp(3, 3), ..Frame::ping4([198, 51, 100, 254], [192, 0, 2, 2]) }.build(),
                XDP_DROP,
                &[Ipv4, Icmp, FwDefaultDrop],
            ),
            None,
        ),
        (
            fx(
                "neighbour solicitation passes",
                Frame::icmp6(v6("2001:db8:1::100"), v6("ff02::1:ff00:2"), 135, 0).build(),
                XDP_PASS,
                &[Ipv6, Icmpv6, FwIcmpControl],
            ),
            None,
        ),
        (
            fx(
                "packet too big passes",
                Frame::icmp6(v6("2001:db8:1::1"), v6("2001:db8:1::2"), 2, 0).build(),
                XDP_PASS,
                &[Ipv6, Icmpv6, FwIcmpControl],
            ),
            None,
        ),
        (fx("arp passes", Frame::arp(CLIENT, [192, 0, 2, 2]).build(), XDP_PASS, &[Arp]), None),
        (
            fx(
                "later fragment to an any-port host",
                Frame::udp4(CLIENT, 1, [192, 0, 2, 20], 9).payload(&[0; 16]).fragment(4, false).build(),
                XDP_PASS,
                &[Ipv4, Fragment, FwAllowed],
            ),
            Some(6),
        ),
        (
            fx(
                "later fragment to dns (port rule cannot see it)",
                Frame::udp4(CLIENT, 1, DNS, 53).payload(&[0; 16]).fragment(4, false).build(),
                XDP_DROP,
                &[Ipv4, Fragment, FwDefaultDrop],
            ),
            None,
        ),
        (
            fx(
                "malformed is dropped before the firewall",
                {
                    let mut f = syn(CLIENT, VIP, 80);
                    f[14] = 0x44;
                    f
                },
                XDP_DROP,
                &[BadIhl],
            ),
            None,
        ),
    ];
    for (fixture, rule) in cases {
        run_with_rule(&dp, fixture, rule);
    }
}

fn icmp(kind: u8, code: u8) -> foobar_tests::packet::Transport {
    foobar_tests::packet::Transport::Icmp { kind, code, rest: [0; 4] }
}

fn syn_limit() {
    let dp = loaded(Settings { default_drop: true, syn_rate: 1, syn_burst: 3, syn_net_rate: 0 });
    let syn = |src| Frame::tcp4(src, 40000, VIP, 80).flags(TcpFlags::SYN).build();
    let pass = &[Ipv4, Tcp, FwAllowed][..];
    let limited = &[Ipv4, Tcp, FwSynRateLimited][..];
    let mut table = Vec::new();
    for i in 0..3 {
        table.push(fx(["syn 1 (burst)", "syn 2 (burst)", "syn 3 (burst)"][i], syn(PARTNER), XDP_PASS, pass));
    }
    table.push(fx("syn 4 over the limit", syn(PARTNER), XDP_DROP, limited));
    table.push(fx("syn 5 over the limit", syn(PARTNER), XDP_DROP, limited));
    table.push(fx(
        "an ack from the same source is not a new connection",
        Frame::tcp4(PARTNER, 40000, VIP, 80).build(),
        XDP_PASS,
        pass,
    ));
    table.push(fx("another source has its own bucket", syn(CLIENT), XDP_PASS, pass));
    run_table(&dp, Trust::Untrusted, table);
}

/// A flood spread over a network, every source under its own limit, meets the /24's; an IPv6
/// host's addresses all draw on one /64's bucket.
fn syn_limit_by_prefix() {
    let dp = loaded(Settings { default_drop: true, syn_rate: 1, syn_burst: 1, syn_net_rate: 3 });
    let syn4 = |last: u8| Frame::tcp4([203, 0, 113, last], 40000, VIP, 80).flags(TcpFlags::SYN).build();
    let syn6 = |src: &str| Frame::tcp6(v6(src), 40000, v6("2001:db8:1::10"), 80).flags(TcpFlags::SYN).build();
    let pass4 = &[Ipv4, Tcp, FwAllowed][..];
    let pass6 = &[Ipv6, Tcp, FwAllowed][..];
    run_table(
        &dp,
        Trust::Untrusted,
        vec![
            fx("the /24's first source", syn4(1), XDP_PASS, pass4),
            fx("its second", syn4(2), XDP_PASS, pass4),
            fx("its third", syn4(3), XDP_PASS, pass4),
            fx(
                "a fourth source, under its own limit, is over the /24's",
                syn4(4),
                XDP_DROP,
                &[Ipv4, Tcp, FwSynNetLimited],
            ),
            fx(
                "another /24 has its own",
                Frame::tcp4([198, 51, 100, 7], 40000, VIP, 80).flags(TcpFlags::SYN).build(),
                XDP_PASS,
                pass4,
            ),
            fx("an IPv6 host's first SYN", syn6("2001:db8:77::1"), XDP_PASS, pass6),
            fx(
                "another address of its /64 is the same source",
                syn6("2001:db8:77::2"),
                XDP_DROP,
                &[Ipv6, Tcp, FwSynRateLimited],
            ),
            fx("the next /64 is another source", syn6("2001:db8:77:1::1"), XDP_PASS, pass6),
        ],
    );
}

fn runtime_changes() {
    let mut dp = loaded(DROP_DEFAULT);
    let web = || Frame::tcp4(DENIED, 40000, VIP, 80).flags(TcpFlags::SYN).build();
    run_table(&dp, Trust::Untrusted, vec![fx("denied", web(), XDP_DROP, &[FwDeniedSource])]);
    assert!(dp.undeny_source(cidr("192.0.2.66/32")).expect("undeny"));
    assert!(!dp.undeny_source(cidr("192.0.2.66/32")).expect("undeny again"), "second removal finds nothing");
    assert_eq!(dp.denied_sources().expect("list").len(), 2);
    run_table(&dp, Trust::Untrusted, vec![fx("undenied", web(), XDP_PASS, &[Ipv4, Tcp, FwAllowed])]);

    // Overlapping entries: removing one must keep the kernel's /24 filter set for the other.
    let client = || Frame::tcp4(CLIENT, 40000, VIP, 80).flags(TcpFlags::SYN).build();
    dp.deny_source(cidr("192.0.0.0/16")).expect("deny a /16");
    dp.deny_source(cidr("192.0.2.66/32")).expect("deny a host inside it");
    run_table(
        &dp,
        Trust::Untrusted,
        vec![
            fx("the /16 denies the client", client(), XDP_DROP, &[FwDeniedSource]),
            fx("and the host", web(), XDP_DROP, &[FwDeniedSource]),
        ],
    );
    assert!(dp.undeny_source(cidr("192.0.0.0/16")).expect("undeny the /16"));
    run_table(
        &dp,
        Trust::Untrusted,
        vec![
            fx("without the /16 the client passes", client(), XDP_PASS, &[Ipv4, Tcp, FwAllowed]),
            fx("the host in the same /24 is still denied", web(), XDP_DROP, &[FwDeniedSource]),
        ],
    );
    assert!(dp.undeny_source(cidr("192.0.2.66/32")).expect("undeny the host"));
    run_table(&dp, Trust::Untrusted, vec![fx("and then passes", web(), XDP_PASS, &[Ipv4, Tcp, FwAllowed])]);

    dp.set_allow_rules(&compile(&[rule(17, "192.0.2.53", &[53], None)]).expect("compile")).expect("replace rules");
    run_table(
        &dp,
        Trust::Untrusted,
        vec![
            fx("web rule removed", web(), XDP_DROP, &[Ipv4, Tcp, FwDefaultDrop]),
            fx("dns rule kept", Frame::udp4(CLIENT, 1, DNS, 53).build(), XDP_PASS, &[Ipv4, Udp, FwAllowed]),
        ],
    );
    dp.set_firewall_settings(Settings { default_drop: false, syn_rate: 0, syn_burst: 0, syn_net_rate: 0 })
        .expect("settings");
    run_table(&dp, Trust::Untrusted, vec![fx("default accept", web(), XDP_PASS, &[Ipv4, Tcp, FwDefaultAccept])]);
}

/// A deny list of 100k entries still decides each source exactly: the first and last entries
/// and a neighbour of each. (What the entries cost is `cargo xtask bench dataplane`'s to say:
/// its growth rows measure 1, 10k and 100k entries in one run.)
fn deny_scale() {
    let mut dp = loaded(DROP_DEFAULT);
    let host = |i: u32| {
        let b = i.to_be_bytes();
        [10, b[1], b[2], b[3]]
    };
    for i in 0..100_000u32 {
        dp.deny_source(Cidr { addr: std::net::Ipv4Addr::from(host(i)).into(), prefix: 32 }).expect("deny");
    }
    let syn = |src| Frame::tcp4(src, 40000, VIP, 80).flags(TcpFlags::SYN).build();
    run_table(
        &dp,
        Trust::Untrusted,
        vec![
            fx("the first entry", syn(host(0)), XDP_DROP, &[FwDeniedSource]),
            fx("the last entry", syn(host(99_999)), XDP_DROP, &[FwDeniedSource]),
            fx("past the last entry", syn(host(100_000)), XDP_PASS, &[Ipv4, Tcp, FwAllowed]),
            fx("a client far from them", syn(CLIENT), XDP_PASS, &[Ipv4, Tcp, FwAllowed]),
        ],
    );
}

/// A daemon adopting the pins of an older build finds counter arrays with fewer slots than it
/// counts in (here the fast-path counters, one kind short). The data plane still loads and
/// every counter still reads; only the kinds the old array lacks stay at 0.
fn short_counter_pin() {
    use aya::programs::{TestRun, TestRunOptions};
    use foobar::dataplane::pins::Pins;
    use foobar_common::counters::{FAST_STATS_MAP, FastKind};

    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/foobar-test-short-pin-{}", std::process::id()));
    let pins = Pins::prepare(&dir).expect("a pin directory on bpffs");
    // The last kind, `DeniedSource`, is the one this array lacks.
    pin_counter_array(&pins.map(FAST_STATS_MAP), FastKind::ALL.len() as u32 - 1);
    let outcome = std::panic::catch_unwind(|| {
        let mut dp = Dataplane::load_pinned(pins.clone(), &Default::default()).expect("load over the older pin");
        dp.set_firewall_settings(DROP_DEFAULT).expect("settings");
        dp.deny_source(cidr("192.0.2.66/32")).expect("deny");
        dp.set_allow_rules(&compile(&rules()).expect("compile")).expect("rules");
        let syn = |src| Frame::tcp4(src, 40000, VIP, 80).flags(TcpFlags::SYN).build();
        // Counted in full, exactly as without the old pin (`run_table` checks every counter).
        run_table(&dp, Trust::Untrusted, vec![fx("allowed", syn(CLIENT), XDP_PASS, &[Ipv4, Tcp, FwAllowed])]);
        let before = dp.counters().expect("counters read with a short array");
        let frame = syn(DENIED);
        let program = dp.program(Trust::Untrusted).expect("program");
        let run = program.test_run(TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() });
        assert_eq!(run.expect("test run").return_value, XDP_DROP, "the denied source is still dropped");
        let after = dp.counters().expect("counters still read");
        assert_eq!(after.since(&before, FwDeniedSource), 0, "the slot the old array lacks reads 0");
    });
    Pins::remove_all(&dir).expect("remove the test pins");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Creates a per-CPU array of `slots` u64 counters and pins it at `path`, as an older build's
/// daemon left it (by the bpf syscall: aya creates maps only from an object's definitions).
pub fn pin_counter_array(path: &std::path::Path, slots: u32) {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
    let mut create = [0u32; 30];
    create[..4].copy_from_slice(&[BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, slots]);
    // SAFETY: `create` is a zeroed bpf_attr prefix of the size passed; the call only reads it.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, create.as_ptr(), size_of_val(&create)) };
    assert!(fd >= 0, "map create: {}", std::io::Error::last_os_error());
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    #[repr(C)]
    struct Pin {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let pin = Pin { pathname: cpath.as_ptr() as u64, bpf_fd: fd as u32, file_flags: 0 };
    // SAFETY: `pin` is a valid bpf_attr for BPF_OBJ_PIN; the path outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_PIN, &pin as *const Pin, size_of::<Pin>()) };
    assert_eq!(rc, 0, "pin at {}: {}", path.display(), std::io::Error::last_os_error());
    // SAFETY: closing the fd we created; the pin keeps the map.
    unsafe { libc::close(fd as i32) };
}
