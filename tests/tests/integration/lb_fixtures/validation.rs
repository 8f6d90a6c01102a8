//! What only a flow's own endpoints could send: a client's RST or FIN closes its flow only with
//! a sequence number near the flow's, and an ICMP error about a TCP flow reaches the backend only
//! quoting a sequence number near what the client acknowledged.

use super::lab::*;

const CLIENT_ISN: u32 = 1000;
const BACKEND_ISN: u32 = 5000;
/// Further than any window: what a blind guess at the tuple most likely sends.
const FAR: u32 = 1 << 25;

pub fn run() {
    let mut www = www_lab(vec![backend("web1", "198.51.100.11")]);
    let WwwLab { dp, n, .. } = &mut www;
    let from = |sport: u16, flags: u8, seq: u32, ack: u32| {
        macs(Frame::tcp4(CLIENT, sport, VIP, 80).flags(flags).tcp_numbers(seq, ack, 502), CLIENT_MAC, n.front_mac)
    };
    let to_web1 = |port: u16, flags: u8, seq: u32, ack: u32| {
        Some(fwd(Frame::tcp4(SNAT, port, WEB1, 80).flags(flags).tcp_numbers(seq, ack, 502), n.back_mac, mac_of(0x11)))
    };
    let (syn, ack, rst) = (TcpFlags::SYN, TcpFlags::ACK, TcpFlags::RST | TcpFlags::ACK);
    let (seq, backend_ack) = (CLIENT_ISN + 1, BACKEND_ISN + 1);
    let quoting = |seq: u32| {
        let sent = Frame::tcp4(VIP, 80, CLIENT, 40001).tcp_numbers(seq, CLIENT_ISN + 1, 502).build();
        macs(icmp_error4([192, 0, 2, 1], VIP, &sent), CLIENT_MAC, n.front_mac)
    };
    let cases = vec![
        Case {
            name: "a flow begins",
            ingress: Some(n.front),
            frame: from(40000, syn, CLIENT_ISN, 0),
            verdict: XDP_REDIRECT,
            output: to_web1(10240, syn, CLIENT_ISN, 0),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "the client's ACK",
            ingress: Some(n.front),
            frame: from(40000, ack, seq, backend_ack),
            verdict: XDP_REDIRECT,
            output: to_web1(10240, ack, seq, backend_ack),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "a RST far out of the window is passed on, but the flow stays open",
            ingress: Some(n.front),
            frame: from(40000, rst, seq + FAR, backend_ack),
            verdict: XDP_REDIRECT,
            output: to_web1(10240, rst, seq + FAR, backend_ack),
            counters: &[Ipv4, Tcp, LbEstablished, LbEndOutOfWindow],
        },
        Case {
            name: "a FIN far out of the window likewise",
            ingress: Some(n.front),
            frame: from(40000, TcpFlags::FIN | ack, seq.wrapping_sub(FAR), backend_ack),
            verdict: XDP_REDIRECT,
            output: to_web1(10240, TcpFlags::FIN | ack, seq.wrapping_sub(FAR), backend_ack),
            counters: &[Ipv4, Tcp, LbEstablished, LbEndOutOfWindow],
        },
        Case {
            name: "the client's own RST closes the flow",
            ingress: Some(n.front),
            frame: from(40000, rst, seq, backend_ack),
            verdict: XDP_REDIRECT,
            output: to_web1(10240, rst, seq, backend_ack),
            counters: &[Ipv4, Tcp, LbEstablished, LbFlowClosing],
        },
        Case {
            name: "a second flow begins",
            ingress: Some(n.front),
            frame: from(40001, syn, CLIENT_ISN, 0),
            verdict: XDP_REDIRECT,
            output: to_web1(10241, syn, CLIENT_ISN, 0),
            counters: &[Ipv4, Tcp, LbNewFlow],
        },
        Case {
            name: "its ACK tells the flow the backend's sequence",
            ingress: Some(n.front),
            frame: from(40001, ack, seq, backend_ack),
            verdict: XDP_REDIRECT,
            output: to_web1(10241, ack, seq, backend_ack),
            counters: &[Ipv4, Tcp, LbEstablished],
        },
        Case {
            name: "a forged fragmentation-needed quoting a sequence number far away is dropped",
            ingress: Some(n.front),
            frame: quoting(backend_ack + FAR),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Icmp, LbIcmpOutOfWindow],
        },
        Case {
            name: "one quoting the backend's own segment goes to the backend, translated",
            ingress: Some(n.front),
            frame: quoting(backend_ack),
            verdict: XDP_REDIRECT,
            output: Some(fwd(
                icmp_error4(
                    [192, 0, 2, 1],
                    WEB1,
                    &Frame::tcp4(WEB1, 80, SNAT, 10241).tcp_numbers(backend_ack, CLIENT_ISN + 1, 502).build(),
                ),
                n.back_mac,
                mac_of(0x11),
            )),
            counters: &[Ipv4, Icmp, LbIcmpToBackend],
        },
    ];
    run_cases(dp, Trust::Trusted, cases);
}
