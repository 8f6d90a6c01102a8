//! IPv6 NAT both ways.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front, back) = (CLIENT_MAC, n.front_mac, n.back_mac);
    vec![
        Case {
            name: "IPv6 NAT to the v6 backends",
            ingress: Some(n.front),
            frame: macs(
                Frame::tcp6(v6("2001:db8:1::100"), 50000, v6("2001:db8:1::10"), 80).flags(TcpFlags::SYN),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
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
            output: Some(fwd(
                Frame::tcp6(v6("2001:db8:1::10"), 80, v6("2001:db8:1::100"), 50000)
                    .flags(TcpFlags::SYN | TcpFlags::ACK),
                front,
                client,
            )),
            counters: &[Ipv6, Tcp, LbNatReply],
        },
    ]
}
