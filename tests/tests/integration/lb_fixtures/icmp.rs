//! ICMP errors about balanced flows go to the flow's backend (translated in NAT mode); others
//! pass to the stack.

use super::lab::*;

pub fn cases(n: &Router) -> Vec<Case> {
    let (client, front, back) = (CLIENT_MAC, n.front_mac, n.back_mac);
    vec![
        Case {
            name: "ICMP fragmentation-needed about a NAT flow goes to its backend, translated",
            ingress: Some(n.front),
            frame: macs(icmp_error4([192, 0, 2, 1], VIP, &Frame::tcp4(VIP, 80, CLIENT, 40001).build()), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                icmp_error4([192, 0, 2, 1], WEB2, &Frame::tcp4(WEB2, 80, SNAT, 10241).build()),
                back,
                mac_of(0x12),
            )),
            counters: &[Ipv4, Icmp, LbIcmpToBackend],
        },
        Case {
            name: "ICMP error about a DSR flow goes to its backend unchanged",
            ingress: Some(n.front),
            frame: macs(
                icmp_error4([192, 0, 2, 1], DNS, &Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer").build()),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                icmp_error4([192, 0, 2, 1], DNS, &Frame::udp4(DNS, 53, CLIENT, 5353).payload(b"answer").build()),
                back,
                mac_of(0x21),
            )),
            counters: &[Ipv4, Icmp, LbIcmpToBackend],
        },
        Case {
            name: "ICMPv6 packet-too-big about a NAT flow goes to its backend, translated",
            ingress: Some(n.front),
            frame: macs(
                icmp_error6(
                    v6("2001:db8:1::1"),
                    v6("2001:db8:1::10"),
                    &Frame::tcp6(v6("2001:db8:1::10"), 80, v6("2001:db8:1::100"), 50000).build(),
                ),
                client,
                front,
            ),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                icmp_error6(
                    v6("2001:db8:1::1"),
                    v6("2001:db8:2::11"),
                    &Frame::tcp6(v6("2001:db8:2::11"), 80, v6("2001:db8:2::1"), 10242).build(),
                ),
                back,
                mac_of(0x11),
            )),
            counters: &[Ipv6, Icmpv6, LbIcmpToBackend],
        },
        Case {
            name: "ICMP error about no tracked flow passes to the stack",
            ingress: Some(n.front),
            frame: macs(icmp_error4([192, 0, 2, 1], VIP, &Frame::tcp4(VIP, 80, CLIENT, 1).build()), client, front),
            verdict: XDP_PASS,
            output: None,
            counters: &[Ipv4, Icmp],
        },
    ]
}
