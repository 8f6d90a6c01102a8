//! The fast path's per-CPU flow copies follow the table on every CPU.

use super::lab::*;

/// The fast path forwards established packets from a per-CPU copy of their flow; the copy
/// must never outlive what the table says. A flow cached on CPU 0 is closed on CPU 1 and its
/// tuple scheduled afresh there, to another backend: CPU 0's next packet follows the new flow.
/// And a flow cached for a port its service no longer serves (the VIP still balanced on
/// another port) is forgotten by the daemon: its next packet goes to the stack.
pub fn run() {
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
        |flags: u8| Some(fwd(Frame::tcp4(SNAT, 10242, WEB1, 8080).flags(flags), n.back_mac, mac_of(0x11)));
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
