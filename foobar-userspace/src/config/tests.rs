//! Table-driven config tests: each case edits the lab config and names the exact error.

use std::path::Path;

use super::parse;

const LAB: &str = include_str!("../../../examples/lab.toml");

fn lab_interfaces(name: &str) -> bool {
    matches!(name, "front" | "back")
}

/// Parses the lab config with `from` replaced by `to` (which must occur exactly once).
fn edited(from: &str, to: &str) -> Result<super::Config, String> {
    assert_eq!(LAB.matches(from).count(), 1, "`{from}` must occur once in examples/lab.toml");
    let text = LAB.replacen(from, to, 1);
    parse(Path::new("lab.toml"), &text, &lab_interfaces).map_err(|e| e.to_string())
}

#[test]
fn the_lab_config_is_valid() {
    let cfg = parse(Path::new("lab.toml"), LAB, &lab_interfaces).expect("examples/lab.toml must stay valid");
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(cfg.services[0].backends.len(), 2);
    assert_eq!(cfg.firewall.allow.len(), 3);
    assert_eq!(cfg.dns.as_ref().map(|d| d.records.len()), Some(3));
}

#[test]
fn good_values_are_accepted() {
    for (from, to) in [
        (r#"xdp_mode = "auto""#, r#"xdp_mode = "native""#),
        (r#"xdp_mode = "auto""#, r#"xdp_mode = "generic""#),
        (r#"default_policy = "drop""#, r#"default_policy = "accept""#),
        (r#"deny_sources = ["192.0.2.66/32"]"#, r#"deny_sources = ["192.0.2.0/24", "2001:db8:1::/64", "203.0.113.7"]"#),
        ("syn_rate_per_source = 200", "syn_rate_per_source = 0"),
        ("syn_rate_per_net = 5000", "syn_rate_per_net = 0"),
        ("syn_rate_per_source = 200", "syn_rate_per_source = 50\nsyn_burst = 100"),
        (
            "mode = \"nat\"                          # nat | dnat | dsr\nscheduler = \"round-robin\"             # round-robin | weighted-round-robin | maglev | least-connections\n# syn_proxy = \"always\"",
            "mode = \"dsr\"\nscheduler = \"maglev\"\nsyn_proxy = \"under-flood\"",
        ),
        (r#"mode = "nat""#, r#"mode = "dsr""#),
        (r#"mode = "nat""#, r#"mode = "dnat""#),
        (r##"# syn_proxy = "always""##, r#"syn_proxy = "off""#),
        (r##"# syn_proxy = "always""##, r#"syn_proxy = "under-flood""#),
        (r#"scheduler = "round-robin""#, r#"scheduler = "maglev""#),
        (r#"scheduler = "round-robin""#, "scheduler = \"maglev\"\non_down = \"keep\""),
        (r#"scheduler = "round-robin""#, "scheduler = \"maglev\"\naffinity = \"source\""),
        (r#"scheduler = "round-robin""#, r#"scheduler = "weighted-round-robin""#),
        ("kind = \"http\"                         # tcp | http | https\npath = \"/\"", "kind = \"tcp\"\nport = 8080"),
        (r#"kind = "http""#, r#"kind = "https""#),
        ("expect_status = 200", "expect_status = \"2xx\"\nhost = \"www.foobar.com\"\nport = 443"),
        ("expect_status = 200", "expect_status = \"200-399\""),
        ("ttl = 30", "ttl = 30\nslip = 0\ntcp_connections = 10\ntcp_idle_timeout = \"2s\""),
        (r#"interval = "500ms""#, r#"interval = "1m""#),
        (r#"address = "198.51.100.12""#, "address = \"198.51.100.12\"\nweight = 3\nbackup = true"),
        ("ttl = 30", "ttl = 300"),
        ("ttl = 30", "ttl = 30\nresponses_per_second = 0\nallow_axfr = true"),
        ("heartbeat = true", "heartbeat = false"),
        (r#"timeout = "500ms""#, r#"timeout = "1s""#),
    ] {
        if let Err(e) = edited(from, to) {
            panic!("`{to}` rejected: {e}");
        }
    }
}

#[test]
fn bad_values_name_file_line_and_key() {
    let mut mismatches = Vec::new();
    for (from, to, expected) in [
        (
            "syn_rate_per_source = 200",
            "syn_rate_per_sourc = 200",
            "lab.toml:16: firewall.syn_rate_per_sourc: unknown field `syn_rate_per_sourc`, expected one of `default_policy`, `deny_sources`, `syn_rate_per_source`, `syn_burst`, `syn_rate_per_net`, `allow`",
        ),
        (
            r#"xdp_mode = "auto""#,
            r#"xdp_mode = "fast""#,
            "lab.toml:7: daemon.xdp_mode: unknown variant `fast`, expected one of `native`, `generic`, `auto`",
        ),
        (
            r#"interval = "500ms""#,
            r#"interval = "500""#,
            "lab.toml:49: service.health.interval: `500`: duration unit must be ms, s or m",
        ),
        (
            r#"deny_sources = ["192.0.2.66/32"]"#,
            r#"deny_sources = ["192.0.2.66/40"]"#,
            "lab.toml:15: firewall.deny_sources: `192.0.2.66/40`: prefix length must be 0..=32",
        ),
        (
            r#"deny_sources = ["192.0.2.66/32"]"#,
            r#"deny_sources = ["192.0.2.66/24"]"#,
            "lab.toml:15: firewall.deny_sources: `192.0.2.66/24` has host bits set past /24",
        ),
        (r#"vip = "192.0.2.10""#, r#"vip = "www.foobar.com""#, "lab.toml:36: service.vip: invalid IP address syntax"),
        ("rise = 2", "rise = -1", "lab.toml:51: service.health.rise: invalid value: integer `-1`, expected u32"),
        (
            r#"scheduler = "round-robin""#,
            "scheduler = \"round-robin\"\naffinity = \"source\"",
            "lab.toml:41: service[0].affinity: source affinity picks from a Maglev ring: set scheduler = \"maglev\"",
        ),
        (
            "expect_status = 200",
            "expect_status = \"ok\"",
            "lab.toml:46: service.health.expect_status: `ok` is not an HTTP status, class or range (e.g. 200, \"2xx\", \"200-399\")",
        ),
        (
            "expect_status = 200",
            "expect_status = 200\nport = 0",
            "lab.toml:35: service[0].health.port: must be a port, 1 to 65535",
        ),
        (
            r#"service = "www"  "#,
            r#"service = "wwx"  "#,
            "lab.toml:71: dns.record[0].service: no [[service]] is named `wwx`",
        ),
        (
            r#"untrusted = ["front"]"#,
            r#"untrusted = ["eth9"]"#,
            "lab.toml:6: daemon.untrusted: `eth9` is not in daemon.interfaces: the firewall runs only where XDP is attached",
        ),
        (
            r#"interfaces = ["front", "back"]"#,
            r#"interfaces = ["front", "back", "eth7"]"#,
            "lab.toml:5: daemon.interfaces: no interface `eth7` exists here (see `ip link`)",
        ),
        (
            r#"address = "198.51.100.12""#,
            r#"address = "2001:db8:2::12""#,
            "lab.toml:59: service[0].backend[1].address: must be of the VIP's address family",
        ),
        (
            r#"timeout = "300ms""#,
            r#"timeout = "3s""#,
            "lab.toml:50: service[0].health.timeout: must be above zero and at most the interval",
        ),
        (
            "proto = \"udp\"\nto = \"192.0.2.53\"",
            "proto = \"icmp\"\nto = \"192.0.2.53\"",
            "lab.toml:25: firewall.allow[1].ports: ICMP has no ports: remove `ports`",
        ),
        (
            r#"name = "db-write""#,
            "name = \"db-write\"\nvalue = \"192.0.2.31\"",
            "lab.toml:74: dns.record[1].value: needs exactly one of `value`, `service` or `replication`",
        ),
        (
            r#"address = "198.51.100.12""#,
            "address = \"198.51.100.12\"\nweight = 0",
            "lab.toml:59: service[0].backend[1].weight: must be at least 1 (drain the backend instead)",
        ),
        (
            r#"timeout = "500ms""#,
            r#"timeout = "2s""#,
            "lab.toml:91: replication.timeout: must be above zero and at most `interval` (a check round must end before the next)",
        ),
        (
            r#"heartbeat_table = "foobar_monitor.heartbeat""#,
            r#"heartbeat_table = "heartbeat; DROP TABLE x""#,
            "lab.toml:94: replication.heartbeat_table: `heartbeat; DROP TABLE x` must be `database.table`, letters, digits and `_` only",
        ),
        (
            r#"heartbeat_table = "foobar_monitor.heartbeat""#,
            "heartbeat_table = \"foobar_monitor.heartbeat\"\nauto_failover = true",
            "lab.toml:95: replication.auto_failover: needs `replication_user` and `replication_password_file`: the \
             other replicas log in to the new primary with them",
        ),
        (
            "# failover_after = 3 ",
            "failover_after = 0 #",
            "lab.toml:96: replication.failover_after: must be at least 1 check",
        ),
        (
            r#"# replication_user = "repl""#,
            r#"replication_user = "repl""#,
            "lab.toml:86: replication.replication_user: `replication_user` and `replication_password_file` go together",
        ),
        (
            r##"# syn_proxy = "always""##,
            r#"syn_proxy = "sometimes""#,
            "lab.toml:41: service.syn_proxy: unknown variant `sometimes`, expected one of `always`, `under-flood`, `off`",
        ),
        (
            "mode = \"nat\"                          # nat | dnat | dsr\nscheduler = \"round-robin\"             # round-robin | weighted-round-robin | maglev | least-connections\n# syn_proxy = \"always\"",
            "mode = \"dsr\"\nscheduler = \"round-robin\"\nsyn_proxy = \"always\"",
            "lab.toml:41: service[0].syn_proxy: a DSR service's backends answer clients themselves, so the proxy cannot \
             translate their sequence numbers: use \"under-flood\" (Maglev services then keep no state under a flood) or \"off\"",
        ),
        (
            "proto = \"tcp\"\nmode = \"nat\"                          # nat | dnat | dsr\nscheduler = \"round-robin\"             # round-robin | weighted-round-robin | maglev | least-connections\n# syn_proxy = \"always\"",
            "proto = \"udp\"\nmode = \"nat\"\nscheduler = \"round-robin\"\nsyn_proxy = \"always\"",
            "lab.toml:41: service[0].syn_proxy: the SYN proxy is for TCP services: remove `syn_proxy`",
        ),
    ] {
        match edited(from, to) {
            Ok(_) => mismatches.push(format!("`{to}` was accepted")),
            Err(e) if e != expected => mismatches.push(format!("for `{to}`\n  got:      {e}\n  expected: {expected}")),
            Err(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = LAB.replacen(r#"service = "www"  "#, r#"service = "nope" "#, 1).replacen(
        r#"untrusted = ["front"]"#,
        r#"untrusted = ["eth9"]"#,
        1,
    );
    let err = parse(Path::new("lab.toml"), &text, &lab_interfaces).expect_err("two problems");
    assert_eq!(err.problems.len(), 2, "{err}");
}

#[test]
fn conntrack_settings_are_checked_and_reach_the_data_plane() {
    let with = |table: &str| format!("{LAB}\n[conntrack]\n{table}\n");
    let cfg = parse(Path::new("lab.toml"), &with("tcp_idle = \"2m\"\nnat_ports = [40000, 40999]"), &lab_interfaces)
        .expect("valid conntrack");
    let s = cfg.conntrack.settings();
    assert_eq!((s.tcp_idle_ns, s.nat_port_min, s.nat_port_count), (120_000_000_000, 40_000, 1_000));
    assert_eq!(s.udp_idle_ns, foobar_common::lb::LbSettings::DEFAULT.udp_idle_ns, "unset: the default");
    for (table, expected) in [
        ("closing = \"1s\"", "conntrack.closing: must be at least 2s"),
        ("nat_ports = [80, 90]", "conntrack.nat_ports: [80, 90] must be [first, last] with 1024 <= first <= last"),
        ("opening = \"20m\"", "conntrack.opening: must be at most `tcp_idle`"),
        ("flood_new_flows = 0", "conntrack.flood_new_flows: must be at least 1"),
    ] {
        let err = parse(Path::new("lab.toml"), &with(table), &lab_interfaces).expect_err(table).to_string();
        assert!(err.contains(expected), "{table}: {err}");
    }
}

#[test]
fn type_errors_in_different_tables_are_reported_at_once() {
    let text = LAB
        .replacen(r#"xdp_mode = "auto""#, r#"xdp_mode = "turbo""#, 1)
        .replacen("rise = 2", "rise = \"two\"", 1)
        .replacen(r#"address = "198.51.100.12""#, r#"address = "web2.lan""#, 1)
        .replacen("ttl = 1 ", "ttl = -1 ", 1)
        .replacen(r#"max_lag = "5s""#, r#"max_lag = 5"#, 1);
    let err = parse(Path::new("lab.toml"), &text, &lab_interfaces).expect_err("five type errors");
    let lines: Vec<String> = err.problems.iter().map(|p| format!("{}: {}", p.line, p.key)).collect();
    assert_eq!(
        lines,
        [
            "7: daemon.xdp_mode",
            "51: service.health.rise",
            "60: service.backend.address",
            "77: dns.record.ttl",
            "92: replication.max_lag"
        ],
        "{err}"
    );
    // A syntax error still stops at itself: nothing after it can be read.
    let broken = LAB.replacen(r#"xdp_mode = "auto""#, r#"xdp_mode = "auto"#, 1);
    let err = parse(Path::new("lab.toml"), &broken, &lab_interfaces).expect_err("syntax error");
    assert_eq!(err.problems.len(), 1, "{err}");
}

const CLUSTER: &str = include_str!("../../../examples/cluster.toml");

#[test]
fn the_cluster_config_is_valid_and_announces_www() {
    let cfg =
        parse(Path::new("cluster.toml"), CLUSTER, &lab_interfaces).expect("examples/cluster.toml must stay valid");
    assert_eq!(cfg.services[0].announce.as_ref().map(|a| a.get_ref().as_str()), Some("www_vip"));
    assert_eq!(cfg.daemon.vip_interface.as_ref().map(|v| v.get_ref().as_str()), Some("lo"));
}

#[test]
fn announcements_need_bird_and_a_plain_protocol_name() {
    let parse_with = |from: &str, to: &str| {
        assert_eq!(CLUSTER.matches(from).count(), 1, "`{from}`");
        parse(Path::new("cluster.toml"), &CLUSTER.replacen(from, to, 1), &lab_interfaces).map_err(|e| e.to_string())
    };
    let no_bird = parse_with("[announce]\nbird_socket = \"/run/bird/bird.ctl\"", "").expect_err("no [announce]");
    assert!(no_bird.contains("service[0].announce: needs an [announce] table"), "{no_bird}");
    let injected = parse_with("announce = \"www_vip\"", "announce = \"www_vip; disable all\"").expect_err("bad name");
    assert!(injected.contains("is not a BIRD protocol name"), "{injected}");
    let nowhere = parse_with("vip_interface = \"lo\"", "vip_interface = \"eth7\"").expect_err("no such interface");
    assert!(nowhere.contains("daemon.vip_interface: no interface `eth7` exists here"), "{nowhere}");
    assert!(parse_with("vip_interface = \"lo\"", "vip_interface = \"none\"").is_ok());
}

#[test]
fn the_pair_config_is_valid_and_leaves_the_vip_to_keepalived() {
    let text = include_str!("../../../examples/pair/foobar.toml");
    let cfg =
        parse(Path::new("pair/foobar.toml"), text, &lab_interfaces).expect("examples/pair/foobar.toml must stay valid");
    assert_eq!(cfg.daemon.vip_interface.as_ref().map(|v| v.get_ref().as_str()), Some("none"));
    assert!(cfg.announce.is_none());
}

#[test]
fn a_command_announces_instead_of_bird() {
    let bird = "bird_socket = \"/run/bird/bird.ctl\"";
    let with = |table: &str, name: &str| {
        let text =
            CLUSTER.replacen(bird, table, 1).replacen("announce = \"www_vip\"", &format!("announce = {name:?}"), 1);
        parse(Path::new("cluster.toml"), &text, &lab_interfaces).map_err(|e| e.to_string())
    };
    let hook = "command = [\"/usr/local/bin/vip-route\", \"--peer\", \"192.0.2.129\"]";
    let cfg = with(hook, "192.0.2.10/32").expect("a route name for a command");
    assert_eq!(cfg.announce.and_then(|a| a.command).map(|c| c.into_inner().len()), Some(3));
    let both = with(&format!("{bird}\n{hook}"), "www_vip").expect_err("both");
    assert!(both.contains("announce.command: set bird_socket or command, not both"), "{both}");
    let relative = with("command = [\"vip-route\"]", "www_vip").expect_err("no path");
    assert!(relative.contains("announce.command: must start with the program's absolute path"), "{relative}");
    let option = with(hook, "--all").expect_err("an option as a name");
    assert!(option.contains("service[0].announce: `--all` is not a route name"), "{option}");
    let neither = with("", "www_vip").expect_err("an empty [announce]");
    assert!(
        neither.contains("needs an [announce] table naming BIRD's control socket (bird_socket) or a command"),
        "{neither}"
    );
    assert!(with(bird, "192.0.2.10/32").expect_err("BIRD").contains("is not a BIRD protocol name"));
}

const CLUSTER_NAT: &str = include_str!("../../../examples/cluster-nat.toml");

/// `examples/cluster-nat.toml` as node `node` reads it, with `from` replaced by `to`.
fn cluster_nat(node: &str, from: &str, to: &str) -> Result<super::Config, String> {
    assert!(CLUSTER_NAT.contains(from), "`{from}`");
    let text =
        CLUSTER_NAT.replacen(from, to, 1).replacen("[daemon]\n", &format!("[daemon]\nnode_name = {node:?}\n"), 1);
    parse(Path::new("cluster-nat.toml"), &text, &lab_interfaces).map_err(|e| e.to_string())
}

#[test]
fn a_cluster_names_this_node_and_keeps_names_addresses_and_ports_apart() {
    let cfg = cluster_nat("node2", "", "").expect("examples/cluster-nat.toml must stay valid");
    let c = cfg.cluster.as_ref().expect("[cluster]");
    assert_eq!(
        c.node("node2").map(|(slot, n)| (slot, *n.nat_address.get_ref())),
        Some((2, "192.0.2.202".parse().expect("address")))
    );
    for (node, from, to, error) in [
        (
            "node4",
            "",
            "",
            "cluster-nat.toml:50: cluster.node: no [[cluster.node]] is named `node4`, this node (daemon.node_name)",
        ),
        (
            "node1",
            "name = \"node2\"",
            "name = \"node1\"",
            "cluster-nat.toml:56: cluster.node[1].name: the same name as cluster.node[0] (`node1`)",
        ),
        (
            "node1",
            "192.0.2.202",
            "192.0.2.201",
            "cluster-nat.toml:58: cluster.node[1].nat_address: the same address as cluster.node[0] (`node1`)",
        ),
        (
            "node1",
            "[30000, 39999]",
            "[29999, 39999]",
            "cluster-nat.toml:59: cluster.node[1].nat_ports: the same ports as cluster.node[0] (`node1`)",
        ),
        (
            "node1",
            "[30000, 39999]",
            "[30000, 1024]",
            "cluster-nat.toml:59: cluster.node[1].nat_ports: [30000, 1024] must be [first, last] with 1024 <= first <= last",
        ),
        (
            "node1",
            "sync_interval = \"200ms\"",
            "sync_interval = \"0ms\"",
            "cluster-nat.toml:46: cluster.sync_interval: must be above zero",
        ),
        (
            "node1",
            "[cluster]",
            "[conntrack]\nnat_ports = [20000, 20999]\n[cluster]",
            "conntrack.nat_ports: a cluster's nodes each have their own",
        ),
    ] {
        let got = cluster_nat(node, from, to).map(|_| ()).expect_err(error);
        assert!(got.contains(error), "{from} → {to}: {got}");
    }
}

#[test]
fn the_packaged_config_is_valid_on_a_two_nic_node() {
    let text = include_str!("../../../examples/foobar.toml");
    let eth = |name: &str| matches!(name, "eth0" | "eth1");
    let cfg = parse(Path::new("foobar.toml"), text, &eth).expect("examples/foobar.toml must stay valid");
    assert_eq!(cfg.daemon.interfaces.len(), 2);
    assert!(parse(Path::new("foobar.toml"), text, &lab_interfaces).is_err(), "it names eth0 and eth1");
}

/// README says lab.toml shows every key: each field of the schema (by its TOML name) appears
/// in it, set or in a comment, or in the cluster example.
#[test]
fn the_lab_config_shows_every_key() {
    let examples = [LAB, CLUSTER, CLUSTER_NAT].concat();
    let mut rename = None;
    let mut missing = Vec::new();
    for line in include_str!("schema.rs").lines().map(str::trim) {
        if line.starts_with("#[serde(") {
            rename = line.split_once("rename = \"").and_then(|(_, r)| r.split_once('"')).map(|(r, _)| r.to_owned());
            continue;
        }
        let Some(field) = line.strip_prefix("pub ").and_then(|l| l.split_once(':')).map(|(f, _)| f) else {
            continue;
        };
        let key = rename.take().unwrap_or_else(|| field.to_owned());
        if field.contains(' ') || field == "origin" || key.chars().any(|c| c.is_ascii_uppercase()) {
            continue;
        }
        let shown =
            [format!("{key} ="), format!(".{key}]"), format!("[{key}]")].iter().any(|s| examples.contains(s.as_str()));
        if !shown {
            missing.push(key);
        }
    }
    assert!(missing.is_empty(), "keys examples/lab.toml does not show: {missing:?}");
}
