//! UDP through NAT both ways: the checksum patched, or kept at zero.

use super::lab::*;

/// UDP through NAT, both ways and on both paths (the first packet schedules the flow, the
/// next take the fast path): the checksum is patched, and a zero one ("none" over IPv4) stays
/// zero. Output bytes are compared whole, so a wrong checksum fails the case.
pub fn run() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    services
        .add(dp, service("dns-nat", "192.0.2.10", 53, 17, Mode::Nat, vec![backend("web1", "198.51.100.11")]))
        .expect("service");
    // `mac` also says which way: frames leaving the node left it one hop later.
    let query = |src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, mac: ([u8; 6], [u8; 6]), csum: bool| {
        let frame = Frame::udp4(src, sport, dst, dport).payload(b"query");
        let leaving = mac.0 == n.back_mac || mac.0 == n.front_mac;
        let mut f = if leaving { fwd(frame, mac.0, mac.1) } else { macs(frame, mac.0, mac.1) };
        if !csum {
            f[14 + 20 + 6..14 + 20 + 8].fill(0);
        }
        f
    };
    let inbound = (CLIENT_MAC, n.front_mac);
    let outbound = (n.back_mac, mac_of(0x11));
    let reply_in = (mac_of(0x11), n.back_mac);
    let reply_out = (n.front_mac, CLIENT_MAC);
    // Every case is forwarded: `from` on `ingress` must leave as `to`.
    let forwarded = |name: String,
                     ingress: u32,
                     from: Vec<u8>,
                     to: Vec<u8>,
                     counters: &'static [foobar_common::counters::Counter]| Case {
        name: Box::leak(name.into_boxed_str()),
        ingress: Some(ingress),
        frame: from,
        verdict: XDP_REDIRECT,
        output: Some(to),
        counters,
    };
    let mut cases = Vec::new();
    for (csum, name) in [(true, "with a checksum"), (false, "with none")] {
        for (i, step) in ["first packet", "next packet"].into_iter().enumerate() {
            cases.push(forwarded(
                format!("{step} to the service, {name}"),
                n.front,
                query(CLIENT, 5353, VIP, 53, inbound, csum),
                query(SNAT, 10240, WEB1, 53, outbound, csum),
                // The first packet starts the flow; the next asks the table, which keeps it
                // uncached until a reply shows it real; after the reply the table is asked
                // once more and the flow cached, and packets are forwarded from the copy.
                match (csum, i) {
                    (true, 0) => &[Ipv4, Udp, LbNewFlow],
                    (true, _) | (false, 0) => &[Ipv4, Udp, LbEstablished],
                    (false, _) => &[Ipv4, Udp, LbEstablished, LbFlowCacheHit],
                },
            ));
        }
        cases.push(forwarded(
            format!("the reply, {name}"),
            n.back,
            query(WEB1, 53, SNAT, 10240, reply_in, csum),
            query(VIP, 53, CLIENT, 5353, reply_out, csum),
            &[Ipv4, Udp, LbNatReply],
        ));
    }
    run_cases(dp, Trust::Trusted, cases);
}
