//! foobar's DNS in the lab, as resolvers and attackers use it: authoritative answers that
//! follow health, truncation, junk, response rate limiting with slip, and DNS over TCP under
//! a connection flood.

use std::{
    io::Write,
    net::{TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use foobar::{
    cli::status::render,
    control::protocol::{BackendAction, Request, Response, StatusReport},
};
use foobar_tests::{
    daemon::{DaemonProcess, RunningDaemon, assert_metrics, lab_config, socket_path},
    gate::Need,
    netns::{Entry, Netns},
    nginx,
    topology::*,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("dns_lab::answers_authoritatively_and_follows_health", &[Need::Root, Need::Bpf], dns),
        gated("dns_lab::truncates_survives_junk_and_limits_floods", &[Need::Root, Need::Bpf], dns_abuse),
        gated("dns_lab::a_resolver_in_a_flooded_prefix_still_resolves", &[Need::Root, Need::Bpf], rrl_flood),
        gated("dns_lab::held_tcp_connections_starve_nothing", &[Need::Root, Need::Bpf], tcp_flood),
        gated("dns_lab::xdp_answers_as_the_server_does", &[Need::Root, Need::Bpf], xdp_alike),
        gated(
            "dns_lab::xdp_answers_stop_with_the_daemon_and_resume_after_a_restart",
            &[Need::Root, Need::Bpf],
            xdp_restart,
        ),
    ]
}

/// `dig @192.0.2.53 ARGS` from the client (one try, two seconds).
pub fn dig(client: &Netns, args: &[&str]) -> String {
    let mut cmd = vec!["dig", "@192.0.2.53", "+time=2", "+tries=1"];
    cmd.extend_from_slice(args);
    client.exec(&cmd)
}

fn dns() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);

    let www = dig(&stack.client, &["www.foobar.com", "A"]);
    assert!(www.contains("flags: qr aa") && www.contains("status: NOERROR"), "{www}");
    assert!(www.contains("www.foobar.com.\t\t30\tIN\tA\t192.0.2.10"), "{www}");
    assert_eq!(dig(&stack.client, &["+short", "+tcp", "www.foobar.com"]).trim(), VIP, "DNS over TCP");
    let nx = dig(&stack.client, &["nothere.foobar.com", "A"]);
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("AUTHORITY: 1") && nx.contains("SOA"), "{nx}");
    let nodata = dig(&stack.client, &["www.foobar.com", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0") && nodata.contains("AUTHORITY: 1"),
        "{nodata}"
    );
    let axfr = dig(&stack.client, &["foobar.com", "AXFR"]);
    assert!(
        axfr.contains("Transfer failed") && !axfr.contains("www.foobar.com.\t"),
        "AXFR answered by default: {axfr}"
    );
    let refused = dig(&stack.client, &["www.example.org", "A"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    assert!(!refused.contains(" ra"), "recursion offered: {refused}");

    // The SOA serial is the config's: status shows it, and health does not move it (so nodes
    // with one config agree while their health checks see things a moment apart).
    let serial = || dig(&stack.client, &["+short", "foobar.com", "SOA"]).split_whitespace().nth(2).map(str::to_owned);
    let before = serial().expect("an SOA");
    let reported = daemon.status().dns.expect("dns status").serial;
    assert_eq!(before, reported.to_string(), "the SOA and status disagree");
    assert_metrics(&stack.node, &[&format!("foobar_dns_soa_serial {before}\n")]);

    // No web backend available: www has no address, so the name is gone (NXDOMAIN, cached
    // for the zone's TTL) until a backend comes back.
    for b in ["web1", "web2"] {
        let r = Request::Backend { service: "www".into(), backend: b.into(), action: BackendAction::Disable };
        assert!(matches!(daemon.request(r), Response::Done { .. }));
    }
    daemon.wait_for(Duration::from_secs(2), "DNS answering for nothing", |r| {
        r.dns.as_ref().is_some_and(|d| d.answering.is_empty())
    });
    let gone = dig(&stack.client, &["www.foobar.com", "A"]);
    assert!(gone.contains("status: NXDOMAIN") && gone.contains("flags: qr aa"), "{gone}");
    assert_eq!(serial().as_deref(), Some(before.as_str()), "health moved the SOA serial");
    let r = Request::Backend { service: "www".into(), backend: "web2".into(), action: BackendAction::Enable };
    assert!(matches!(daemon.request(r), Response::Done { .. }));
    daemon.wait_for(Duration::from_secs(2), "DNS answering for www", |r| {
        r.dns.as_ref().is_some_and(|d| d.answering == ["www"])
    });
    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP);
    let text = render(&daemon.status());
    assert!(text.contains("dns foobar.com.") && text.contains("answering for: www"), "{text}");
}

/// `query` sent from inside `ns` to `to`, and the one datagram that answers it (empty if none
/// came within two seconds).
fn ask(ns: &Netns, to: &str, query: &[u8]) -> Vec<u8> {
    let _inside = ns.enter();
    let sock = UdpSocket::bind(if to.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" }).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    sock.send_to(query, to).expect("send");
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf).map(|n| buf[..n].to_vec()).unwrap_or_default()
}

/// A query for `name` (dotted, any case) and `qtype` with RD, and an EDNS OPT offering `edns`.
fn raw_query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

/// Every name of the zone, every type asked, with and without EDNS, over IPv4 and IPv6: the
/// answer XDP gives a client is the one the server gives a query from the node itself (which
/// never meets XDP, and which the server answers from the same rendering: a unit test holds
/// that to the catalog's answers), byte for byte. A name in another case is answered with its case kept;
/// what XDP does not answer (DNSSEC's DO bit) reaches the server; and the answers still
/// follow health.
fn xdp_alike() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let extra = "[[dns.record]]\nname = \"web\"\ntype = \"CNAME\"\nvalue = \"www\"\n\n\
                 [[dns.record]]\nname = \"@\"\ntype = \"MX\"\nvalue = \"10 mail\"\n\n\
                 [[dns.record]]\nname = \"mail\"\ntype = \"AAAA\"\nvalue = \"2001:db8:1::25\"\n\n\
                 [[dns.record]]\nname = \"@\"\ntype = \"TXT\"\nvalue = \"v=spf1 -all\"\n\n\
                 [[firewall.allow]]\nproto = \"udp\"\nto = \"2001:db8:1::53\"\nports = [53]\n\n[replication]";
    // RRL off: hundreds of NXDOMAIN answers to one /24 in a second are what it limits (as
    // `dns_abuse` shows, in XDP too); here every answer must come.
    let text = LAB_CONFIG
        .replacen("ttl = 30\n", "ttl = 30\nresponses_per_second = 0\n", 1)
        .replacen(r#"listen = ["192.0.2.53:53"]"#, r#"listen = ["192.0.2.53:53", "[2001:db8:1::53]:53"]"#, 1)
        .replacen("[replication]", extra, 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    let xdp_answered = || daemon.status().dns.map_or(0, |d| d.answered_in_xdp);
    // The zone's names, then names it does not own: NXDOMAIN from one template, its pointers
    // moved by names of odd and even lengths.
    let names = [
        "foobar.com",
        "www.foobar.com",
        "ns1.foobar.com",
        "web.foobar.com",
        "mail.foobar.com",
        "db-write.foobar.com",
        "db-read.foobar.com",
        "nothere.foobar.com",
        "a.b.foobar.com",
        "x.www.foobar.com",
        "even.foobar.com",
    ];
    // A, NS, CNAME, SOA, MX, TXT, AAAA, HTTPS, and SPF, which is not rendered: an owned
    // name asked it gets the server's NODATA, not the template's NXDOMAIN.
    let types = [1u16, 2, 5, 6, 15, 16, 28, 65, 99];
    let owned = 7;
    let rendered_answered = || daemon.status().dns.map_or(0, |d| d.answered_rendered);
    let (before, rendered_before) = (xdp_answered(), rendered_answered());
    let mut asked = 0;
    for to in ["192.0.2.53:53", "[2001:db8:1::53]:53"] {
        for name in names {
            for qtype in types {
                // No OPT, and OPTs offering less than 512 (answered as 512), the common 1232, the most.
                for edns in [None, Some(100), Some(1232), Some(65535)] {
                    let q = raw_query(0x4000 + asked, name, qtype, edns);
                    let from_xdp = ask(&stack.client, to, &q);
                    let from_server = ask(&stack.node, to, &q);
                    assert!(!from_server.is_empty(), "{name} {qtype} {edns:?} at {to}: no answer from the server");
                    assert_eq!(from_xdp, from_server, "{name} type {qtype} EDNS {edns:?} at {to}");
                    asked += 1;
                }
            }
        }
    }
    let answered = xdp_answered() - before;
    let rendered = rendered_answered() - rendered_before;
    eprintln!(
        "{asked} questions: {answered} answered in XDP, {rendered} by the server from the same \
         rendering, every answer the server's byte for byte"
    );
    let unrendered = 2 * owned * 4;
    assert_eq!(answered, u64::from(asked) - unrendered, "some questions were not answered in XDP");
    assert_eq!(rendered, answered, "the server's own answers did not come from the rendering");

    // The case of the question is kept; the records are the lowercase question's.
    let mixed = ask(&stack.client, "192.0.2.53:53", &raw_query(7, "WwW.FooBar.CoM", 1, None));
    let lower = ask(&stack.node, "192.0.2.53:53", &raw_query(7, "www.foobar.com", 1, None));
    assert_eq!(&mixed[12..32], b"\x03WwW\x06FooBar\x03CoM\x00\x00\x01\x00\x01", "{mixed:?}");
    assert_eq!((&mixed[..12], &mixed[32..]), (&lower[..12], &lower[32..]), "mixed case answered otherwise");
    // DNSSEC's DO bit: the server's to answer.
    let passed = |r: &StatusReport| r.counters.iter().find(|(c, _)| c == "dns_xdp_passed").map_or(0, |(_, v)| *v);
    let passed_before = passed(&daemon.status());
    let dnssec = dig(&stack.client, &["+dnssec", "www.foobar.com", "A"]);
    assert!(dnssec.contains("status: NOERROR") && dnssec.contains("IN\tA\t192.0.2.10"), "{dnssec}");
    assert_eq!(passed(&daemon.status()), passed_before + 1, "the DO query was not passed on");

    // Health: with web1 out, www is NXDOMAIN from XDP too, at once.
    let r = Request::Backend { service: "www".into(), backend: "web1".into(), action: BackendAction::Disable };
    assert!(matches!(daemon.request(r), Response::Done { .. }));
    daemon.wait_for(Duration::from_secs(2), "DNS answering for nothing", |r| {
        r.dns.as_ref().is_some_and(|d| d.answering.is_empty())
    });
    let started = Instant::now();
    let gone = loop {
        let a = ask(&stack.client, "192.0.2.53:53", &raw_query(9, "www.foobar.com", 1, None));
        if a.len() > 4 && a[3] & 0xf == 3 || started.elapsed() > Duration::from_secs(2) {
            break a;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(gone.get(3).map(|f| f & 0xf), Some(3), "www still answered after web1 left: {gone:?}");
    eprintln!("www NXDOMAIN in XDP {:?} after status said so", started.elapsed());
    assert_metrics(&stack.node, &["foobar_dns_answered_in_xdp_total"]);
}

/// foobar started as a daemon is (`nsenter --net`, the host's bpffs), stopped with its data
/// plane kept, and started again: XDP answers while a daemon runs, answers nothing from a frozen
/// zone while none does, and answers again from the new daemon's zone.
fn xdp_restart() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let config = stack.node.scratch("foobar-restart.toml");
    let query = raw_query(0x5151, "www.foobar.com", 1, None);
    let answered_in_xdp = |daemon: &DaemonProcess| {
        let socket = socket_path(&stack.node);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() || foobar::control::client::request(&socket, &Request::Status).is_err() {
            assert!(Instant::now() < deadline, "no control socket:\n{}", daemon.logged());
            std::thread::sleep(Duration::from_millis(50));
        }
        let answer = ask(&stack.client, "192.0.2.53:53", &query);
        assert!(answer.len() > 12 && answer[3] & 0xf == 0, "www A unanswered: {answer:?}\n{}", daemon.logged());
        daemon.status(&socket).dns.map_or(0, |d| d.answered_in_xdp)
    };
    std::fs::write(&config, lab_config(&stack.node, LAB_CONFIG, false)).expect("write config");
    let first = DaemonProcess::start(&stack.node, Entry::Nsenter, &config, "first");
    assert!(answered_in_xdp(&first) >= 1, "the first daemon's answer did not come from XDP");
    drop(first);
    // No daemon: the kept data plane forwards, but no DNS answer comes (the step's program
    // array died with the daemon's hold on it).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ask(&stack.client, "192.0.2.53:53", &query), Vec::<u8>::new(), "answered with no daemon running");
    std::fs::write(&config, lab_config(&stack.node, LAB_CONFIG, true)).expect("write config");
    let second = DaemonProcess::start(&stack.node, Entry::Nsenter, &config, "second");
    let after = answered_in_xdp(&second);
    assert!(after >= 1, "the restarted daemon's answer did not come from XDP: {}", second.logged());
    eprintln!("answered in XDP before the stop and after the restart ({after} counted since the pins were made)");
}

/// A DNS query for `name` type A, as a client library would send it.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn dns_abuse() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let big = "x".repeat(1500);
    let text =
        LAB_CONFIG.replacen("ttl = 30\n", "ttl = 30\nresponses_per_second = 20\nallow_axfr = true\n", 1).replacen(
            "[replication]",
            &format!("[[dns.record]]\nname = \"big\"\ntype = \"TXT\"\nvalue = \"{big}\"\n\n[replication]"),
            1,
        );
    let daemon = RunningDaemon::start(&stack.node, &text);

    // Too big for a 512-byte UDP answer: truncated (TC); dig's automatic retry over TCP gets it all.
    let udp = dig(&stack.client, &["+ignore", "+bufsize=512", "big.foobar.com", "TXT"]);
    assert!(udp.contains(" tc") && udp.contains("ANSWER: 0"), "{udp}");
    let full = dig(&stack.client, &["big.foobar.com", "TXT"]);
    assert!(full.contains("ANSWER: 1") && full.matches('x').count() >= 1500, "{full}");
    // Zone transfers, allowed in this config, list the zone (over TCP).
    let axfr = dig(&stack.client, &["foobar.com", "AXFR"]);
    assert!(axfr.contains("www.foobar.com.") && axfr.contains("ns1.foobar.com.") && axfr.contains("SOA"), "{axfr}");

    // Junk: random bytes, a bare header, a name that points at itself. The server stays up.
    let junk: Vec<Vec<u8>> = vec![
        (0u8..=255).map(|b| b.wrapping_mul(37)).collect(),
        vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0],
        vec![0x12, 0x35, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1],
        vec![0xff; 3],
    ];
    {
        let _inside = stack.client.enter();
        let sock = std::net::UdpSocket::bind("192.0.2.100:0").expect("bind");
        for _ in 0..25 {
            for j in &junk {
                let _ = sock.send_to(j, "192.0.2.53:53");
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP, "junk hurt the server");

    // A flood of 200 queries for www from one /24 at 20/s: over the limit every second answer
    // (slip 2) goes out empty and truncated, the others are dropped.
    let before = daemon.status().dns.expect("dns");
    let (full, truncated) = {
        let _inside = stack.client.enter();
        let sock = UdpSocket::bind("192.0.2.100:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        for id in 0..200u16 {
            let _ = sock.send_to(&dns_query(id, "www.foobar.com"), "192.0.2.53:53");
        }
        let (mut full, mut truncated, mut buf) = (0, 0, [0u8; 512]);
        while let Ok(n) = sock.recv(&mut buf) {
            if n >= 12 && buf[2] & 0x02 != 0 { truncated += 1 } else { full += 1 }
        }
        (full, truncated)
    };
    let after = daemon.status().dns.expect("dns");
    eprintln!("200 queries at 20/s: {full} answered, {truncated} truncated, status {after:?}");
    assert!(full <= 40 && (70..=100).contains(&truncated), "{full} answered, {truncated} truncated");
    assert!(after.rate_limited >= before.rate_limited + 150 && after.slipped >= before.slipped + 70, "{after:?}");
    // Another answer to the same /24 has a bucket of its own.
    assert!(dig(&stack.client, &["ns1.foobar.com", "A"]).contains("status: NOERROR"), "ns1 was limited with www");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP, "the limit did not recover");
    let metrics = stack.node.exec(&["curl", "-sS", "--max-time", "3", "http://127.0.0.1:9469/metrics"]);
    assert!(
        metrics.contains("foobar_dns_rate_limited_total")
            && metrics.contains("foobar_dns_slipped_total")
            && metrics.contains("foobar_dns_responses_total{rcode=\"NOERROR\"}")
    );
}

/// 500 queries a second for www from the resolver's own /24 (the limit is 20), spread evenly
/// so they take every answer the limit allows: the resolver still resolves www, by retrying
/// over TCP when its answer comes back truncated.
fn rrl_flood() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let text = LAB_CONFIG.replacen("ttl = 30\n", "ttl = 30\nresponses_per_second = 20\n", 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let (client, flooding) = (stack.client.clone(), flooding.clone());
        std::thread::spawn(move || {
            let _inside = client.enter();
            let sock = UdpSocket::bind("192.0.2.100:0").expect("bind");
            let started = Instant::now();
            let mut id = 0u16;
            // Bounded: stops when told or after 20 s.
            while flooding.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                for _ in 0..5 {
                    id = id.wrapping_add(1);
                    let _ = sock.send_to(&dns_query(id, "www.foobar.com"), "192.0.2.53:53");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = daemon.status().dns.expect("dns");
    // A resolver's patience: up to eight tries of a second each.
    let www = stack.client.exec(&["dig", "@192.0.2.53", "+time=1", "+tries=8", "www.foobar.com"]);
    let after = daemon.status().dns.expect("dns");
    flooding.store(false, Ordering::Relaxed);
    flood.join().expect("flood thread");
    eprintln!("during the flood: dig said {www:?}; {after:?}");
    // Its tries share the prefix's budget with the flood: one may get a truncated answer (and
    // retry over TCP), or an answer the limit let through; either way it resolves.
    assert!(www.contains(&format!("IN\tA\t{VIP}")), "the resolver was silenced: {www}");
    assert!(after.rate_limited > before.rate_limited && after.slipped > before.slipped, "{before:?} {after:?}");
}

/// 2,000 TCP connections held open to port 53, each asking again every second, against a
/// daemon started with the soft open-file limit systemd gives services (1024): DNS over TCP
/// takes its `tcp_connections` and closes the rest, and UDP DNS, `foobar status`, `/metrics`
/// and the health checks go on working.
fn tcp_flood() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let config = stack.node.scratch("tcp-flood.toml");
    std::fs::write(&config, lab_config(&stack.node, LAB_CONFIG, true)).expect("write config");
    let prlimit = ["prlimit", "--nofile=1024:", "--"];
    let daemon = DaemonProcess::start_under(&stack.node, Entry::Nsenter, &prlimit, &config, "tcp-flood");
    daemon.wait_for_log("serving", Duration::from_secs(15));
    assert!(daemon.logged().contains("raised the open-file limit"), "{}", daemon.logged());
    let socket = socket_path(&stack.node);
    let status = || daemon.status(&socket);
    let all_up = |r: &StatusReport| {
        r.services[0]
            .backends
            .iter()
            .all(|b| b.state == "up" && b.health.as_ref().is_some_and(|h| h.last == "HTTP 200"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all_up(&status()) {
        assert!(Instant::now() < deadline, "backends not up: {:#?}", status());
        std::thread::sleep(Duration::from_millis(100));
    }

    let dns: std::net::SocketAddr = "192.0.2.53:53".parse().expect("addr");
    let mut held: Vec<TcpStream> = {
        let _inside = stack.client.enter();
        (0..2000).filter_map(|_| TcpStream::connect_timeout(&dns, Duration::from_millis(500)).ok()).collect()
    };
    eprintln!("{} connections opened", held.len());
    let started = Instant::now();
    // Six seconds of asking on every connection once a second: longer than the idle timeout
    // (5 s) and than the health checks' fall (3 × 500 ms).
    let mut id = 0u16;
    while started.elapsed() < Duration::from_secs(6) {
        for c in &mut held {
            id = id.wrapping_add(1);
            let q = dns_query(id, "www.foobar.com");
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            let _ = c.set_nonblocking(true).and_then(|()| c.write(&framed));
        }
        let report = status();
        let d = report.dns.as_ref().expect("dns");
        assert!(d.tcp_open <= 100, "{d:?}");
        assert!(all_up(&report), "a backend went down under the TCP flood: {report:#?}");
        assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP, "UDP DNS");
        assert_metrics(&stack.node, &["foobar_dns_tcp_connections "]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let report = status();
    let d = report.dns.as_ref().expect("dns");
    eprintln!("after 6 s: {d:?}");
    assert!(d.tcp_refused >= 1000, "{d:?}");
    drop(held);
    // Once the flood lets go, TCP answers again.
    let deadline = Instant::now() + Duration::from_secs(3);
    while dig(&stack.client, &["+short", "+tcp", "www.foobar.com"]).trim() != VIP {
        assert!(Instant::now() < deadline, "DNS over TCP did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}
