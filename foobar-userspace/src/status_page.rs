//! The status page on the metrics listener (`/`): what `foobar status` shows, as one HTML
//! page readable at a glance, as HAProxy's stats page is: a table per service with each
//! backend's state in colour, the firewall's rule hits, DNS and replication. No external
//! assets, refreshed by the browser every two seconds.

use std::fmt::Write;

use crate::control::protocol::StatusReport;

/// The page for `r`.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>foobar status</title><style>\
         body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
         table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
         th{background:#f3f3f3}.up{background:#d9f2d9}.down{background:#f8d0d0}.draining,.disabled{background:#fbefc9}\
         .note{color:#a00}small{color:#666}</style></head><body><h1>foobar</h1>",
    );
    let drained = if r.node.drained { " <span class=\"note\">drained</span>" } else { "" };
    let _ = write!(
        out,
        "<p>node{drained} · config sha256 <code>{}</code>",
        text(r.node.config_sha256.get(..12).unwrap_or(""))
    );
    for i in &r.interfaces {
        let _ = write!(out, " · XDP on {} ({}, {})", text(&i.name), text(&i.trust), text(&i.mode));
    }
    out.push_str("</p>");
    for s in &r.services {
        let _ = write!(
            out,
            "<h2>service {} <small>{} {}/{} · {} {} · {} active flows · {:.1} new flows/s</small></h2>",
            text(&s.name),
            text(&s.vip),
            text(&s.protocol),
            s.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
            text(&s.mode),
            text(&s.scheduler),
            s.active_flows,
            s.new_flows_per_sec
        );
        if let Some(note) = &s.note {
            let _ = write!(out, "<p class=\"note\">{}</p>", text(note));
        }
        if let Some(a) = &s.announce {
            let verb = if a.wanted { "announced" } else { "withdrawn" };
            let _ = write!(out, "<p>route {verb} by BIRD protocol {} ({})</p>", text(&a.protocol), text(&a.why));
        }
        out.push_str(
            "<table><tr><th>backend</th><th>address</th><th>state</th><th>last check</th><th>latency</th>\
             <th>active flows</th><th>new flows</th><th>bytes</th></tr>",
        );
        for b in &s.backends {
            let (last, latency) = match &b.health {
                Some(h) => (h.last.clone(), format!("{:.1} ms", h.latency_ms)),
                None => ("(not checked)".to_owned(), String::new()),
            };
            let _ = write!(
                out,
                "<tr class=\"{state}\"><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{latency}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&b.name),
                text(&b.address),
                text(&last),
                b.active_flows,
                b.new_flows,
                b.bytes,
                state = text(&b.state),
            );
        }
        out.push_str("</table>");
    }
    if !r.firewall_rules.is_empty() {
        out.push_str("<h2>firewall</h2><table><tr><th>allow rule</th><th>hits</th></tr>");
        for rule in &r.firewall_rules {
            let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", text(&rule.rule), rule.hits);
        }
        let _ = write!(
            out,
            "</table><p>deny list: {} from the config, {} blocked by the operator on this node</p>",
            r.denied_by_config,
            r.blocked_by_operator.len()
        );
    }
    if let Some(d) = &r.dns {
        let answering = if d.answering.is_empty() { "nothing".to_owned() } else { d.answering.join(", ") };
        let _ = write!(
            out,
            "<h2>DNS {}</h2><p>serial {} · answering for {} · {} queries, {} rate-limited · TCP {}/{} open</p>",
            text(&d.zone),
            d.serial,
            text(&answering),
            d.queries,
            d.rate_limited,
            d.tcp_open,
            d.tcp_limit
        );
    }
    if let Some(db) = &r.replication {
        out.push_str("<h2>databases</h2><table><tr><th>server</th><th>role</th><th>state</th><th>why</th></tr>");
        for s in &db.servers {
            let class = if matches!(s.state.as_str(), "up" | "healthy") { "up" } else { "down" };
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&s.name),
                text(&s.role),
                text(&s.state),
                text(&s.reason)
            );
        }
        let names = |v: &[String]| if v.is_empty() { "(nothing)".to_owned() } else { text(&v.join(", ")) };
        let _ = write!(out, "</table><p>db-write: {} · db-read: {}</p>", names(&db.write), names(&db.read));
    }
    out.push_str("</body></html>\n");
    out
}

/// `s` as HTML text.
fn text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{BackendStatus, ServiceStatus};

    #[test]
    fn backends_show_their_state_and_text_is_escaped() {
        let mut r = StatusReport::default();
        r.services.push(ServiceStatus {
            name: "www".into(),
            backends: vec![BackendStatus { name: "web<1>".into(), state: "down".into(), ..BackendStatus::default() }],
            ..ServiceStatus::default()
        });
        let page = render(&r);
        assert!(page.contains("<tr class=\"down\"><td>web&lt;1&gt;</td>"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\"") && !page.contains("http://") && !page.contains("https://"));
    }
}
