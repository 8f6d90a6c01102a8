//! Traffic that is no service's passes to the stack untouched.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front, back) = (CLIENT_MAC, n.front_mac, n.back_mac);
    vec![
        Case {
            name: "traffic for no service passes untouched",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, [192, 0, 2, 2], 22).flags(TcpFlags::SYN), client, front),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp],
        },
        Case {
            name: "a reply-shaped packet to a port NAT never gave passes",
            ingress: Some(n.back),
            frame: macs(Frame::tcp4(WEB1, 80, SNAT, 33000).flags(TcpFlags::ACK), mac_of(0x11), back),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Tcp],
        },
    ]
}
