//! A reload is all or nothing: one whose last step fails leaves status and traffic exactly as
//! they were, every earlier step undone.

use foobar::control::protocol::{Request, Response, StatusReport};
use foobar_tests::{daemon::RunningDaemon, gate::Need, netns::Netns, nginx, topology::*};
use libtest_mimic::Trial;

use crate::{dns_lab::dig, firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![gated("reload_lab::a_reload_failing_at_its_last_step_changes_nothing", &[Need::Root, Need::Bpf], last_step)]
}

fn fetch(client: &Netns) -> String {
    let out = client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("(no answer)").to_owned()
}

/// What a reload could change, as status shows it.
fn shown(r: &StatusReport) -> String {
    let services: Vec<String> = r
        .services
        .iter()
        .map(|s| {
            let backends: Vec<String> = s.backends.iter().map(|b| format!("{}={}", b.name, b.state)).collect();
            format!("{} {} {:?} [{}]", s.name, s.mode, s.ports, backends.join(" "))
        })
        .collect();
    let rules: Vec<&str> = r.firewall_rules.iter().map(|x| x.rule.as_str()).collect();
    format!("{services:?} {rules:?} denied by config {}", r.denied_by_config)
}

/// The id of the map named `name` that the XDP program on `dev` in `ns` uses.
fn map_of_program(ns: &Netns, dev: &str, name: &str) -> String {
    let net = ns.exec(&["bpftool", "-j", "net", "show", "dev", dev]);
    let prog =
        net.split("\"id\":").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).expect("prog id");
    let info = ns.exec(&["bpftool", "-j", "prog", "show", "id", prog]);
    let ids = info.split("\"map_ids\":[").nth(1).and_then(|r| r.split(']').next()).expect("map ids");
    ids.split(',')
        .find(|id| ns.exec(&["bpftool", "-j", "map", "show", "id", id]).contains(&format!("\"name\":\"{name}\"")))
        .unwrap_or_else(|| panic!("the program on {dev} uses no map {name}"))
        .to_owned()
}

fn last_step() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let text = LAB_CONFIG.replacen("deny_entries = 262144", "deny_entries = 8", 1);
    let daemon = RunningDaemon::start(&stack.node, &text);
    let good = std::fs::read_to_string(&daemon.config_file).expect("config");
    let before = shown(&daemon.status());
    let picks: Vec<String> = (0..4).map(|_| fetch(&stack.client)).collect();
    assert_eq!(picks.iter().filter(|p| *p == "web1").count(), 2, "{picks:?}");
    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP);

    // Something else fills the IPv4 deny list to capacity: the config's entry and seven more.
    let trie = map_of_program(&stack.node, "front", "FW_DENY_V4");
    for last in 10..17 {
        let key = ["20", "00", "00", "00", "cb", "00", "71", &format!("{last:02x}")];
        let mut cmd = vec!["bpftool", "map", "update", "id", &trie, "key", "hex"];
        cmd.extend_from_slice(&key);
        cmd.extend_from_slice(&["value", "hex", "01", "00", "00", "00"]);
        stack.node.exec(&cmd);
    }

    // A reload that changes a service, the allow rules and the SYN limit, then must add one
    // more deny entry (the last step, which the full list refuses).
    let changed = good
        .replacen("[[service.backend]]\nname = \"web1\"\naddress = \"198.51.100.11\"\n", "", 1)
        .replacen("[[firewall.allow]]\nproto = \"udp\"\nto = \"192.0.2.53\"\nports = [53]\n", "", 1)
        .replacen("syn_rate_per_source = 200", "syn_rate_per_source = 50", 1)
        .replacen(r#"deny_sources = ["192.0.2.66/32"]"#, r#"deny_sources = ["192.0.2.66/32", "203.0.113.99/32"]"#, 1);
    assert_eq!(changed.matches("web1").count() + 1, good.matches("web1").count(), "web1's backend entry is gone");
    std::fs::write(&daemon.config_file, &changed).expect("write config");
    match daemon.request(Request::Reload) {
        Response::Error { message } => assert!(message.contains("every step of the reload was undone"), "{message}"),
        other => panic!("the reload went through: {other:?}"),
    }
    assert_eq!(shown(&daemon.status()), before, "status changed");
    let picks: Vec<String> = (0..4).map(|_| fetch(&stack.client)).collect();
    assert_eq!(picks.iter().filter(|p| *p == "web1").count(), 2, "web1 left the rotation: {picks:?}");
    assert_eq!(dig(&stack.client, &["+short", "www.foobar.com"]).trim(), VIP, "the DNS allow rule went");
    let dump = stack.node.exec(&["bpftool", "map", "dump", "id", &trie]);
    assert!(!dump.contains("63"), "the failed reload's entry stayed: {dump}");
    assert!(dump.contains("Found 8 elements"), "{dump}");
}
