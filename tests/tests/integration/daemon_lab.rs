//! The daemon as an operator lives with it, in the lab: health checks moving backends in and
//! out, and the control socket behind `foobar status`, `backend` and `firewall`.

use std::{path::Path, time::Duration};

use aya::maps::{HashMap, Map, MapData};
use foobar::{
    cli::status::render,
    control::{
        client,
        protocol::{BackendAction, Request, Response, StatusReport},
    },
};
use foobar_common::lb::{CONNTRACK_MAP, Flow, FlowKey};
use foobar_tests::table::{flow_key, live_flow};
use foobar_tests::{
    daemon::{RunningDaemon, assert_metrics, lab_config, pin_dir},
    gate::Need,
    http::KeepAlive,
    netns::Netns,
    nginx,
    topology::*,
    wrk,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated("daemon_lab::health_checks_take_a_dead_web_server_out_and_back", &[Need::Root, Need::Bpf], health),
        gated("daemon_lab::control_socket_steers_backends_and_firewall", &[Need::Root, Need::Bpf], control),
        gated("daemon_lab::cli_says_when_foobar_is_not_running", &[], not_running),
        gated("daemon_lab::reload_applies_differences_and_refuses_bad_files", &[Need::Root, Need::Bpf], reload),
        gated("daemon_lab::restart_under_load_fails_no_request", &[Need::Root, Need::Bpf], restart),
        gated("daemon_lab::a_hung_backend_costs_only_its_own_timeout", &[Need::Root, Need::Bpf], hung_backend),
        gated("daemon_lab::a_dead_backends_flows_are_reset_from_xdp", &[Need::Root, Need::Bpf], dead_backend),
        gated("daemon_lab::conntrack_timeouts_come_from_the_config_and_reloads", &[Need::Root, Need::Bpf], timeouts),
        gated(
            "daemon_lab::scrapes_with_a_million_flows_tracked_stall_nothing",
            &[Need::Root, Need::Bpf],
            scrapes_of_a_full_table,
        ),
    ]
}

fn fetch(client: &Netns) -> String {
    let out = client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("(no answer)").to_owned()
}

fn backend_state(r: &StatusReport, name: &str) -> String {
    r.services[0].backends.iter().find(|b| b.name == name).map(|b| b.state.clone()).unwrap_or_default()
}

fn health() {
    let stack = Stack::build();
    let web1 = nginx::start(&stack.web1, "web1");
    let web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    daemon.wait_for(Duration::from_secs(3), "first health checks", |r| {
        r.services[0].backends.iter().all(|b| b.health.as_ref().is_some_and(|h| h.last == "HTTP 200"))
    });

    // lab.toml: interval 500ms, timeout 300ms, fall 3, rise 2.
    drop(web1);
    let took = daemon.wait_for(Duration::from_secs(4), "web1 marked down", |r| backend_state(r, "web1") == "down");
    eprintln!("web1 marked down {took:?} after nginx stopped");
    for _ in 0..6 {
        assert_eq!(fetch(&stack.client), "web2", "a new connection went to the dead web1");
    }
    let report = daemon.status();
    let text = render(&report);
    assert!(text.contains("web1") && text.contains("down") && text.contains("connect:"), "{text}");

    // Both down: new connections are refused at once (curl exit 7), and status says why.
    drop(web2);
    daemon.wait_for(Duration::from_secs(4), "web2 marked down", |r| backend_state(r, "web2") == "down");
    let started = std::time::Instant::now();
    let out = stack.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    assert_eq!(out.status.code(), Some(7), "expected connection refused: {out:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "refusal took {:?}", started.elapsed());
    let report = daemon.status();
    assert!(report.services[0].note.as_deref().is_some_and(|n| n.contains("no backend is available")), "{report:?}");
    assert!(report.counters.iter().any(|(n, v)| n == "lb_refused_with_rst" && *v >= 1));

    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let took = daemon.wait_for(Duration::from_secs(3), "web1 back up", |r| backend_state(r, "web1") == "up");
    eprintln!("web1 back up {took:?} after nginx started");
    daemon.wait_for(Duration::from_secs(3), "web2 back up", |r| backend_state(r, "web2") == "up");
    let picks: Vec<String> = (0..4).map(|_| fetch(&stack.client)).collect();
    assert_eq!(picks.iter().filter(|p| *p == "web1").count(), 2, "round-robin did not resume: {picks:?}");
}

fn control() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);

    let disable = Request::Backend { service: "www".into(), backend: "web2".into(), action: BackendAction::Disable };
    assert!(matches!(daemon.request(disable), Response::Done { .. }));
    assert_eq!(backend_state(&daemon.status(), "web2"), "disabled");
    for _ in 0..4 {
        assert_eq!(fetch(&stack.client), "web1");
    }
    let enable = Request::Backend { service: "www".into(), backend: "web2".into(), action: BackendAction::Enable };
    assert!(matches!(daemon.request(enable), Response::Done { .. }));
    let wrong = Request::Backend { service: "www".into(), backend: "web9".into(), action: BackendAction::Drain };
    match daemon.request(wrong) {
        Response::Error { message } => assert_eq!(message, "service `www` has no backend `web9`"),
        other => panic!("{other:?}"),
    }

    // Block the client at run time: its next connection sees nothing; unblock: it works again.
    match daemon.request(Request::FirewallBlock { cidr: CLIENT.into() }) {
        // A cluster's operator learns that the other nodes keep their own deny lists.
        Response::Done { message } => assert!(message.contains("blocked on this node ("), "{message}"),
        other => panic!("{other:?}"),
    }
    match daemon.request(Request::FirewallList) {
        Response::Firewall { denied } => {
            let origin = |cidr: &str| denied.iter().find(|e| e.cidr == cidr).map(|e| e.origin.clone());
            assert_eq!(origin(&format!("{CLIENT}/32")).as_deref(), Some("operator"), "{denied:?}");
            assert_eq!(origin("192.0.2.66/32").as_deref(), Some("config"), "{denied:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fetch(&stack.client), "(no answer)", "a blocked client got an answer");
    assert!(matches!(daemon.request(Request::FirewallUnblock { cidr: CLIENT.into() }), Response::Done { .. }));
    assert!(fetch(&stack.client).starts_with("web"));
    match daemon.request(Request::FirewallBlock { cidr: "not-an-address".into() }) {
        Response::Error { message } => assert!(message.contains("foobar firewall block 203.0.113.7/32"), "{message}"),
        other => panic!("{other:?}"),
    }

    let report = daemon.status();
    // Four connections while web2 was disabled, one after the unblock; the blocked one made no flow.
    assert_eq!(report.services[0].new_flows, 5, "{report:?}");
    assert_eq!(report.firewall_rules[0].rule, "tcp to 192.0.2.10/32 ports 80,443");
    assert!(report.firewall_rules[0].hits > 0);
    assert!(report.counters.iter().any(|(name, v)| name == "firewall_denied_source" && *v > 0));

    // An open connection is one active flow, on its backend; the closed ones are not.
    let mut open = KeepAlive::open(&stack.client, format!("{VIP}:80").parse().expect("addr"));
    let holder = open.get("/").split_whitespace().next().unwrap_or_default().to_owned();
    // Counted off the event loop: the count follows within a census round.
    daemon.wait_for(Duration::from_secs(3), "one active flow, on its backend", |r| {
        r.services[0].active_flows == 1
            && r.services[0].backends.iter().any(|b| b.name == holder && b.active_flows == 1)
            && r.flow_census.as_ref().is_some_and(|c| c.age_s < 3.0)
    });
    drop(open);

    // Prometheus, on the node's loopback as lab.toml says.
    assert_metrics(
        &stack.node,
        &[
            "foobar_service_new_flows_total{service=\"www\"} 6",
            "foobar_service_available_backends{service=\"www\"} 2",
            "foobar_backend_active{service=\"www\",backend=\"web2\"} 1",
            "foobar_backend_state{service=\"www\",backend=\"web2\",state=\"up\"} 1",
            "foobar_backend_state{service=\"www\",backend=\"web2\",state=\"down\"} 0",
            "# TYPE foobar_health_check_duration_seconds histogram",
            "# TYPE foobar_xdp_firewall_denied_source_total counter",
            "foobar_xdp_malformed_truncated_udp_total 0",
            "foobar_build_info{version=\"",
            "foobar_config_last_reload_successful 1",
            "foobar_firewall_rule_hits_total{rule=\"0\",description=\"tcp to 192.0.2.10/32 ports 80,443\"}",
        ],
    );
    // Prometheus's own linter has nothing to say about the exposition.
    let scrape = stack.node.exec(&["curl", "-sS", "--max-time", "3", "http://127.0.0.1:9469/metrics"]);
    if let Err(said) = foobar_tests::prometheus::check_metrics(&scrape) {
        panic!("promtool check metrics:\n{said}");
    }
    let not_found =
        stack.node.exec(&["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9469/nothere"]);
    assert_eq!(not_found, "404");
}

fn not_running() {
    let err = client::request(Path::new("/nonexistent/foobar/control.sock"), &Request::Status).expect_err("no daemon");
    assert_eq!(
        err.to_string(),
        "foobar is not running (nothing listens on /nonexistent/foobar/control.sock); \
         start it with `sudo foobar run --config FILE`"
    );
}

fn reload_with(daemon: &RunningDaemon, text: &str) -> Response {
    std::fs::write(&daemon.config_file, text).expect("write config");
    daemon.request(Request::Reload)
}

fn reload() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let good = std::fs::read_to_string(&daemon.config_file).expect("config");
    let file = daemon.config_file.display().to_string();

    // A bad file changes nothing and says where it is wrong.
    let line = good.lines().position(|l| l.starts_with("syn_rate_per_source")).expect("syn_rate line") + 1;
    match reload_with(&daemon, &good.replacen("syn_rate_per_source = 200", "syn_rate_per_source = \"fast\"", 1)) {
        Response::Error { message } => {
            assert!(
                message.starts_with(&format!("{file}:{line}: firewall.syn_rate_per_source: invalid type")),
                "{message}"
            )
        }
        other => panic!("a bad config was accepted: {other:?}"),
    }
    assert!(fetch(&stack.client).starts_with("web"));
    // What needs a restart is refused, whole.
    match reload_with(&daemon, &good.replacen(r#"xdp_mode = "auto""#, r#"xdp_mode = "generic""#, 1)) {
        Response::Error { message } => {
            assert!(message.contains("daemon.xdp_mode changed, which needs a restart"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // The deny list follows the file.
    let blocked = good.replacen(
        r#"deny_sources = ["192.0.2.66/32"]"#,
        r#"deny_sources = ["192.0.2.66/32", "192.0.2.100/32"]"#,
        1,
    );
    match reload_with(&daemon, &blocked) {
        Response::Done { message } => assert!(message.ends_with("blocked 192.0.2.100/32"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fetch(&stack.client), "(no answer)");
    assert!(matches!(reload_with(&daemon, &good), Response::Done { .. }));
    assert!(fetch(&stack.client).starts_with("web"));

    // Taking web1 out of the service: new flows go to web2, an open connection to web1 goes on.
    let mut open = KeepAlive::open(&stack.client, format!("{VIP}:80").parse().expect("addr"));
    let mut holder = open.get("/");
    while !holder.starts_with("web1") {
        open = KeepAlive::open(&stack.client, format!("{VIP}:80").parse().expect("addr"));
        holder = open.get("/");
    }
    let without_web1 = good.replacen("[[service.backend]]\nname = \"web1\"\naddress = \"198.51.100.11\"\n", "", 1);
    assert_ne!(without_web1, good);
    match reload_with(&daemon, &without_web1) {
        Response::Done { message } => assert!(message.contains("service www"), "{message}"),
        other => panic!("{other:?}"),
    }
    for _ in 0..4 {
        assert_eq!(fetch(&stack.client), "web2");
    }
    assert!(open.get("/").starts_with("web1"), "the open connection lost web1 on reload");
    assert!(matches!(reload_with(&daemon, &good), Response::Done { .. }));
    let picks: Vec<String> = (0..4).map(|_| fetch(&stack.client)).collect();
    assert_eq!(picks.iter().filter(|p| *p == "web1").count(), 2, "{picks:?}");

    // A service added ahead of www: status names each service's own mode and scheduler.
    let alt = "[[service]]\nname = \"alt\"\nvip = \"192.0.2.10\"\nports = [8080]\nproto = \"tcp\"\n\
               mode = \"dsr\"\nscheduler = \"maglev\"\n\n[[service.backend]]\nname = \"web1\"\n\
               address = \"198.51.100.11\"\n\n[[service]]\nname = \"www\"";
    let reordered = good.replacen("[[service]]\nname = \"www\"", alt, 1);
    assert!(matches!(reload_with(&daemon, &reordered), Response::Done { .. }));
    let report = daemon.status();
    let shown = |name: &str| {
        let s = report.services.iter().find(|s| s.name == name).expect("service in status");
        (s.mode.clone(), s.scheduler.clone(), s.ports.clone())
    };
    assert_eq!(shown("www"), ("nat".into(), "round-robin".into(), vec![80, 443]), "{report:#?}");
    assert_eq!(shown("alt"), ("dsr".into(), "maglev".into(), vec![8080]), "{report:#?}");
}

fn restart() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let first = RunningDaemon::start_with(&stack.node, &lab_config(&stack.node, LAB_CONFIG, false));
    assert!(fetch(&stack.client).starts_with("web"));
    let before = first.status().counters;

    // New connections all through the restart: one request per connection, bounded to 5 s.
    let load = wrk::Load::light(5, true);
    let running = wrk::start(&stack.client, &format!("http://{VIP}/"), load);
    std::thread::sleep(Duration::from_millis(1500));
    drop(first);
    assert!(pin_dir(&stack.node).join("link-front").exists(), "the stopped daemon did not leave its link pinned");
    let second = RunningDaemon::start(&stack.node, LAB_CONFIG);
    // The links it took over report the mode the kernel runs them in.
    for i in second.status().interfaces {
        assert!(i.adopted && i.mode == "generic" && i.why.contains("kernel's report"), "{i:?}");
    }
    let summary = wrk::finish(running, load);
    eprintln!("{}", summary.text);
    let requests = summary.requests;
    // Enough one-request connections to span the restart; the rate depends on the load on the machine.
    assert!(requests > 200, "too few requests to prove anything: {requests}");
    assert_eq!(summary.failed(), 0, "requests failed across the restart");
    // The counters carried over: the second daemon took over the first one's pinned maps.
    let received = |c: &[(String, u64)]| c.iter().find(|(n, _)| n == "received").map_or(0, |(_, v)| *v);
    assert!(received(&second.status().counters) > received(&before) + requests);
    drop(second);
    assert!(!pin_dir(&stack.node).exists(), "detach-on-exit left pins behind");
    assert_eq!(xdp_on(&stack.node, "front"), "", "detach-on-exit left XDP attached");

    // A kept data plane forwards with no daemon at all, until `foobar cleanup` removes it.
    let kept = RunningDaemon::start_with(&stack.node, &lab_config(&stack.node, LAB_CONFIG, false));
    drop(kept);
    assert!(fetch(&stack.client).starts_with("web"), "the kept data plane stopped forwarding");
    assert!(xdp_on(&stack.node, "front").contains(" id "), "no XDP program left on front");
    let removed = foobar::dataplane::Pins::remove_all(&pin_dir(&stack.node)).expect("cleanup");
    assert!(removed >= 2, "cleanup found only {removed} pins");
    assert_eq!(xdp_on(&stack.node, "front"), "", "cleanup left XDP attached");
}

/// The XDP attachment bpftool reports on `dev` in `ns`, e.g. `front(2) generic id 42` ("" when none).
fn xdp_on(ns: &Netns, dev: &str) -> String {
    let out = ns.exec(&["bpftool", "net", "show", "dev", dev]);
    out.lines().skip_while(|l| !l.starts_with("xdp:")).nth(1).unwrap_or("").trim().to_owned()
}

fn hung_backend() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _hung = foobar_tests::hung::start(&stack.web2, 80);
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let checks = |r: &StatusReport, name: &str| {
        r.services[0].backends.iter().find(|b| b.name == name).and_then(|b| b.health.clone())
    };
    let took =
        daemon.wait_for(Duration::from_secs(4), "the hung web2 marked down", |r| backend_state(r, "web2") == "down");
    eprintln!("hung web2 marked down after {took:?}");
    let web2 = checks(&daemon.status(), "web2").expect("web2 checked");
    assert!(web2.last.starts_with("timed out after 300ms"), "{web2:?}");
    // Meanwhile web1's checks went on at their own pace, unaffected.
    let web1 = checks(&daemon.status(), "web1").expect("web1 checked");
    assert_eq!(web1.last, "HTTP 200");
    assert!(web1.latency_ms < 100.0, "web1's checks slowed down: {web1:?}");
    assert_eq!(backend_state(&daemon.status(), "web1"), "up");
    for _ in 0..4 {
        assert_eq!(fetch(&stack.client), "web1");
    }
}

/// A million flows in the connection table, and `wrk -c200` at /metrics for four seconds:
/// health checks keep their latency, `status` keeps answering promptly, and the flow counts
/// come from the census (counted off the event loop) with their age.
fn scrapes_of_a_full_table() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let daemon = RunningDaemon::start(&stack.node, LAB_CONFIG);
    let all_up = |r: &StatusReport| r.services[0].backends.iter().all(|b| b.state == "up");
    daemon.wait_for(Duration::from_secs(3), "both backends up", all_up);
    {
        let path = pin_dir(&stack.node).join(CONNTRACK_MAP);
        let mut table = Map::LruHashMap(MapData::from_pin(&path).expect("the pinned connection table"));
        let mut table: HashMap<&mut MapData, FlowKey, Flow> = HashMap::try_from(&mut table).expect("typed table");
        for n in 0..1_000_000u32 {
            table.insert(flow_key(n), live_flow(), 0).expect("insert a flow");
        }
    }
    let counted = |r: &StatusReport| r.services[0].active_flows >= 1_000_000;
    daemon.wait_for(Duration::from_secs(10), "the million flows counted", counted);
    let load = wrk::Load { seconds: 4, connections: 200, threads: 2, close: false };
    let run = wrk::start(&stack.node, "http://127.0.0.1:9469/metrics", load);
    let (mut slowest_status, mut slowest_check) = (Duration::ZERO, 0f64);
    let started = std::time::Instant::now();
    let mut census = None;
    while started.elapsed() < Duration::from_secs(4) {
        let asked = std::time::Instant::now();
        let r = daemon.status();
        slowest_status = slowest_status.max(asked.elapsed());
        for b in &r.services[0].backends {
            slowest_check = slowest_check.max(b.health.as_ref().map_or(0.0, |h| h.latency_ms));
        }
        assert!(all_up(&r), "a backend went down under the scrapes: {:#?}", r.services[0].backends);
        census = r.flow_census;
        std::thread::sleep(Duration::from_millis(100));
    }
    let summary = wrk::finish(run, load);
    eprintln!(
        "scrapes: {} ({:.0}/s); slowest status {slowest_status:?}, slowest check {slowest_check:.1} ms, census {census:?}",
        summary.requests, summary.per_second
    );
    assert!(summary.requests > 0, "no scrape was answered: {}", summary.text);
    assert!(slowest_status < Duration::from_millis(500), "status took {slowest_status:?}");
    assert!(slowest_check < 100.0, "a health check took {slowest_check} ms");
    assert_metrics(
        &stack.node,
        &["foobar_flow_census_age_seconds ", "foobar_service_active_flows{service=\"www\"} 10"],
    );
}

/// A backend's host vanishes (its link goes down: nothing answers, not even a RST). Once
/// its checks mark it down, a kept-alive client's next request gets a RST from XDP at once
/// (`on_down = "reset"`, the default) instead of retransmitting into nothing; with
/// `on_down = "keep"` it times out.
fn dead_backend() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    for (text, reset) in [
        (LAB_CONFIG.to_owned(), true),
        (LAB_CONFIG.replacen("[service.health]", "on_down = \"keep\"\n\n[service.health]", 1), false),
    ] {
        let daemon = RunningDaemon::start(&stack.node, &text);
        daemon.wait_for(Duration::from_secs(3), "both up", |r| r.services[0].backends.iter().all(|b| b.state == "up"));
        let mut open = KeepAlive::open(&stack.client, format!("{VIP}:80").parse().expect("addr"));
        let holder = open.get("/").split_whitespace().next().unwrap_or_default().to_owned();
        let host = if holder == "web1" { &stack.web1 } else { &stack.web2 };
        host.ip(&["link", "set", "eth0", "down"]);
        daemon.wait_for(Duration::from_secs(4), "the holder marked down", |r| backend_state(r, &holder) == "down");
        let asked = std::time::Instant::now();
        let answer = open.try_get("/");
        let took = asked.elapsed();
        eprintln!("on_down reset={reset}: the next request on {holder}'s connection: {answer:?} after {took:?}");
        if reset {
            let e = answer.expect_err("a reset");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            assert!(took < Duration::from_secs(1), "the reset took {took:?}");
            let r = daemon.status();
            assert!(r.counters.iter().any(|(n, v)| n == "lb_dead_backend_resets" && *v > 0), "{:?}", r.counters);
            // The client reconnects, to the live backend.
            assert!(fetch(&stack.client).starts_with("web"), "no live backend answered");
        } else {
            assert!(
                answer.is_err() && took >= Duration::from_secs(2),
                "kept flows wait out the dead host: {answer:?} {took:?}"
            );
        }
        host.ip(&["link", "set", "eth0", "up"]);
        // The web server's default route went with its link.
        let _ = host.output(&["ip", "route", "add", "default", "via", NODE_BACK]);
        daemon.wait_for(Duration::from_secs(5), "the holder up again", |r| backend_state(r, &holder) == "up");
    }
}

/// `[conntrack] tcp_idle`: an idle connection leaves the table (and the active-flow count)
/// after the configured time, not the default 15 minutes; a reload changes it for the flows
/// already in the table, both ways.
fn timeouts() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let text = format!("{LAB_CONFIG}\n[conntrack]\ntcp_idle = \"2s\"\n");
    let daemon = RunningDaemon::start(&stack.node, &text);
    let active = |r: &StatusReport| r.services[0].active_flows;
    // One connection, opened and then left idle.
    let idle = format!("exec 3<>/dev/tcp/{VIP}/80; sleep 14");
    let _held = stack.client.spawn(&["timeout", "16", "bash", "-c", &idle], &stack.client.scratch("idle.log"));
    daemon.wait_for(Duration::from_secs(3), "the idle connection tracked", |r| active(r) == 1);
    let gone = daemon.wait_for(Duration::from_secs(5), "the idle connection expired", |r| active(r) == 0);
    eprintln!("an idle connection left the active count {gone:?} after it was seen (tcp_idle 2s)");
    let retime = |from: &str, to: &str| {
        let running = std::fs::read_to_string(&daemon.config_file).expect("config");
        match reload_with(&daemon, &running.replacen(from, to, 1)) {
            Response::Done { message } => assert!(message.contains("conntrack settings"), "{message}"),
            other => panic!("reload: {other:?}"),
        }
    };
    // The table's own lines (lab.toml's comments show the keys too).
    retime("[conntrack]\ntcp_idle = \"2s\"", "[conntrack]\ntcp_idle = \"15m\"");
    daemon.wait_for(Duration::from_secs(3), "the connection live again under 15m", |r| active(r) == 1);
    retime("[conntrack]\ntcp_idle = \"15m\"", "[conntrack]\ntcp_idle = \"2s\"");
    daemon.wait_for(Duration::from_secs(3), "expired again under 2s", |r| active(r) == 0);
}
