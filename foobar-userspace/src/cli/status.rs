//! `foobar status [--json] [--watch]`: what the running daemon is doing, as tables or as
//! JSON, once or redrawn every second.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use crate::control::{
    client,
    protocol::{ReplicationStatus, Request, Response, StatusReport},
};

pub fn run(socket: &Path, json: bool, watch: bool) -> anyhow::Result<ExitCode> {
    loop {
        let text = match client::request(socket, &Request::Status)? {
            Response::Status(report) if json => format!("{}\n", serde_json::to_string_pretty(&report)?),
            Response::Status(report) => render(&report),
            other => return super::unexpected(other),
        };
        if !watch {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        // Home the cursor and clear the screen, then redraw (Ctrl-C ends it).
        print!("\x1b[H\x1b[2J{text}");
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Text that came from outside (a database's error message, a backend's answer), with control
/// characters escaped: printed raw, an escape sequence in it would drive the operator's
/// terminal, and a newline would forge a line of the report.
fn outside(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

fn bytes(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

/// The human-readable tables.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let short = r.node.config_sha256.get(..12).unwrap_or_default();
    let drained = if r.node.drained { "DRAINED (foobar node enable)" } else { "in service" };
    let _ = writeln!(out, "node {} {drained}  config sha256 {short}", r.node.name);
    if let Some(s) = &r.node.sync {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| match p.heard_ms_ago {
                Some(ms) => format!("{} (heard {:.1} s ago)", p.name, ms as f64 / 1000.0),
                None => format!("{} (never heard)", p.name),
            })
            .collect();
        let _ = writeln!(
            out,
            "flow sync  with {}: {} flows sent, {} taken on, {} bindings held for peers, {} datagrams refused",
            peers.join(", "),
            s.flows_sent,
            s.flows_adopted,
            s.bindings_held,
            s.refused
        );
    }
    for i in &r.interfaces {
        let adopted = if i.adopted { ", taken over" } else { "" };
        let _ = writeln!(out, "xdp {} ({})  {} mode{adopted}: {}", i.name, i.trust, i.mode, i.why);
    }
    if !r.blocked_by_operator.is_empty() || r.denied_by_config > 0 {
        let blocked =
            if r.blocked_by_operator.is_empty() { "none".to_owned() } else { r.blocked_by_operator.join(", ") };
        let _ = writeln!(
            out,
            "deny list  {} from the config, blocked by the operator on this node: {blocked}",
            r.denied_by_config
        );
    }
    if let Some(p) = &r.pins {
        let kept = if p.kept_across_restarts {
            "kept across restarts"
        } else {
            "PRIVATE to this mount namespace: a restart resets open connections"
        };
        let _ = writeln!(out, "pins {}  {kept}", p.dir);
    }
    match &r.flow_census {
        Some(c) => {
            let _ = writeln!(out, "active flows counted {:.1} s ago (in {:.0} ms)", c.age_s, c.took_ms);
        }
        None => {
            let _ = writeln!(out, "active flows not counted yet (ask again in a second)");
        }
    }
    for s in &r.services {
        let ports = s.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let _ = writeln!(
            out,
            "service {}  {} {}/{}  {} {}  active flows {}  new flows {} ({:.1}/s)  {} ({}/s)",
            s.name,
            s.vip,
            s.protocol,
            ports,
            s.mode,
            s.scheduler,
            s.active_flows,
            s.new_flows,
            s.new_flows_per_sec,
            bytes(s.bytes as f64),
            bytes(s.bytes_per_sec)
        );
        if let Some(note) = &s.note {
            let _ = writeln!(out, "  ! {note}");
        }
        if let Some(a) = &s.announce {
            let told = match (a.announced, &a.error) {
                (_, Some(e)) => format!("not told: {}", outside(e)),
                (Some(true), None) => "routing daemon: announced".to_owned(),
                (Some(false), None) => "routing daemon: withdrawn".to_owned(),
                (None, None) => "routing daemon: not told yet".to_owned(),
            };
            let verb = if a.wanted { "announced" } else { "withdrawn" };
            let _ = writeln!(out, "  route {} {verb} ({})  {told}", a.protocol, a.why);
        }
        if s.protocol == "tcp" {
            let flood = if s.under_flood { "UNDER FLOOD" } else { "no flood" };
            let _ = writeln!(out, "  syn proxy {}, {flood}", s.syn_proxy);
        }
        if let Some(exposed) = &s.exposed {
            let _ = writeln!(out, "  ! {exposed}");
        }
        let _ = writeln!(
            out,
            "  {:<10} {:<22} {:<9} {:<7} {:<34} {:>10} {:>7} {:>10} {:>10}",
            "backend", "address", "state", "active", "last check", "latency", "flows", "new flows", "traffic"
        );
        for b in &s.backends {
            let role = if b.backup { " (backup)" } else { "" };
            let (last, latency) = match &b.health {
                Some(h) => (outside(&h.last), format!("{:.1} ms", h.latency_ms)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(
                out,
                "  {:<10} {:<22} {:<9} {:<7} {:<34} {:>10} {:>7} {:>10} {:>10}",
                format!("{}{role}", b.name),
                b.address,
                b.state,
                if b.active { "yes" } else { "no" },
                last,
                latency,
                b.active_flows,
                b.new_flows,
                bytes(b.bytes as f64)
            );
            if let Some(note) = &b.passive_note {
                let _ = writeln!(out, "  ! {}: taken out by passive health: {}", b.name, outside(note));
            }
        }
        out.push('\n');
    }
    if !r.firewall_rules.is_empty() {
        let _ = writeln!(out, "firewall allow rules");
        for (i, rule) in r.firewall_rules.iter().enumerate() {
            let _ = writeln!(out, "  #{i:<3} {:<50} hits {}", rule.rule, rule.hits);
        }
        out.push('\n');
    }
    if let Some(d) = &r.dns {
        let _ = writeln!(
            out,
            "dns {}  serial {}  on {}  answering for: {}  queries {} (in XDP {}, rendered in userspace {}, rate-limited {}, slipped {})  \
             tcp {}/{} open, {} refused\n",
            d.zone,
            d.serial,
            d.listen.join(", "),
            if d.answering.is_empty() { "(no service is up)".to_owned() } else { d.answering.join(", ") },
            d.queries,
            d.answered_in_xdp,
            d.answered_rendered,
            d.rate_limited,
            d.slipped,
            d.tcp_open,
            d.tcp_limit,
            d.tcp_refused
        );
    }
    if let Some(db) = &r.replication {
        render_replication(&mut out, db);
    }
    let _ = writeln!(out, "data-plane counters");
    for (name, value) in &r.counters {
        let _ = writeln!(out, "  {name:<40} {value}");
    }
    out
}

/// One line per database server, then what DNS answers from it.
fn render_replication(out: &mut String, db: &ReplicationStatus) {
    let age = db.last_round_age_s.map_or_else(|| "no round yet".to_owned(), |a| format!("last round {a:.1}s ago"));
    let _ = writeln!(out, "replication  db-write -> {}  db-read -> {}  {age}", list(&db.write), list(&db.read));
    let _ = writeln!(
        out,
        "  {:<8} {:<22} {:<8} {:<12} {:>9} {:>5} {:>5} {:>10} {:>6}  reason",
        "server", "address", "role", "state", "hb lag", "io", "sql", "behind", "check"
    );
    for s in &db.servers {
        let dash = || "-".to_owned();
        let _ = writeln!(
            out,
            "  {:<8} {:<22} {:<8} {:<12} {:>9} {:>5} {:>5} {:>10} {:>6}  {}",
            s.name,
            s.address,
            s.role,
            s.state,
            s.heartbeat_lag.map_or_else(dash, |l| format!("{l:.3}s")),
            s.io_thread.clone().unwrap_or_else(dash),
            s.sql_thread.clone().unwrap_or_else(dash),
            s.seconds_behind_master.map_or_else(dash, |b| format!("{b}s")),
            format!("{:.0}ms", s.check_ms),
            outside(&s.reason)
        );
        if let Some(t) = &s.topology {
            let _ = writeln!(out, "  ! {}: {}", s.name, outside(t));
        }
        if let Some(e) = &s.heartbeat_error {
            let _ = writeln!(out, "  ! {}: heartbeat failing: {}", s.name, outside(e));
        }
        if let Some(f) = &s.flagged {
            let _ = writeln!(out, "  ! {}: left out for a person: {}", s.name, outside(f));
        }
    }
    let failover = if db.auto_failover { "auto_failover on" } else { "auto_failover off" };
    let _ = writeln!(out, "  {failover}; {} failovers, {} switchovers", db.failovers, db.switchovers);
    if let Some(f) = &db.failover {
        let _ = writeln!(out, "  ! {}", outside(f));
    }
    if let Some(c) = &db.last_change {
        let _ = writeln!(out, "  last change: {}", outside(c));
    }
    out.push('\n');
}

fn list(addrs: &[String]) -> String {
    if addrs.is_empty() { "(nothing)".to_owned() } else { addrs.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::DbServerStatus;

    #[test]
    fn a_servers_text_cannot_drive_the_terminal_or_forge_lines() {
        let db = ReplicationStatus {
            servers: vec![DbServerStatus {
                name: "db1".into(),
                reason: "db1: server error 1105: \u{1b}[2Jwiped\nreplication  db-write -> 203.0.113.9".into(),
                heartbeat_error: Some("bell\u{7}".into()),
                ..DbServerStatus::default()
            }],
            ..ReplicationStatus::default()
        };
        let mut out = String::new();
        render_replication(&mut out, &db);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("server error 1105: \\u{1b}[2Jwiped\\nreplication"), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("replication ")).count(), 1, "{out}");
        assert!(out.contains("heartbeat failing: bell\\u{7}"), "{out}");
    }
}
