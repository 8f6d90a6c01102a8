//! NAT flows both ways: new flows round-robin with their NAT ports, established packets, replies
//! translated back, a FIN closing the flow and a SYN reusing its tuple.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front, back) = (CLIENT_MAC, n.front_mac, n.back_mac);
    let syn = |sport| Frame::tcp4(CLIENT, sport, VIP, 80).flags(TcpFlags::SYN);
    vec![
        Case {
            name: "first new flow: NAT to web1 from the node's back address",
            ingress: Some(n.front),
            frame: macs(syn(40000), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::SYN), back, mac_of(0x11))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "second new flow: round-robin to web2 with the next NAT port",
            ingress: Some(n.front),
            frame: macs(syn(40001), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp4(SNAT, 10241, WEB2, 80).flags(TcpFlags::SYN), back, mac_of(0x12))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "established packet of the first flow stays on web1",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, VIP, 80).payload(b"GET / HTTP/1.1\r\n\r\n"), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                Frame::tcp4(SNAT, 10240, WEB1, 80).payload(b"GET / HTTP/1.1\r\n\r\n"),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "web1's reply is translated back to come from the VIP",
            ingress: Some(n.back),
            frame: macs(Frame::tcp4(WEB1, 80, SNAT, 10240).flags(TcpFlags::SYN | TcpFlags::ACK), mac_of(0x11), back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp4(VIP, 80, CLIENT, 40000).flags(TcpFlags::SYN | TcpFlags::ACK), front, client)),
            counters: &[Ipv4, Tcp, LbNatReply],
        },
        Case {
            name: "a FIN is forwarded and marks the flow closing",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(TcpFlags::FIN | TcpFlags::ACK), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::FIN | TcpFlags::ACK),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowClosing],
        },
        Case {
            // Same backend and NAT port: web1 may hold the old connection in TIME_WAIT, which
            // only this tuple's next SYN gets through.
            name: "a new SYN on the closing tuple is a new flow on its backend and NAT port",
            ingress: Some(n.front),
            frame: macs(syn(40000), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp4(SNAT, 10240, WEB1, 80).flags(TcpFlags::SYN), back, mac_of(0x11))),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
    ]
}
