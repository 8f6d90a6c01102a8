//! Health checks against backends that are not simply up or down: one that answers a
//! status line that is not HTTP, one that serves only the right virtual host, and web
//! servers that serve only HTTPS on 443.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use foobar::control::protocol::StatusReport;
use foobar_tests::{
    daemon::RunningDaemon, gate::Need, http::answered as answered_once, netns::Netns, nginx, tls::LabCa, topology::*,
    wrk,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("health_lab::status_lines_are_read_strictly_and_the_host_is_sent", &[Need::Root, Need::Bpf], http),
        gated("health_lab::https_checks_on_a_port_of_their_own", &[Need::Root, Need::Bpf], https),
        gated(
            "health_lab::icmp_unreachables_from_a_udp_backend_count_against_it",
            &[Need::Root, Need::Bpf],
            unreachable,
        ),
        gated(
            "health_lab::a_backend_resetting_every_other_request_leaves_by_passive_health",
            &[Need::Root, Need::Bpf],
            passive,
        ),
        gated("health_lab::a_backend_dropping_syns_leaves_by_passive_health", &[Need::Root, Need::Bpf], syn_timeouts),
    ]
}

/// A backend's state and its last check, as `status` shows them.
fn backend(r: &StatusReport, name: &str) -> (String, String) {
    let b = r.services[0].backends.iter().find(|b| b.name == name).expect("backend");
    (b.state.clone(), b.health.as_ref().map(|h| h.last.clone()).unwrap_or_default())
}

/// Something on port 80 of `ns` that answers every request `FOO 200 OK` (or, `flaky`, serves
/// `/health` and resets every other request); stops on drop.
struct NotHttp {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NotHttp {
    fn start(ns: &Netns) -> NotHttp {
        NotHttp::serve(ns, false)
    }

    fn serve(ns: &Netns, flaky: bool) -> NotHttp {
        let listener = {
            let _inside = ns.enter();
            TcpListener::bind("0.0.0.0:80").expect("bind port 80")
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut served = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) if flaky => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut request = [0u8; 1024];
                        let n = c.read(&mut request).unwrap_or(0);
                        let check = request[..n].windows(19).any(|w| w == b"foobar-health-check");
                        served += u64::from(!check);
                        if check || served.is_multiple_of(2) {
                            let _ =
                                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nweb1\n");
                        } else {
                            reset(c);
                        }
                    }
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = c.read(&mut [0u8; 1024]);
                        let _ = c.write_all(b"FOO 200 OK\r\nContent-Length: 0\r\n\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        NotHttp { stop, thread: Some(thread) }
    }
}

/// Closes `c` with a RST (SO_LINGER with a zero timeout), as a server that fails mid-request.
fn reset(c: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads `linger` for its size on a socket `c` owns.
    unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Drop for NotHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn http() {
    let stack = Stack::build();
    // web1 says "200" where no HTTP server would; web2 serves www.foobar.com only (anything
    // else gets 421 Misdirected Request, as a virtual-hosting nginx is set up).
    let _web1 = NotHttp::start(&stack.web1);
    let vhosts = "server {\n    listen 80 default_server;\n    location / { return 421; }\n  }\n\
                  server {\n    listen 80;\n    server_name www.foobar.com;\n    location / { return 200 \"web2\\n\"; }\n  }\n";
    let _web2 = nginx::start_servers(&stack.web2, "web2", vhosts, &[80]);
    let text = LAB_CONFIG.replacen("path = \"/\"\n", "path = \"/\"\nhost = \"www.foobar.com\"\n", 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(3), "web2 up, web1 down", |r| {
        backend(r, "web2") == ("up".into(), "HTTP 200".into()) && backend(r, "web1").0 == "down"
    });
    let (_, why) = backend(&daemon.status(), "web1");
    assert!(why.contains("no HTTP status line") && why.contains("FOO 200"), "{why}");
    // Without the Host header web2 is misdirected: the status is judged, not just read.
    let daemon = {
        drop(daemon);
        RunningDaemon::start(&stack.node, LAB_CONFIG)
    };
    daemon.wait_for(Duration::from_secs(3), "web2 down without its Host", |r| backend(r, "web2").0 == "down");
    let (_, why) = backend(&daemon.status(), "web2");
    assert!(why.contains("HTTP 421, expected 200"), "{why}");
}

fn https() {
    let stack = Stack::build();
    let ca = LabCa::create(&stack.node.scratch("tls"));
    let tls_only = |name: &str| {
        format!(
            "server {{\n    listen 443 ssl;\n{}    location / {{ return 200 \"{name}\\n\"; }}\n  }}\n",
            nginx::certificate(&ca)
        )
    };
    let _web1 = nginx::start_servers(&stack.web1, "web1", &tls_only("web1"), &[443]);
    let _web2 = nginx::start_servers(&stack.web2, "web2", &tls_only("web2"), &[443]);
    let text = LAB_CONFIG.replacen("kind = \"http\"", "kind = \"https\"", 1).replacen(
        "expect_status = 200",
        "expect_status = \"2xx\"\nport = 443\nhost = \"www.foobar.com\"",
        1,
    );
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(3), "both up over HTTPS", |r| {
        ["web1", "web2"].iter().all(|b| backend(r, b) == ("up".into(), "HTTPS 200".into()))
    });
}

/// web1 passes its checks but resets every other request it serves: under wrk it
/// leaves rotation by passive health (`error_limit`) within a second or so, while its active
/// checks still pass; web2 then takes everything. It stays out for `ejection_time` though its
/// checks pass, comes back after, and the next ejection lasts twice as long.
fn passive() {
    let stack = Stack::build();
    let _web1 = NotHttp::serve(&stack.web1, true);
    let _web2 = nginx::start(&stack.web2, "web2");
    let text = LAB_CONFIG.replacen("fall = 3\n", "fall = 3\nerror_limit = 5\nejection_time = \"3s\"\n", 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    daemon.wait_for(Duration::from_secs(3), "both up by their checks", |r| {
        ["web1", "web2"].iter().all(|b| backend(r, b) == ("up".into(), "HTTP 200".into()))
    });
    let url = format!("http://{VIP}/");
    let load = wrk::Load::light(4, true);
    let running = wrk::start(&stack.client, &url, load);
    let took =
        daemon.wait_for(Duration::from_secs(4), "web1 out by passive health", |r| backend(r, "web1").0 == "down");
    let out_at = Instant::now();
    let report = daemon.status();
    let web1 = report.services[0].backends.iter().find(|b| b.name == "web1").cloned().expect("web1");
    assert!(took < Duration::from_millis(2500), "web1 left rotation only after {took:?}");
    assert!(web1.passive_resets >= 5, "{web1:?}");
    let note = web1.passive_note.clone().unwrap_or_default();
    assert!(
        note.contains("passive failures in a second (limit 5)") && note.ends_with("out for 3s (ejection 1)"),
        "{web1:?}"
    );
    assert_eq!(web1.health.as_ref().map(|h| h.last.as_str()), Some("HTTP 200"), "its active checks still pass");
    let shown = foobar::cli::status::render(&report);
    assert!(shown.contains("! web1: taken out by passive health: "), "{shown}");
    foobar_tests::daemon::assert_metrics(
        &stack.node,
        &["foobar_backend_passive_failures_total{service=\"www\",backend=\"web1\",kind=\"reset\"}"],
    );

    // Its checks pass every 500 ms (rise 2), yet it stays out for the ejection's 3 s: it does
    // not flap back in after a second, as it did when the checks alone decided.
    while out_at.elapsed() < Duration::from_millis(2700) {
        let (state, last) = backend(&daemon.status(), "web1");
        assert_eq!(
            (state.as_str(), last.as_str()),
            ("down", "HTTP 200"),
            "back {:?} after going out",
            out_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary = wrk::finish(running, load);
    eprintln!(
        "passive health: web1 out {took:?} into the load; {} resets before an answer, {} refused; wrk {} requests, {} failed; {note}",
        web1.passive_resets,
        web1.passive_refused,
        summary.requests,
        summary.failed(),
    );
    daemon.wait_for(Duration::from_secs(3), "web1 back after its ejection", |r| backend(r, "web1").0 == "up");
    eprintln!("passive health: web1 back {:?} after going out", out_at.elapsed());

    // Failing again soon after: out for twice as long.
    let running = wrk::start(&stack.client, &url, load);
    daemon.wait_for(Duration::from_secs(4), "web1 out again", |r| backend(r, "web1").0 == "down");
    let summary = wrk::finish(running, load);
    let web1 = daemon.status().services[0].backends.iter().find(|b| b.name == "web1").cloned().expect("web1");
    let note = web1.passive_note.clone().unwrap_or_default();
    eprintln!("second ejection: {note}; wrk {} requests, {} failed", summary.requests, summary.failed());
    assert!(note.ends_with("out for 6s (ejection 2)"), "{web1:?}");
}

/// A UDP service whose backend has nothing on the port: web1 answers each datagram with an
/// ICMP port unreachable to the node's NAT address, and XDP counts it against web1.
fn unreachable() {
    let stack = Stack::build();
    let text = format!(
        "{LAB_CONFIG}\n[[firewall.allow]]\nproto = \"udp\"\nto = \"{VIP}\"\nports = [9999]\n\n\
         [[service]]\nname = \"udp-test\"\nvip = \"{VIP}\"\nports = [9999]\nproto = \"udp\"\n\n\
         [[service.backend]]\nname = \"web1\"\naddress = \"{WEB1}\"\n"
    );
    let daemon = RunningDaemon::start(&stack.node, &text);
    let web1 = |r: &StatusReport| {
        let svc = r.services.iter().find(|s| s.name == "udp-test").expect("udp-test");
        svc.backends[0].clone()
    };
    for _ in 0..3 {
        stack.client.exec(&["bash", "-c", &format!("echo ping > /dev/udp/{VIP}/9999")]);
    }
    daemon.wait_for(Duration::from_secs(3), "an unreachable counted", |r| web1(r).passive_unreachable >= 1);
    let b = web1(&daemon.status());
    eprintln!("3 datagrams to a closed UDP port: {} ICMP unreachables counted against web1", b.passive_unreachable);
    assert_eq!((b.passive_refused, b.passive_resets), (0, 0), "{b:?}");
    foobar_tests::daemon::assert_metrics(
        &stack.node,
        &["foobar_backend_passive_failures_total{service=\"udp-test\",backend=\"web1\",kind=\"unreachable\"}"],
    );
}

/// web1 drops every SYN from the NAT ports (a full accept queue or a firewall would), while its
/// checks, from the node's ephemeral ports, pass. With the SYN proxy, the proxy says its SYN
/// again for each client that retries; without it (and in `dsr`, where the node never sees
/// the backend's answers), the client says its own again; each such retry counts against
/// web1, and passive health takes it out.
fn syn_timeouts() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let rules = stack.web1.scratch("drop-syns.nft");
    // NAT: the SYNs from the NAT ports; DSR: the client's own (the checks come from the
    // node's ephemeral ports either way).
    let drop_syns = |from: &str| {
        let text = format!(
            "flush ruleset\ntable inet drop_syns {{\n chain input {{\n  type filter hook input priority 0;\n  \
             tcp dport 80 {from} tcp flags & (syn | ack) == syn drop\n }}\n}}\n"
        );
        std::fs::write(&rules, text).expect("nft rules");
        stack.web1.exec(&["nft", "-f", rules.to_str().unwrap_or_default()]);
    };
    let limited = LAB_CONFIG.replacen("fall = 3\n", "fall = 3\nerror_limit = 5\n", 1);
    let unproxied = limited.replacen("# syn_proxy = \"always\"", "syn_proxy = \"off\"", 1);
    let dsr = limited.replacen(r#"mode = "nat""#, r#"mode = "dsr""#, 1);
    let nat_ports = "tcp sport 10240-32767";
    let client = format!("ip saddr {CLIENT}");
    for (proxy, text, from) in [
        ("nat, syn_proxy always", limited.clone(), nat_ports),
        ("nat, syn_proxy off", unproxied, nat_ports),
        ("dsr", dsr, client.as_str()),
    ] {
        drop_syns(from);
        let daemon = RunningDaemon::start(&stack.node, &text);
        daemon.wait_for(Duration::from_secs(3), "both up by their checks", |r| {
            ["web1", "web2"].iter().all(|b| backend(r, b) == ("up".into(), "HTTP 200".into()))
        });
        // Eight clients, each connecting again as soon as it is answered or refused (wrk would
        // not do: it first connects once, blocking, and waits out that connection's retries).
        let running = Clients::start(&stack.client, 8, Duration::from_secs(5));
        let took =
            daemon.wait_for(Duration::from_secs(5), "web1 out by passive health", |r| backend(r, "web1").0 == "down");
        let web1 = daemon.status().services[0].backends.iter().find(|b| b.name == "web1").cloned().expect("web1");
        let (answered, failed) = running.finish();
        eprintln!(
            "{proxy}: SYNs dropped by web1: out {took:?} into the load after {} timed-out handshakes; \
             {answered} requests answered, {failed} failed; {:?}",
            web1.passive_timeouts, web1.passive_note
        );
        assert!(web1.passive_timeouts >= 5, "{proxy}: {web1:?}");
        // The proxied clients left waiting on web1 were reset once it was out (on_down =
        // "reset") and came back through web2: the load went on (it stalled for good while
        // they waited).
        assert!(answered >= 100 && failed <= 16, "{proxy}: {answered} answered, {failed} failed");
        // Without the proxy the waiting clients are still connecting: their next SYN goes to
        // web2 as a new flow, and none of them sees an error.
        if !proxy.ends_with("always") {
            assert_eq!(failed, 0, "{proxy}: {answered} answered");
        }
        assert!(web1.passive_note.as_deref().is_some_and(|n| n.contains("timed out")), "{web1:?}");
        assert_eq!(web1.health.as_ref().map(|h| h.last.as_str()), Some("HTTP 200"), "its checks still pass");
        foobar_tests::daemon::assert_metrics(
            &stack.node,
            &["foobar_backend_passive_failures_total{service=\"www\",backend=\"web1\",kind=\"timeout\"}"],
        );
        // With web1 out, every new connection reaches web2.
        for _ in 0..6 {
            let out = stack.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("web2"), "{proxy}: {out:?}");
        }
        drop(daemon);
    }
}

/// Clients in `ns`, each on a thread: connect to the VIP (allowing 3 s, so a lost SYN is said
/// again), one request, close, again, until the time is up.
struct Clients {
    threads: Vec<JoinHandle<(u32, u32)>>,
}

impl Clients {
    fn start(ns: &Netns, n: usize, for_: Duration) -> Clients {
        let until = std::time::Instant::now() + for_;
        let threads = (0..n)
            .map(|_| {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    let _inside = ns.enter();
                    let addr: std::net::SocketAddr = format!("{VIP}:80").parse().expect("addr");
                    let (mut answered, mut failed) = (0, 0);
                    while std::time::Instant::now() < until {
                        // Past the client's SYN retries at 1, 3 and 7 s: a client left waiting
                        // on web1 fails only if its retry is never sent elsewhere.
                        if answered_once(addr, Duration::from_secs(8), Duration::from_secs(2)) {
                            answered += 1
                        } else {
                            failed += 1
                        }
                    }
                    (answered, failed)
                })
            })
            .collect();
        Clients { threads }
    }

    /// Requests answered and failed, over all clients.
    fn finish(self) -> (u32, u32) {
        self.threads.into_iter().map(|t| t.join().unwrap_or_default()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}
