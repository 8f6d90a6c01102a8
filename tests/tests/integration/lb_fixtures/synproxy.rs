//! The SYN proxy, one handshake at a time, through `BPF_PROG_TEST_RUN`: every frame it sends is
//! read back with an independent parser (etherparse), which checks both checksums, and compared
//! field by field with what the cookie, the options and the sequence arithmetic must give.

use std::net::IpAddr;

use etherparse::{NetHeaders, PacketHeaders, TcpOptionElement, TransportHeader};
use foobar::dataplane::services::SynProxy;
use foobar_common::{
    cookie::{self, Handshake, MSS_V4, MSS_V6, PROXY_MSS_V4, PROXY_MSS_V6, PROXY_WSCALE},
    counters::Counter,
};
use foobar_tests::packet::tcp_option as opt;

use super::lab::*;

const KEY: [u64; 2] = [0x0011_2233_4455_6677, 0x8899_aabb_ccdd_eeff];
const CLIENT_ISN: u32 = 0x1000_0000;
const BACKEND_ISN: u32 = 0x5000_0000;
const CLIENT_TS: u32 = 1000;
const BACKEND_TS: u32 = 777;

/// A TCP segment as the independent parser reads it, its checksums already checked.
#[derive(Debug, Default)]
struct Seg {
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    syn: bool,
    ack_flag: bool,
    psh: bool,
    window: u16,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_ok: bool,
    ts: Option<(u32, u32)>,
    sack: Vec<(u32, u32)>,
    payload: Vec<u8>,
}

/// Parses `frame`, failing the test if it is not Ethernet + IP + TCP with correct checksums.
fn parse(frame: &[u8]) -> Seg {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap_or_else(|e| panic!("unparseable {frame:02x?}: {e}"));
    let Some(TransportHeader::Tcp(tcp)) = &h.transport else { panic!("not TCP: {frame:02x?}") };
    let payload = h.payload.slice().to_vec();
    let (src, dst, csum) = match &h.net {
        Some(NetHeaders::Ipv4(ip, _)) => {
            assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header checksum");
            (IpAddr::from(ip.source), IpAddr::from(ip.destination), tcp.calc_checksum_ipv4(ip, &payload).expect("sum"))
        }
        Some(NetHeaders::Ipv6(ip, _)) => {
            (IpAddr::from(ip.source), IpAddr::from(ip.destination), tcp.calc_checksum_ipv6(ip, &payload).expect("sum"))
        }
        other => panic!("not IP: {other:?}"),
    };
    assert_eq!(tcp.checksum, csum, "TCP checksum of {frame:02x?}");
    let link = h.link.clone().and_then(|l| l.ethernet2()).expect("ethernet");
    let mut s = Seg {
        smac: link.source,
        dmac: link.destination,
        src: Some(src),
        dst: Some(dst),
        sport: tcp.source_port,
        dport: tcp.destination_port,
        seq: tcp.sequence_number,
        ack: tcp.acknowledgment_number,
        syn: tcp.syn,
        ack_flag: tcp.ack,
        psh: tcp.psh,
        window: tcp.window_size,
        payload,
        ..Seg::default()
    };
    for o in tcp.options_iterator() {
        match o.expect("well-formed options") {
            TcpOptionElement::MaximumSegmentSize(m) => s.mss = Some(m),
            TcpOptionElement::WindowScale(w) => s.wscale = Some(w),
            TcpOptionElement::SelectiveAcknowledgementPermitted => s.sack_ok = true,
            TcpOptionElement::Timestamp(v, e) => s.ts = Some((v, e)),
            TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                s.sack.push(first);
                s.sack.extend(rest.iter().flatten());
            }
            TcpOptionElement::Noop => {}
        }
    }
    s
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into `ts`; CLOCK_MONOTONIC is bpf_ktime_get_ns's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v) => [u32::from_ne_bytes(v.octets()), 0, 0, 0],
        IpAddr::V6(v) => {
            let o = v.octets();
            std::array::from_fn(|i| u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
        }
    }
}

/// The cookie the proxy must answer `client:port → vip:443` (ISN [`CLIENT_ISN`]) with now,
/// for MSS index `mss_index`; `None` if the time slot turned while the frame ran.
fn expected_cookie(client: IpAddr, port: u16, vip: IpAddr, slot_before: u32, mss_index: u32) -> Option<u32> {
    let slot_after = cookie::slot(monotonic_ns());
    (slot_before == slot_after).then(|| {
        let (c, v) = (words(client), words(vip));
        let h = Handshake { client: &c, vip: &v, client_port: port, vip_port: 443, client_isn: CLIENT_ISN };
        cookie::make(&KEY, &h, slot_before, mss_index)
    })
}

/// The client's SYN, as Linux sends it: MSS, SACK-permitted, timestamp, window scale 7.
fn syn(f: Frame, mss: u16) -> Frame {
    let mut o = opt::mss(mss);
    o.extend(opt::sack_ok_timestamp(CLIENT_TS, 0));
    o.extend(opt::window_scale(7));
    f.flags(TcpFlags::SYN).tcp_numbers(CLIENT_ISN, 0, 64240).tcp_options(&o)
}

/// A data plane with www's port 443 proxied ("proxied", NAT to web1), in the router namespace.
fn proxied_lab(backends: Vec<BackendSpec>, vip: &str) -> WwwLab {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    www.dp.set_syn_key(KEY).expect("key");
    let spec = ServiceSpec { syn_proxy: SynProxy::Always, ..service("proxied", vip, 443, 6, Mode::Nat, backends) };
    www.services.add(&mut www.dp, spec).expect("proxied");
    www
}

/// IPv4: SYN, cookie SYN-ACK, bad cookies, the good ACK, held data, the backend's handshake, and
/// data both ways with sequence numbers, timestamps, windows and SACK edges translated.
pub fn run_v4() {
    let www = proxied_lab(vec![backend("web1", "198.51.100.11")], "192.0.2.10");
    let (dp, n) = (&www.dp, &www.n);
    let (client, vip, snat, web1) = (IpAddr::from(CLIENT), IpAddr::from(VIP), IpAddr::from(SNAT), IpAddr::from(WEB1));
    let to_vip = |f: Frame| macs(f, CLIENT_MAC, n.front_mac);
    let from_web1 = |f: Frame| macs(f, mac_of(0x11), n.back_mac);

    // 1. The SYN is answered with a cookie; nothing is kept.
    let slot = cookie::slot(monotonic_ns());
    let (verdict, out, moved) = run_one(dp, n.front, &to_vip(syn(Frame::tcp4(CLIENT, 40000, VIP, 443), 1460)));
    assert_eq!(verdict, XDP_REDIRECT, "the SYN-ACK goes back out: {moved:?}");
    assert!(moved.contains(&Counter::LbSynCookieSent) && !moved.contains(&Counter::LbNewFlow), "{moved:?}");
    assert!(dp.active_flows().expect("flows").by_service.is_empty(), "a SYN made a flow");
    let synack = parse(&out);
    let Some(cookie) = expected_cookie(client, 40000, vip, slot, 3) else { return run_v4() };
    assert_eq!((synack.smac, synack.dmac), (n.front_mac, CLIENT_MAC));
    assert_eq!((synack.src, synack.dst, synack.sport, synack.dport), (Some(vip), Some(client), 443, 40000));
    assert_eq!((synack.seq, synack.ack, synack.syn, synack.ack_flag), (cookie, CLIENT_ISN + 1, true, true));
    assert_eq!((synack.mss, synack.wscale, synack.sack_ok), (Some(PROXY_MSS_V4), Some(PROXY_WSCALE), true));
    let (proxy_ts, echo) = synack.ts.expect("a timestamp");
    assert_eq!(echo, CLIENT_TS);
    assert_eq!(cookie::options_of(proxy_ts), (Some(7), true), "window scale and SACK ride in the timestamp");

    // 2. ACKs that do not carry this cookie begin nothing.
    let ack = |seq: u32, ack: u32, ts: (u32, u32), payload: &[u8]| {
        Frame::tcp4(CLIENT, 40000, VIP, 443)
            .flags(TcpFlags::ACK | if payload.is_empty() { 0 } else { TcpFlags::PSH })
            .tcp_numbers(seq, ack, 502)
            .tcp_options(&opt::timestamp(ts.0, ts.1))
            .payload(payload)
    };
    let (vc, hc) = (words(client), words(vip));
    let h = Handshake { client: &vc, vip: &hc, client_port: 40000, vip_port: 443, client_isn: CLIENT_ISN };
    let stale = cookie::make(&KEY, &h, slot.wrapping_sub(2) & 7, 3);
    for (what, bad) in [("a flipped MAC bit", cookie ^ 0x100), ("a cookie two slots old", stale)] {
        let (verdict, _, moved) =
            run_one(dp, n.front, &to_vip(ack(CLIENT_ISN + 1, bad + 1, (CLIENT_TS + 1, proxy_ts), b"")));
        assert_eq!(verdict, XDP_DROP, "{what}");
        assert!(moved.contains(&Counter::LbSynCookieInvalid), "{what}: {moved:?}");
    }
    assert!(dp.active_flows().expect("flows").by_service.is_empty(), "a bad cookie made a flow");

    // 3. The good ACK begins the flow and becomes the proxy's SYN to web1, with the client's
    //    options (MSS from the cookie, window scale and SACK from the echoed timestamp).
    let good = ack(CLIENT_ISN + 1, cookie + 1, (CLIENT_TS + 1, proxy_ts), b"");
    let (verdict, out, moved) = run_one(dp, n.front, &to_vip(good));
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    assert!(moved.contains(&Counter::LbSynCookieValid) && moved.contains(&Counter::LbNewFlow), "{moved:?}");
    let bsyn = parse(&out);
    assert_eq!((bsyn.smac, bsyn.dmac), (n.back_mac, mac_of(0x11)));
    assert_eq!((bsyn.src, bsyn.dst, bsyn.dport), (Some(snat), Some(web1), 443));
    assert_eq!((bsyn.seq, bsyn.ack, bsyn.syn, bsyn.ack_flag), (CLIENT_ISN, 0, true, false));
    assert_eq!((bsyn.mss, bsyn.wscale, bsyn.sack_ok, bsyn.ts), (Some(1460), Some(7), true, Some((CLIENT_TS + 1, 0))));
    let nat_port = bsyn.sport;

    // 4. Data the client sends before web1 answers is held, not forwarded.
    let (verdict, _, moved) =
        run_one(dp, n.front, &to_vip(ack(CLIENT_ISN + 1, cookie + 1, (CLIENT_TS + 2, proxy_ts), b"hello")));
    assert_eq!(verdict, XDP_DROP);
    assert!(moved.contains(&Counter::LbEarlyData), "{moved:?}");

    // 4b. A RST far from the client's sequence (a blind guess at the tuple) ends nothing.
    let blind = Frame::tcp4(CLIENT, 40000, VIP, 443).flags(TcpFlags::RST).tcp_numbers(CLIENT_ISN + 1 + (1 << 25), 0, 0);
    let (verdict, _, moved) = run_one(dp, n.front, &to_vip(blind));
    assert_eq!(verdict, XDP_DROP);
    assert!(moved.contains(&Counter::LbEndOutOfWindow) && !moved.contains(&Counter::LbFlowClosing), "{moved:?}");

    // 5. web1's SYN-ACK (window scale 9) is answered with the ACK that ends its handshake,
    //    carrying the held data, in web1's sequence space.
    let mut o = opt::mss(1460);
    o.extend(opt::sack_ok_timestamp(BACKEND_TS, CLIENT_TS + 1));
    o.extend(opt::window_scale(9));
    let backend_synack = Frame::tcp4(WEB1, 443, SNAT, nat_port)
        .flags(TcpFlags::SYN | TcpFlags::ACK)
        .tcp_numbers(BACKEND_ISN, CLIENT_ISN + 1, 65160)
        .tcp_options(&o);
    let (verdict, out, moved) = run_one(dp, n.back, &from_web1(backend_synack));
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    assert!(moved.contains(&Counter::LbProxiedHandshake), "{moved:?}");
    let back_ack = parse(&out);
    assert_eq!((back_ack.smac, back_ack.dmac), (n.back_mac, mac_of(0x11)));
    assert_eq!((back_ack.src, back_ack.dst, back_ack.sport, back_ack.dport), (Some(snat), Some(web1), nat_port, 443));
    assert_eq!((back_ack.seq, back_ack.ack), (CLIENT_ISN + 1, BACKEND_ISN + 1));
    assert!(back_ack.ack_flag && back_ack.psh && !back_ack.syn);
    assert_eq!(back_ack.window, 502, "the client's window, in the scale both sides agreed");
    assert_eq!(back_ack.ts, Some((CLIENT_TS + 1, BACKEND_TS)));
    assert_eq!(back_ack.payload, b"hello");

    // 6. web1's data reaches the client in the proxy's sequence space and clock; its window
    //    (scale 9) is rescaled to the 7 the proxy gave the client.
    let seq_delta = BACKEND_ISN.wrapping_sub(cookie);
    let ts_delta = BACKEND_TS.wrapping_sub(proxy_ts);
    let data = Frame::tcp4(WEB1, 443, SNAT, nat_port)
        .flags(TcpFlags::ACK | TcpFlags::PSH)
        .tcp_numbers(BACKEND_ISN + 1, CLIENT_ISN + 6, 100)
        .tcp_options(&opt::timestamp(BACKEND_TS + 5, CLIENT_TS + 1))
        .payload(b"world");
    let (verdict, out, moved) = run_one(dp, n.back, &from_web1(data));
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    let reply = parse(&out);
    assert_eq!((reply.smac, reply.dmac), (n.front_mac, CLIENT_MAC));
    assert_eq!((reply.src, reply.dst, reply.sport, reply.dport), (Some(vip), Some(client), 443, 40000));
    assert_eq!((reply.seq, reply.ack), (cookie + 1, CLIENT_ISN + 6));
    assert_eq!(reply.window, 100 << 2);
    assert_eq!(reply.ts, Some(((BACKEND_TS + 5).wrapping_sub(ts_delta), CLIENT_TS + 1)));
    assert_eq!(reply.payload, b"world");

    // 7. The client's ACK with SACK edges reaches web1 in web1's sequence space and clock.
    let mut o = opt::timestamp(CLIENT_TS + 3, proxy_ts + 5);
    o.extend(opt::sack(&[(cookie + 100, cookie + 200)]));
    let sacked = Frame::tcp4(CLIENT, 40000, VIP, 443)
        .flags(TcpFlags::ACK)
        .tcp_numbers(CLIENT_ISN + 6, cookie + 6, 501)
        .tcp_options(&o);
    let (verdict, out, moved) = run_one(dp, n.front, &to_vip(sacked));
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    let fwd = parse(&out);
    assert_eq!((fwd.src, fwd.dst, fwd.sport, fwd.dport), (Some(snat), Some(web1), nat_port, 443));
    assert_eq!((fwd.seq, fwd.ack, fwd.window), (CLIENT_ISN + 6, BACKEND_ISN + 6, 501));
    assert_eq!(fwd.ts, Some((CLIENT_TS + 3, BACKEND_TS + 5)));
    assert_eq!(
        fwd.sack,
        [(cookie.wrapping_add(100).wrapping_add(seq_delta), cookie.wrapping_add(200).wrapping_add(seq_delta))]
    );

    // 8. An ICMP error quoting the proxy's segment (the client's sequence space) reaches web1
    //    quoting web1's own, with the ICMP checksum still right.
    let sent = Frame::tcp4(VIP, 443, CLIENT, 40000).tcp_numbers(cookie + 6, CLIENT_ISN + 6, 502).build();
    let error = macs(icmp_error4([192, 0, 2, 1], VIP, &sent), CLIENT_MAC, n.front_mac);
    let (verdict, out, moved) = run_one(dp, n.front, &error);
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    assert!(moved.contains(&Counter::LbIcmpToBackend), "{moved:?}");
    let quoted_l4 = 14 + 20 + 8 + 20;
    let quoted_seq = u32::from_be_bytes(out[quoted_l4 + 4..quoted_l4 + 8].try_into().expect("seq"));
    assert_eq!(quoted_seq, BACKEND_ISN + 6, "the quoted sequence number, in web1's space");
    assert_eq!(foobar_tests::checksum::of(&out[14 + 20..]), 0, "the ICMP checksum");
}

/// IPv6: the cookie SYN-ACK and the backend SYN, with the IPv6 MSS table.
pub fn run_v6() {
    let (c6, vip6) = ("2001:db8:1::100", "2001:db8:1::10");
    let www = proxied_lab(vec![backend("web1", "2001:db8:2::11")], vip6);
    let (dp, n) = (&www.dp, &www.n);
    let (client, vip) = (IpAddr::from(v6(c6)), IpAddr::from(v6(vip6)));
    let slot = cookie::slot(monotonic_ns());
    let frame = macs(syn(Frame::tcp6(v6(c6), 50000, v6(vip6), 443), 1440), CLIENT_MAC, n.front_mac);
    let (verdict, out, moved) = run_one(dp, n.front, &frame);
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    let synack = parse(&out);
    let Some(cookie) = expected_cookie(client, 50000, vip, slot, 2) else { return run_v6() };
    assert_eq!(MSS_V6[2], 1440);
    assert_eq!((synack.src, synack.dst, synack.seq, synack.ack), (Some(vip), Some(client), cookie, CLIENT_ISN + 1));
    assert_eq!((synack.mss, synack.wscale), (Some(PROXY_MSS_V6), Some(PROXY_WSCALE)));
    let (proxy_ts, _) = synack.ts.expect("timestamp");
    let ack = Frame::tcp6(v6(c6), 50000, v6(vip6), 443)
        .tcp_numbers(CLIENT_ISN + 1, cookie + 1, 502)
        .tcp_options(&opt::timestamp(CLIENT_TS + 1, proxy_ts));
    let (verdict, out, moved) = run_one(dp, n.front, &macs(ack, CLIENT_MAC, n.front_mac));
    assert_eq!(verdict, XDP_REDIRECT, "{moved:?}");
    let bsyn = parse(&out);
    assert_eq!(
        (bsyn.src, bsyn.dst),
        (Some(IpAddr::from(v6("2001:db8:2::1"))), Some(IpAddr::from(v6("2001:db8:2::11"))))
    );
    assert_eq!((bsyn.seq, bsyn.syn, bsyn.mss, bsyn.wscale), (CLIENT_ISN, true, Some(1440), Some(7)));
    assert_eq!(MSS_V4[3], 1460);
}

/// A client reusing its port while another CPU still has a copy of the old proxied flow in
/// its flow cache: the new connection's data, arriving on that CPU before its backend
/// answered, is held as any early data, not sent on with the old connection's translation.
pub fn reuse_on_another_cpu() {
    let www = proxied_lab(vec![backend("web1", "198.51.100.11")], "192.0.2.10");
    let (dp, n) = (&www.dp, &www.n);
    let to_vip = |f: Frame| macs(f, CLIENT_MAC, n.front_mac);
    let segment = |isn: u32, cookie: u32, ts: (u32, u32), flags: u8, payload: &[u8]| {
        to_vip(
            Frame::tcp4(CLIENT, 40000, VIP, 443)
                .flags(flags)
                .tcp_numbers(isn + 1, cookie + 1, 502)
                .tcp_options(&opt::timestamp(ts.0, ts.1))
                .payload(payload),
        )
    };
    let (ack, data) = (TcpFlags::ACK, TcpFlags::ACK | TcpFlags::PSH);
    // The client's SYN and ACK on CPU 0: the cookie, and the proxy's SYN to web1.
    let open = |isn: u32| {
        on_cpu(0);
        let first = syn(Frame::tcp4(CLIENT, 40000, VIP, 443), 1460).tcp_numbers(isn, 0, 64240);
        let (verdict, out, moved) = run_one(dp, n.front, &to_vip(first));
        assert_eq!(verdict, XDP_REDIRECT, "SYN: {moved:?}");
        let synack = parse(&out);
        let (cookie, proxy_ts) = (synack.seq, synack.ts.expect("timestamp").0);
        let (verdict, out, moved) = run_one(dp, n.front, &segment(isn, cookie, (CLIENT_TS + 1, proxy_ts), ack, b""));
        assert!(verdict == XDP_REDIRECT && moved.contains(&Counter::LbNewFlow), "cookie ACK: {moved:?}");
        (cookie, proxy_ts, parse(&out).sport)
    };
    let (cookie, proxy_ts, nat_port) = open(CLIENT_ISN);
    let synack = Frame::tcp4(WEB1, 443, SNAT, nat_port)
        .flags(TcpFlags::SYN | TcpFlags::ACK)
        .tcp_numbers(BACKEND_ISN, CLIENT_ISN + 1, 65160)
        .tcp_options(&opt::timestamp(BACKEND_TS, CLIENT_TS + 1));
    let (verdict, _, moved) = run_one(dp, n.back, &macs(synack, mac_of(0x11), n.back_mac));
    assert!(verdict == XDP_REDIRECT && moved.contains(&Counter::LbProxiedHandshake), "{moved:?}");
    // Two segments on CPU 1: the first fills its flow cache, the second is sent from the copy.
    on_cpu(1);
    for _ in 0..2 {
        let (verdict, _, _) = run_one(dp, n.front, &segment(CLIENT_ISN, cookie, (CLIENT_TS + 2, proxy_ts), ack, b""));
        assert_eq!(verdict, XDP_REDIRECT);
    }
    let (_, _, moved) = run_one(dp, n.front, &segment(CLIENT_ISN, cookie, (CLIENT_TS + 2, proxy_ts), ack, b""));
    assert!(moved.contains(&Counter::LbFlowCacheHit), "CPU 1 holds a copy: {moved:?}");
    // The client closes on CPU 0, then opens a new connection from the same port.
    on_cpu(0);
    let fin = segment(CLIENT_ISN, cookie, (CLIENT_TS + 3, proxy_ts), TcpFlags::FIN | ack, b"");
    let (_, _, moved) = run_one(dp, n.front, &fin);
    assert!(moved.contains(&Counter::LbFlowClosing), "{moved:?}");
    let isn = CLIENT_ISN.wrapping_add(1_000_000);
    let (cookie, proxy_ts, _) = open(isn);
    // Its request reaches CPU 1 before web1 answered the proxy's new SYN.
    on_cpu(1);
    let (verdict, out, moved) = run_one(dp, n.front, &segment(isn, cookie, (CLIENT_TS + 4, proxy_ts), data, b"GET /"));
    assert_eq!(
        verdict,
        XDP_DROP,
        "sent on by a stale copy: {moved:?} {:?}",
        (verdict == XDP_REDIRECT).then(|| parse(&out))
    );
    assert!(moved.contains(&Counter::LbEarlyData), "{moved:?}");
}
