//! Tracked flows on untrusted interfaces: forwarded before the allow rules, as a stateful firewall's established traffic.

use foobar::dataplane::{
    firewall::Settings,
    rules::{AllowRule, compile},
};

use super::lab::*;

/// On an untrusted interface a tracked flow's packets are forwarded before the allow rules, as
/// a stateful firewall's established traffic: counted as such, still forwarded after the rule
/// that admitted the flow is gone, while a SYN meets the rules again; and a withdrawn service's
/// flows are forgotten, so their next packet is no longer balanced.
pub fn run() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    dp.set_firewall_settings(Settings { default_drop: true, syn_rate: 0, syn_burst: 0, syn_net_rate: 0 })
        .expect("settings");
    let web = AllowRule { protocol: 6, dst: "192.0.2.10/32".parse().expect("cidr"), ports: vec![80], src: None };
    dp.set_allow_rules(&compile(std::slice::from_ref(&web)).expect("compile")).expect("rules");
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
                output: Some(fwd(
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
    dp.set_allow_rules(&compile(&[]).expect("compile")).expect("no rules");
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
    dp.set_allow_rules(&compile(&[web]).expect("compile")).expect("rules again");
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
