//! What a router owes a packet it cannot forward: a TTL (hop limit) that runs out here is
//! answered with ICMP time exceeded, a don't-fragment segment too big for the backend's link
//! with fragmentation needed (ICMPv6 packet too big), each from the address the sender used
//! and quoting what it sent; an IPv4 segment that may be fragmented, and an ICMP error that
//! would need one, are dropped and counted.

use foobar_tests::packet::Net;

use super::lab::*;

const WEB1_6: &str = "2001:db8:2::11";

fn ttl(mut f: Frame, value: u8) -> Frame {
    match &mut f.net {
        Net::V4 { ttl, .. } => *ttl = value,
        Net::V6 { hop_limit, .. } => *hop_limit = value,
        _ => {}
    }
    f
}

/// Sets IPv4's don't-fragment bit in a built frame, patching the header checksum.
fn dont_fragment(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 6] |= 0x40;
    ipv4_checksum(frame)
}

/// Clears the IPv4 identification the builder gives every frame (an ICMP error carries none).
fn no_id(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 4..14 + 6].copy_from_slice(&[0, 0]);
    ipv4_checksum(frame)
}

fn ipv4_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let sum = foobar_tests::checksum::of(&frame[14..34]);
    frame[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// The ICMP error `kind`/`code`/`rest` from `from` to `to`, quoting `sent`'s IP header and
/// the 8 bytes after it, between MACs `src` and `dst`.
fn error4(
    from: [u8; 4],
    to: [u8; 4],
    (kind, code, rest): (u8, u8, [u8; 4]),
    sent: &[u8],
    src: [u8; 6],
    dst: [u8; 6],
) -> Option<Vec<u8>> {
    let f = Frame { transport: Transport::Icmp { kind, code, rest }, ..Frame::ping4(from, to) };
    Some(no_id(macs(f.payload(&sent[14..14 + 28]), src, dst)))
}

pub fn run() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, services, n, .. } = &mut www;
    services.add(dp, service("www6", "2001:db8:1::10", 80, 6, Mode::Nat, vec![backend("web1", WEB1_6)])).expect("www6");
    n.ns.ip(&["link", "set", "dev", "back", "mtu", "1400"]);
    // What the daemon does every second: frames that fit every link skip the MTU check.
    assert_eq!(dp.refresh_surroundings().expect("link MTU").link_mtu_floor, 1400);
    let (front, back, client) = (n.front_mac, n.back_mac, CLIENT_MAC);
    let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
    let time_exceeded = (11, 0, [0; 4]);
    let frag_needed = (3, 4, [0, 0, 0x05, 0x78]);
    let big = vec![0x61; 1500 - 40];

    let expiring = macs(ttl(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(ack), 1), client, front);
    let reply_expiring = macs(ttl(Frame::tcp4(WEB1, 80, SNAT, 10240).flags(ack), 1), mac_of(0x11), back);
    let big_df = dont_fragment(macs(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(ack).payload(&big), client, front));
    let big_plain = macs(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(ack).payload(&big), client, front);
    let error_expiring = {
        let sent = Frame::tcp4(VIP, 80, CLIENT, 40000).build();
        macs(ttl(icmp_error4([192, 0, 2, 1], VIP, &sent), 1), client, front)
    };
    let expiring6 =
        macs(ttl(Frame::tcp6(v6("2001:db8:1::100"), 50000, v6("2001:db8:1::10"), 80).flags(syn), 1), client, front);
    let time_exceeded6 = {
        let f = Frame {
            transport: Transport::Icmp { kind: 3, code: 0, rest: [0; 4] },
            ..Frame::icmp6(v6("2001:db8:1::10"), v6("2001:db8:1::100"), 3, 0)
        };
        Some(macs(f.payload(&expiring6[14..14 + 48]), front, client))
    };
    let cases = vec![
        first_flow_to_web1(n),
        Case {
            name: "the client's segment whose TTL runs out here: time exceeded from the VIP",
            ingress: Some(n.front),
            frame: expiring.clone(),
            verdict: XDP_REDIRECT,
            output: error4(VIP, CLIENT, time_exceeded, &expiring, front, client),
            counters: &[Ipv4, Tcp, LbEstablished, LbTimeExceeded],
        },
        Case {
            name: "the backend's reply whose TTL runs out here: time exceeded from the NAT address",
            ingress: Some(n.back),
            frame: reply_expiring.clone(),
            verdict: XDP_REDIRECT,
            output: error4(SNAT, WEB1, time_exceeded, &reply_expiring, back, mac_of(0x11)),
            counters: &[Ipv4, Tcp, LbNatReply, LbTimeExceeded],
        },
        Case {
            name: "a don't-fragment segment too big for the backend's link: fragmentation needed, MTU 1400",
            ingress: Some(n.front),
            frame: big_df.clone(),
            verdict: XDP_REDIRECT,
            output: error4(VIP, CLIENT, frag_needed, &big_df, front, client),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit, LbTooBig],
        },
        Case {
            name: "the same segment without don't-fragment is dropped: XDP cannot fragment",
            ingress: Some(n.front),
            frame: big_plain,
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit, LbTooBig],
        },
        Case {
            name: "a segment that fits is forwarded, one hop less",
            ingress: Some(n.front),
            frame: to_www(n, 40000, ack),
            verdict: XDP_REDIRECT,
            output: nat_to(n, 10240, WEB1, 0x11, ack),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit],
        },
        Case {
            name: "an ICMP error whose TTL runs out is dropped, never answered with another",
            ingress: Some(n.front),
            frame: error_expiring,
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Icmp, LbIcmpToBackend, LbTimeExceeded],
        },
        Case {
            name: "IPv6: a hop limit that runs out here is answered with ICMPv6 time exceeded",
            ingress: Some(n.front),
            frame: expiring6,
            verdict: XDP_REDIRECT,
            output: time_exceeded6,
            counters: &[Ipv6, Tcp, LbNewFlow, LbTimeExceeded],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);

    // IPv4 links may be narrower than IPv6's 1280: frames below that are checked too.
    n.ns.ip(&["link", "set", "dev", "back", "mtu", "1000"]);
    assert_eq!(dp.refresh_surroundings().expect("link MTU").link_mtu_floor, 1000);
    let narrow_df = dont_fragment(macs(
        Frame::tcp4(CLIENT, 40000, VIP, 80).flags(ack).payload(&vec![0x62; 1100 - 40]),
        client,
        front,
    ));
    let fits = vec![0x63; 1000 - 40];
    let cases = vec![
        Case {
            name: "a don't-fragment segment of 1100 bytes on a link of MTU 1000: fragmentation needed, MTU 1000",
            ingress: Some(n.front),
            frame: narrow_df.clone(),
            verdict: XDP_REDIRECT,
            output: error4(VIP, CLIENT, (3, 4, [0, 0, 0x03, 0xe8]), &narrow_df, front, client),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit, LbTooBig],
        },
        Case {
            name: "a segment of exactly the link's MTU is forwarded",
            ingress: Some(n.front),
            frame: macs(Frame::tcp4(CLIENT, 40000, VIP, 80).flags(ack).payload(&fits), client, front),
            verdict: XDP_REDIRECT,
            output: Some(fwd(Frame::tcp4(SNAT, 10240, WEB1, 80).flags(ack).payload(&fits), back, mac_of(0x11))),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowCacheHit],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);
}
