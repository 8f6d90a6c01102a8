//! NAT ports: a closed flow's port goes to the next flow once it has stayed quiet.

use std::time::Duration;

use foobar_common::lb::LbSettings;

use super::lab::*;

/// With one NAT port: a second flow finds it taken while the first is open, takes it once the
/// first has closed and stayed quiet for `nat_reuse_ns` (0 here: one clock tick), and the first
/// is forgotten. A flow that never finished its handshake gives its port up to the next SYN.
pub fn run() {
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
            name: "the client's ACK shows the first flow real",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::ACK),
            verdict: XDP_REDIRECT,
            output: to_web1(TcpFlags::ACK),
            counters: &[Ipv4, Tcp, LbEstablished],
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
            name: "a late packet of the first flow is no longer tracked, and begins nothing",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::ACK),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbStateRefused],
        },
        Case {
            name: "a third flow takes the port from the second, which never finished its handshake",
            ingress: Some(n.front),
            frame: from(40002, TcpFlags::SYN),
            verdict: XDP_REDIRECT,
            output: to_web1(TcpFlags::SYN),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "the second flow's ACK then finds no flow: nothing is kept for it",
            ingress: Some(n.front),
            frame: from(40001, TcpFlags::ACK),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbStateRefused],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);
}
