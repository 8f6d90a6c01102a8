//! DSR: only MACs change, and answers passing the node go straight on to the client.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front, back) = (CLIENT_MAC, n.front_mac, n.back_mac);
    vec![
        Case {
            name: "DSR: only the MACs change",
            ingress: Some(n.front),
            frame: macs(Frame::udp4(CLIENT, 5353, DNS, 53).payload(b"query"), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::udp4(CLIENT, 5353, DNS, 53).payload(b"query"), back, mac_of(0x21))),
            counters: &[Ipv4, Udp, LbNewFlow],
        },
        Case {
            name: "DSR answer passing the node goes straight to the client",
            ingress: Some(n.back),
            frame: macs(Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer"), mac_of(0x21), back),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer"), front, client)),
            counters: &[Ipv4, Udp],
        },
    ]
}
