//! Property tests of the packet parser on the host: the same code the kernel runs.

use std::net::Ipv6Addr;

use foobar_common::parse::{
    Fragment, IPPROTO_TCP, IPPROTO_UDP, L3, Parsed, parse, parse_plain_v4, parse_quoted, source_of,
};
use foobar_tests::packet::{Frame, TcpFlags, Transport, truncate_consistently};
use libtest_mimic::Trial;
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use crate::plain;

pub fn trials() -> Vec<Trial> {
    vec![
        plain("parser::arbitrary_bytes_never_panic_or_overrun", arbitrary_bytes),
        plain("parser::built_frames_parse_to_their_fields", built_frames),
        plain("parser::every_truncation_is_refused", truncations),
        plain("parser::icmp_errors_name_the_quoted_flow", quoted_flows),
        plain("parser::the_fast_path_parse_agrees_with_the_full_parse", plain_parse_agrees),
    ]
}

/// The frames the fast path takes: untagged IPv4 without options, TCP or UDP, not a fragment.
fn is_plain(p: &Parsed) -> bool {
    p.l3 == L3::Ipv4
        && p.vlans == 0
        && p.l4_offset == 34
        && p.fragment == Fragment::None
        && (p.protocol == IPPROTO_TCP || p.protocol == IPPROTO_UDP)
}

/// `parse_plain_v4` takes exactly the plain frames the full parse accepts, with the same
/// result: it can neither forward a frame the full parse would drop as malformed, nor read
/// one differently.
fn plain_parse_agrees() {
    let agree = |bytes: &[u8]| -> Result<(), TestCaseError> {
        let full = parse(bytes).ok().filter(is_plain);
        prop_assert_eq!(parse_plain_v4(bytes), full);
        Ok(())
    };
    runner(20_000)
        .run(&proptest::collection::vec(any::<u8>(), 0..128), |bytes| agree(&bytes))
        .expect("arbitrary bytes");
    // Mutations of plain frames reach every check the fast path relies on.
    let bases = [
        Frame::tcp4([192, 0, 2, 100], 1, [192, 0, 2, 10], 80).payload(b"hello").build(),
        Frame::udp4([192, 0, 2, 100], 5353, [192, 0, 2, 53], 53).payload(b"query").build(),
    ];
    for base in bases {
        agree(&base).expect("the unmutated frame");
        assert!(parse_plain_v4(&base[..]).is_some(), "a plain frame must take the fast path");
        runner(20_000)
            .run(&(0..base.len(), any::<u8>(), 0..=base.len()), |(at, byte, len)| {
                let mut f = base.clone();
                f[at] = byte;
                f.truncate(len);
                agree(&f)
            })
            .expect("mutated plain frames");
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Whatever the bytes, parsing returns, and any transport offset it reports lies in the frame.
fn arbitrary_bytes() {
    runner(20_000)
        .run(&proptest::collection::vec(any::<u8>(), 0..256), |bytes| {
            if let Ok(p) = parse(&bytes[..]) {
                prop_assert!(p.l4_offset <= bytes.len());
                prop_assert!(p.l3_offset <= p.l4_offset);
                // The deny list's early look agrees with the full parse on every valid IP frame.
                if matches!(p.l3, L3::Ipv4 | L3::Ipv6) {
                    prop_assert_eq!(source_of(&bytes[..]), Some((p.l3, p.src)));
                }
                if let Some(q) = parse_quoted(&bytes[..], &p) {
                    prop_assert!(q.l4_offset + 8 <= bytes.len());
                }
            }
            Ok(())
        })
        .expect("parser property");
    // Random bytes rarely reach deep headers; mutating valid frames does.
    let base = Frame::tcp4([192, 0, 2, 100], 1, [192, 0, 2, 10], 80).payload(b"hello").build();
    runner(20_000)
        .run(&(0..base.len(), any::<u8>(), 0..=base.len()), |(at, byte, len)| {
            let mut f = base.clone();
            f[at] = byte;
            f.truncate(len);
            if let Ok(p) = parse(&f[..]) {
                prop_assert!(p.l4_offset <= f.len());
            }
            Ok(())
        })
        .expect("mutated-frame property");
}

fn built_frames() {
    let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>(), any::<u16>(), any::<u8>(), 0u8..3);
    runner(5_000)
        .run(&v4, |(src, dst, sport, dport, flags, vlans)| {
            let mut f = Frame::tcp4(src, sport, dst, dport).flags(flags);
            for v in 0..vlans {
                f = f.vlan(100 + u16::from(v));
            }
            let frame = f.build();
            let p = parse(&frame[..]).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(source_of(&frame[..]), Some((L3::Ipv4, p.src)));
            prop_assert_eq!(p.l3, L3::Ipv4);
            prop_assert_eq!(p.vlans, vlans);
            prop_assert_eq!(p.src[0].to_ne_bytes(), src);
            prop_assert_eq!(p.dst[0].to_ne_bytes(), dst);
            prop_assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (sport, dport, flags));
            Ok(())
        })
        .expect("IPv4 fields");
    let v6 = (any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>(), 0usize..4);
    runner(5_000)
        .run(&v6, |(src, dst, sport, dport, exts)| {
            let (s, d) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut f = Frame::udp6(s, sport, d, dport).payload(b"x");
            for _ in 0..exts {
                f = f.ext_header(foobar_common::parse::IPPROTO_DSTOPTS);
            }
            let p = parse(&f.build()[..]).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(p.l3, L3::Ipv6);
            prop_assert_eq!(p.fragment, Fragment::None);
            prop_assert_eq!(p.protocol, 17);
            prop_assert_eq!(p.l4_offset, 14 + 40 + 8 * exts);
            prop_assert_eq!((p.src_port, p.dst_port), (sport, dport));
            prop_assert_eq!(p.src.iter().flat_map(|w| w.to_ne_bytes()).collect::<Vec<_>>(), s.octets().to_vec());
            Ok(())
        })
        .expect("IPv6 fields");
}

/// A frame cut anywhere inside its headers is refused, whether or not the IP length was
/// rewritten to match the cut.
fn truncations() {
    let frames = [
        Frame::tcp4([192, 0, 2, 1], 1, [192, 0, 2, 10], 80).flags(TcpFlags::SYN).build(),
        Frame::udp4([192, 0, 2, 1], 1, [192, 0, 2, 53], 53).vlan(7).build(),
        Frame::ping4([192, 0, 2, 1], [192, 0, 2, 10]).build(),
        Frame::tcp6("2001:db8:1::64".parse().expect("v6"), 1, "2001:db8:1::a".parse().expect("v6"), 443)
            .ext_header(0)
            .build(),
    ];
    for f in frames {
        for len in 0..f.len() {
            assert!(parse(&f[..len]).is_err(), "accepted {f:02x?} cut to {len}");
            if len > 14 + 40 {
                let short = truncate_consistently(&f, len);
                assert!(parse(&short[..]).is_err(), "accepted consistently cut {short:02x?}");
            }
        }
    }
}

/// An ICMP error quoting a sent TCP or UDP packet yields that packet's addresses and ports;
/// cut anywhere inside the quote, it yields nothing rather than a misread.
fn quoted_flows() {
    let strategy = (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>(), any::<u16>(), any::<bool>());
    runner(5_000)
        .run(&strategy, |(src, dst, sport, dport, udp)| {
            let sent =
                if udp { Frame::udp4(src, sport, dst, dport) } else { Frame::tcp4(src, sport, dst, dport) }.build();
            let error = Frame {
                transport: Transport::Icmp { kind: 3, code: 4, rest: [0, 0, 5, 0x78] },
                ..Frame::ping4([192, 0, 2, 1], src)
            }
            .payload(&sent[14..14 + 28])
            .build();
            let p = parse(&error[..]).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let q = parse_quoted(&error[..], &p).ok_or_else(|| TestCaseError::fail("no quoted packet"))?;
            prop_assert_eq!(q.src[0].to_ne_bytes(), src);
            prop_assert_eq!(q.dst[0].to_ne_bytes(), dst);
            prop_assert_eq!((q.sport, q.dport, q.protocol), (sport, dport, if udp { 17 } else { 6 }));
            for cut in 14 + 20 + 8..error.len() {
                let short = truncate_consistently(&error, cut);
                if let Ok(p) = parse(&short[..]) {
                    prop_assert!(parse_quoted(&short[..], &p).is_none(), "quote cut at {} still parsed", cut);
                }
            }
            Ok(())
        })
        .expect("quoted flows");
    // Echo requests and replies quote nothing.
    let ping = Frame::ping4([192, 0, 2, 1], [192, 0, 2, 10]).payload(&[0x45; 28]).build();
    let p = parse(&ping[..]).expect("ping parses");
    assert!(parse_quoted(&ping[..], &p).is_none());
}
