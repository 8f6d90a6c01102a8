//! DNS over UDP, a loop per socket: a plain query the rendered answers hold is answered at
//! once (`fast`), the rest go through the guard to the zone's catalog as hickory's own UDP
//! server hands them on (nothing back to a message without a header or to a response,
//! FORMERR to one that does not parse), encoded by hickory's own response handle.

use std::{net::SocketAddr, sync::Arc};

use futures_util::{FutureExt, StreamExt};
use hickory_server::{
    net::{BufDnsStreamHandle, runtime::TokioTime, xfer::Protocol},
    proto::{
        op::{Header, MessageType, ResponseCode},
        serialize::binary::{BinDecodable, BinDecoder},
    },
    server::{Request, RequestHandler, ResponseHandle, ResponseHandler},
    zone_handler::{MessageResponseBuilder, Queries},
};
use tokio::{io::Interest, net::UdpSocket, sync::watch};
use tracing::debug;

use super::{batch, fast::Fast, guard::Guard};

/// The longest datagram read; longer ones are cut to this, as hickory's server reads them.
const DATAGRAM_MAX: usize = 4096;

/// Serves `socket` until the task is dropped, answering from the latest of `fast`: a batch
/// of queries read at once, the rendered answers among them sent at once.
pub async fn serve(socket: UdpSocket, guard: Guard, mut fast: watch::Receiver<Arc<Fast>>) {
    let Ok(local) = socket.local_addr() else { return };
    // The catalog's replies come back through this channel, addressed by `by_catalog`.
    let (handle, mut replies) = BufDnsStreamHandle::with_buffer_size(local, 16);
    let mut received = batch::Received::new(DATAGRAM_MAX);
    let mut answers: Vec<Vec<u8>> = (0..batch::BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut ready = Vec::with_capacity(batch::BATCH);
    let mut current = fast.borrow_and_update().clone();
    loop {
        let n = match socket.try_io(Interest::READABLE, || received.recv(&socket)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if socket.readable().await.is_err() {
                    return;
                }
                continue;
            }
            Err(error) => {
                // An ICMP error for an earlier reply, reported on this socket: nothing to do.
                debug!(%error, "DNS UDP receive");
                continue;
            }
        };
        if fast.has_changed().unwrap_or(false) {
            current = fast.borrow_and_update().clone();
        }
        ready.clear();
        for (i, answer) in answers.iter_mut().enumerate().take(n) {
            let Some((query, src)) = received.get(i) else { continue };
            if !answerable(src) {
                continue;
            }
            match guard.answer_rendered(&current, query, src.ip(), answer) {
                Some(true) => ready.push((i, src)),
                Some(false) => {}
                None => {
                    by_catalog(&guard, query, src, &handle).await;
                    while let Some(Some(reply)) = replies.next().now_or_never() {
                        let (bytes, to) = reply.into_parts();
                        let _ = socket.send_to(&bytes, to).await;
                    }
                }
            }
        }
        let out: Vec<(&[u8], SocketAddr)> = ready.iter().map(|&(i, to)| (&answers[i][..], to)).collect();
        batch::send(&socket, &out);
    }
}

/// Whether a reply can go to `src` (hickory's server skips the same).
fn answerable(src: SocketAddr) -> bool {
    let broadcast = matches!(src, SocketAddr::V4(a) if a.ip().is_broadcast());
    src.port() != 0 && !src.ip().is_unspecified() && !broadcast
}

/// Hands `query` to the guard and the catalog, whose reply goes into `handle`'s channel.
async fn by_catalog(guard: &Guard, query: &[u8], src: SocketAddr, handle: &BufDnsStreamHandle) {
    let Ok(header) = Header::read(&mut BinDecoder::new(query)) else { return };
    let mut response = ResponseHandle::new(src, handle.with_remote_addr(src), Protocol::Udp);
    match Request::from_bytes(query.to_vec(), src, Protocol::Udp) {
        Ok(request) if request.metadata.message_type == MessageType::Response => {}
        Ok(request) => {
            guard.handle_request::<_, TokioTime>(&request, response).await;
        }
        Err(_) => {
            guard.counted(ResponseCode::FormErr);
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else { return };
            let reply = MessageResponseBuilder::new(&queries, None).error_msg(&header, ResponseCode::FormErr);
            let _ = response.send_response(reply).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{guard::DnsStats, render, zone::Live};

    /// `name` (dotted, any case) and `qtype` with RD, and an OPT offering `edns`.
    fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, qtype as u8, 0, 1]);
        if let Some(size) = edns {
            q.extend_from_slice(&[0, 0, 41]);
            q.extend_from_slice(&size.to_be_bytes());
            q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        q
    }

    /// The catalog's own UDP reply to `query`, through a channel made as [`serve`] makes it.
    async fn from_catalog(guard: &Guard, query: &[u8]) -> Option<Vec<u8>> {
        let src = SocketAddr::from(([198, 51, 100, 7], 5353));
        let (handle, mut replies) = BufDnsStreamHandle::with_buffer_size(([192, 0, 2, 53], 53).into(), 4);
        by_catalog(guard, query, src, &handle).await;
        let (bytes, to) = replies.next().now_or_never().flatten()?.into_parts();
        assert_eq!(to, src, "a reply addressed elsewhere");
        Some(bytes)
    }

    #[tokio::test]
    async fn rendered_answers_are_the_catalogs_byte_for_byte() {
        let extra = "[[dns.record]]\nname = \"web\"\ntype = \"CNAME\"\nvalue = \"www\"\n\n\
                     [[dns.record]]\nname = \"@\"\ntype = \"MX\"\nvalue = \"10 mail\"\n\n\
                     [[dns.record]]\nname = \"mail\"\ntype = \"AAAA\"\nvalue = \"2001:db8:1::25\"\n\n\
                     [[dns.record]]\nname = \"@\"\ntype = \"TXT\"\nvalue = \"v=spf1 -all\"\n\n[replication]";
        let text = include_str!("../../../examples/lab.toml").replacen("[replication]", extra, 1);
        let cfg = crate::config::parse(std::path::Path::new("lab.toml"), &text, &|_| true).expect("lab config");
        let spec = crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section");
        let live = Live { services: ["www".to_owned()].into(), databases: None };
        let (_, catalog) = crate::dns::catalog(&spec, &live, false).await;
        let catalog = Arc::new(catalog);
        let guard = Guard::new(catalog.clone(), 0, 2, Arc::new(DnsStats::default()));
        let fast = guard.fast(&render::render(&catalog, &spec).await);
        let names = [
            "foobar.com",
            "WwW.FooBar.CoM",
            "ns1.foobar.com",
            "web.foobar.com",
            "mail.foobar.com",
            "db-write.foobar.com",
            "nothere.foobar.com",
            "A.b.foobar.com",
            "x.www.foobar.com",
            "even.foobar.com",
        ];
        let (mut fast_answered, mut passed) = (0, 0);
        for name in names {
            for qtype in [1u16, 2, 5, 6, 15, 16, 28, 65, 99] {
                for edns in [None, Some(100), Some(1232), Some(65535)] {
                    let q = query(0x4242, name, qtype, edns);
                    let expected = from_catalog(&guard, &q).await.expect("the catalog answers");
                    let mut out = Vec::new();
                    match guard.answer_rendered(&fast, &q, [198, 51, 100, 7].into(), &mut out) {
                        Some(true) => {
                            assert_eq!(out, expected, "{name} type {qtype} EDNS {edns:?}");
                            fast_answered += 1;
                        }
                        Some(false) => panic!("RRL is off"),
                        None => passed += 1,
                    }
                }
            }
        }
        // Type 99 (SPF) is not rendered: the catalog answers it for the six names the zone
        // owns (NODATA, not the template's NXDOMAIN), each with four OPTs.
        assert_eq!(passed, 6 * 4, "only the unrendered type of owned names is passed on");
        assert!(fast_answered > 300, "{fast_answered}");
        let stats = &guard.stats;
        assert_eq!(stats.answered_rendered.load(std::sync::atomic::Ordering::Relaxed), fast_answered as u64);
    }

    /// Over the RRL limit, the rendered path slips and drops as the catalog's path does: the
    /// same truncated empty answer, and the same ones held back.
    #[tokio::test]
    async fn rate_limited_answers_slip_as_the_catalogs_do() {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(std::path::Path::new("lab.toml"), text, &|_| true).expect("lab config");
        let spec = crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section");
        let live = Live { services: ["www".to_owned()].into(), databases: None };
        let (_, catalog) = crate::dns::catalog(&spec, &live, false).await;
        let catalog = Arc::new(catalog);
        // One answer a second per bucket, every second limited one slipped.
        let by_rendering = Guard::new(catalog.clone(), 1, 2, Arc::new(DnsStats::default()));
        let by_catalog = Guard::new(catalog.clone(), 1, 2, Arc::new(DnsStats::default()));
        let fast = by_rendering.fast(&render::render(&catalog, &spec).await);
        for (name, qtype) in
            [("www.foobar.com", 1), ("WWW.foobar.com", 1), ("nothere.foobar.com", 1), ("foobar.com", 6)]
        {
            for (i, edns) in [None, Some(1232), None, Some(1232), None].into_iter().enumerate() {
                let q = query(0x1000 + i as u16, name, qtype, edns);
                let mut out = Vec::new();
                let rendered = match by_rendering.answer_rendered(&fast, &q, [203, 0, 113, 9].into(), &mut out) {
                    Some(true) => Some(out),
                    Some(false) => None,
                    None => panic!("{name} {qtype} passed on"),
                };
                let src = SocketAddr::from(([203, 0, 113, 9], 5353));
                let (handle, mut replies) = BufDnsStreamHandle::with_buffer_size(src, 4);
                super::by_catalog(&by_catalog, &q, src, &handle).await;
                let catalogs = replies.next().now_or_never().flatten().map(|r| r.into_parts().0);
                assert_eq!(rendered, catalogs, "{name} type {qtype}, query {i}");
            }
        }
        let count = |g: &Guard| {
            let l = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            (l(&g.stats.queries), l(&g.stats.rate_limited), l(&g.stats.slipped))
        };
        assert_eq!(count(&by_rendering), count(&by_catalog));
        let (queries, limited, slipped) = count(&by_rendering);
        assert!(limited > 0 && slipped > 0 && slipped < limited, "{queries} {limited} {slipped}");
    }

    #[tokio::test]
    async fn junk_and_responses_get_what_the_server_gave_them() {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(std::path::Path::new("lab.toml"), text, &|_| true).expect("lab config");
        let spec = crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section");
        let (_, catalog) = crate::dns::catalog(&spec, &Live::default(), false).await;
        let guard = Guard::new(Arc::new(catalog), 0, 2, Arc::new(DnsStats::default()));
        assert_eq!(from_catalog(&guard, &[0xab; 11]).await, None, "no header: no answer");
        let mut response = query(1, "www.foobar.com", 1, None);
        response[2] |= 0x80;
        assert_eq!(from_catalog(&guard, &response).await, None, "a response is not answered");
        let mut junk = query(0xabcd, "www.foobar.com", 1, None);
        junk.truncate(20);
        let formerr = from_catalog(&guard, &junk).await.expect("FORMERR");
        assert_eq!((&formerr[..2], formerr[3] & 0xf), (&[0xab, 0xcd][..], 1), "{formerr:?}");
        assert_eq!(guard.stats.formerr.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}

#[cfg(test)]
mod live_tests {
    use std::time::Duration;

    /// A started server on the loopback answers a query from the rendering and one from the
    /// catalog (a type the rendering lacks), each back to the asker.
    #[tokio::test]
    async fn a_started_server_answers_both_ways() {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(std::path::Path::new("lab.toml"), text, &|_| true).expect("lab config");
        let mut settings = crate::dns::Settings::from(cfg.dns.as_ref().expect("dns section"));
        let spec = crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section");
        settings.listen = vec!["127.0.0.1:15353".parse().expect("addr")];
        let dns = crate::dns::Dns::start(&spec, &settings, Default::default()).await.expect("start");
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        for qtype in [6u8, 99] {
            let q =
                [&[0, qtype, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..], b"\x06foobar\x03com\x00", &[0, qtype, 0, 1]].concat();
            sock.send_to(&q, "127.0.0.1:15353").await.expect("send");
            let mut buf = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await;
            let n = n.expect("an answer").expect("recv");
            assert!(n > 12 && buf[1] == qtype && buf[3] & 0xf == 0, "type {qtype}: {:?}", &buf[..n]);
        }
        let answered = dns.stats.answered_rendered.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(answered, 1, "the SOA from the rendering, type 99 from the catalog");
    }
}
