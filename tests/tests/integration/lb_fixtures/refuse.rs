//! A service with no backend up: TCP is refused at once with a RST built in XDP, never a RST for a RST.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front) = (CLIENT_MAC, n.front_mac);
    vec![
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
    ]
}
