//! Plans compiled from the lab config, and the problems only compiling finds.

use std::path::Path;

use super::Plan;
use crate::{config, dataplane::Trust};

const LAB: &str = include_str!("../../../examples/lab.toml");

/// The lab config with `from` replaced by `to` (once), compiled.
fn compiled(from: &str, to: &str) -> Result<Plan, String> {
    assert_eq!(LAB.matches(from).count(), 1, "`{from}` must occur once in examples/lab.toml");
    let text = LAB.replacen(from, to, 1);
    let cfg = config::parse(Path::new("lab.toml"), &text, &|_| true).map_err(|e| e.to_string())?;
    Plan::compile(cfg).map_err(|e| e.to_string())
}

#[test]
fn the_lab_plan_holds_every_part() {
    let plan = compiled("ttl = 30", "ttl = 30").expect("lab plan");
    assert_eq!(plan.interfaces, [("front".to_owned(), Trust::Untrusted), ("back".to_owned(), Trust::Trusted)]);
    assert_eq!(plan.firewall.rules.len(), 3);
    assert_eq!(plan.firewall.rules[0].to_string(), "tcp to 192.0.2.10/32 ports 80,443");
    assert_eq!(plan.services.len(), 1);
    assert_eq!(plan.checks.len(), 2, "one check per backend");
    assert_eq!(plan.zone.as_ref().map(|z| z.records.len()), Some(3));
}

#[test]
fn rules_the_data_plane_cannot_hold_are_refused() {
    let five_web_rules = "[[firewall.allow]]\nproto = \"tcp\"\nto = \"192.0.2.10\"\nports = [80]\n".repeat(4);
    let err = compiled(
        "[[firewall.allow]]\nproto = \"udp\"",
        &format!("{five_web_rules}[[firewall.allow]]\nproto = \"udp\""),
    )
    .expect_err("five rules on tcp/80/192.0.2.10");
    assert_eq!(
        err,
        "lab.toml:20: firewall.allow: more than 4 allow rules apply to protocol 6 port 80 towards 192.0.2.10/32: \
         merge rules that differ only by source"
    );
}

#[test]
fn names_dns_cannot_hold_are_refused_with_their_line() {
    let long = "x".repeat(64);
    let err = compiled(r#"name = "db-write""#, &format!("name = \"{long}\"")).expect_err("a 64-byte label");
    assert!(err.starts_with("lab.toml:74: dns.record[1].name: "), "{err}");
    let err = compiled("ttl = 30", "ttl = 30\n\n[[dns.record]]\nname = \"web\"\ntype = \"CNAME\"\nvalue = \"a..b\"")
        .expect_err("a CNAME target that is no DNS name");
    assert!(err.contains("dns.record[0].value: `a..b` is not a DNS name"), "{err}");
}

#[test]
fn capacities_the_config_outgrows_are_named() {
    let err = compiled("services = 512  ", "services = 0    ").expect_err("no room for a service");
    assert!(err.contains("capacity.services: must be at least 1"), "{err}");
    assert!(err.contains("capacity.services: is 0 but the config needs 1 services"), "{err}");
    let maglev = compiled(r#"scheduler = "round-robin""#, r#"scheduler = "maglev""#).expect("maglev fits");
    assert_eq!(maglev.services[0].ring_half(), 65_537);
    let text = LAB.replacen(r#"scheduler = "round-robin""#, r#"scheduler = "maglev""#, 1);
    let text = text.replacen("ring_slots = 8388608", "ring_slots = 100000", 1);
    let cfg = config::parse(Path::new("lab.toml"), &text, &|_| true).expect("valid config");
    let err = Plan::compile(cfg).expect_err("a Maglev ring in 100000 slots").to_string();
    let line = LAB.lines().position(|l| l.starts_with("ring_slots")).expect("ring_slots line") + 1;
    assert!(
        err.contains(&format!(
            "lab.toml:{line}: capacity.ring_slots: is 100000 but the config needs 131074 ring slots"
        )),
        "{err}"
    );
}

#[test]
fn the_syn_proxy_is_on_where_it_can_be_unless_said_otherwise() {
    use crate::dataplane::services::SynProxy;
    let proxy = |from: &str, to: &str| compiled(from, to).expect("plan").services[0].syn_proxy;
    let line = r##"# syn_proxy = "always""##;
    assert_eq!(proxy(line, line), SynProxy::Always, "NAT TCP services by default");
    assert_eq!(proxy(line, r#"syn_proxy = "off""#), SynProxy::Off);
    assert_eq!(proxy(line, r#"syn_proxy = "under-flood""#), SynProxy::UnderFlood);
    assert_eq!(
        proxy(r#"mode = "nat""#, r#"mode = "dsr""#),
        SynProxy::UnderFlood,
        "DSR services: under flood, by default"
    );
    assert_eq!(proxy(r#"mode = "nat""#, r#"mode = "dnat""#), SynProxy::Always, "DNAT ones as NAT ones");
    let mode = compiled(r#"mode = "nat""#, r#"mode = "dnat""#).expect("plan").services[0].mode;
    assert_eq!(mode, crate::dataplane::services::Mode::Dnat);
}
