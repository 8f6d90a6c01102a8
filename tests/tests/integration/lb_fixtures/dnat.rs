//! DNAT: only the destination rewritten on the way in (the backend sees the client), the
//! backend's replies through the node translated back; a reply tuple held by one client flow
//! is not given to another, unless that one never finished its handshake.

use super::lab::*;

/// www in DNAT mode over IPv4 and IPv6, TCP and UDP, and a second VIP on the same backend port.
pub fn run() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let mut dp = fixture_dataplane();
    let mut services = Services::new();
    let web1 = || vec![backend("web1", "198.51.100.11")];
    for spec in [
        service("www", "192.0.2.10", 80, 6, Mode::Dnat, web1()),
        service("www-b", "192.0.2.11", 80, 6, Mode::Dnat, web1()),
        service("dns", "192.0.2.10", 53, 17, Mode::Dnat, web1()),
        service("www6", "2001:db8:1::10", 80, 6, Mode::Dnat, vec![backend("web1", "2001:db8:2::11")]),
    ] {
        services.add(&mut dp, spec).expect("service");
    }
    let (client, front, back, web) = (CLIENT_MAC, n.front_mac, n.back_mac, mac_of(0x11));
    let vip_b = [192, 0, 2, 11];
    let tcp = |src, sport, dst, dport, flags| Frame::tcp4(src, sport, dst, dport).flags(flags);
    let (syn, syn_ack, ack) = (TcpFlags::SYN, TcpFlags::SYN | TcpFlags::ACK, TcpFlags::ACK);
    let (c6, vip6, web6) = (v6("2001:db8:1::100"), v6("2001:db8:1::10"), v6("2001:db8:2::11"));
    let cases = vec![
        Case {
            name: "a SYN keeps its source: only the destination becomes web1",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40000, VIP, 80, syn), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(CLIENT, 40000, WEB1, 80, syn), back, web)),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "web1's SYN-ACK to the client, routed through the node, comes from the VIP",
            ingress: Some(n.back),
            frame: macs(tcp(WEB1, 80, CLIENT, 40000, syn_ack), web, back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(VIP, 80, CLIENT, 40000, syn_ack), front, client)),
            counters: &[Ipv4, Tcp, LbNatReply],
        },
        Case {
            name: "the client's ACK follows the flow",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40000, VIP, 80, ack), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(CLIENT, 40000, WEB1, 80, ack), back, web)),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "web1 to a client port no flow has is the kernel's",
            ingress: Some(n.back),
            frame: macs(tcp(WEB1, 80, CLIENT, 40001, syn_ack), web, back),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp],
        },
        Case {
            name: "the same client port to another VIP on web1:80 is refused while the flow lives",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40000, vip_b, 80, syn), client, front),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbDnatTupleTaken],
        },
        Case {
            name: "web1's answers still go back from the first VIP",
            ingress: Some(n.back),
            frame: macs(tcp(WEB1, 80, CLIENT, 40000, ack), web, back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(VIP, 80, CLIENT, 40000, ack), front, client)),
            counters: &[Ipv4, Tcp, LbNatReply],
        },
        Case {
            name: "a half-open flow (a SYN, maybe spoofed) holds its tuple",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40002, vip_b, 80, syn), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(CLIENT, 40002, WEB1, 80, syn), back, web)),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "but gives it up to another VIP's flow",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40002, VIP, 80, syn), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(CLIENT, 40002, WEB1, 80, syn), back, web)),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "whose replies it then translates",
            ingress: Some(n.back),
            frame: macs(tcp(WEB1, 80, CLIENT, 40002, syn_ack), web, back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(tcp(VIP, 80, CLIENT, 40002, syn_ack), front, client)),
            counters: &[Ipv4, Tcp, LbNatReply],
        },
        Case {
            name: "the flow that gave it up is forgotten: its next segment starts nothing",
            ingress: Some(n.front),
            frame: macs(tcp(CLIENT, 40002, vip_b, 80, ack), client, front),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbStateRefused],
        },
        Case {
            name: "UDP keeps its source (and its checksum stays right)",
            ingress: Some(n.front),
            frame: macs(Frame::udp4(CLIENT, 5353, VIP, 53).payload(b"query"), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::udp4(CLIENT, 5353, WEB1, 53).payload(b"query"), back, web)),
            counters: &[Ipv4, Udp, LbNewFlow],
        },
        Case {
            name: "a UDP reply comes from the VIP",
            ingress: Some(n.back),
            frame: macs(Frame::udp4(WEB1, 53, CLIENT, 5353).payload(b"answer"), web, back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::udp4(VIP, 53, CLIENT, 5353).payload(b"answer"), front, client)),
            counters: &[Ipv4, Udp, LbNatReply],
        },
        Case {
            name: "IPv6: only the destination becomes web1",
            ingress: Some(n.front),
            frame: macs(Frame::tcp6(c6, 50000, vip6, 80).flags(syn), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp6(c6, 50000, web6, 80).flags(syn), back, web)),
            counters: &[Ipv6, Tcp, LbNewFlow],
        },
        Case {
            name: "IPv6: the reply comes from the VIP",
            ingress: Some(n.back),
            frame: macs(Frame::tcp6(web6, 80, c6, 50000).flags(syn_ack), web, back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp6(vip6, 80, c6, 50000).flags(syn_ack), front, client)),
            counters: &[Ipv6, Tcp, LbNatReply],
        },
    ];
    run_cases(&dp, Trust::Trusted, cases);
}
