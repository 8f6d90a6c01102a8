//! Checks that need the whole config: references between tables, duplicates, and values
//! that are well-formed alone but wrong together. Each finds every problem, not just the first.
//! (What the data plane can hold is for the plan to say: `crate::plan`.)

use std::collections::HashSet;

use super::{
    error::{Origin, Problem},
    schema::{
        Affinity, Announce, ClusterNode, Config, ForwardMode, HealthKind, Proto, RecordType, Scheduler, SynProxy,
        node_name_ok,
    },
};

pub fn check(cfg: &Config, interface_exists: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let src = &cfg.origin;
    let mut out = Vec::new();
    daemon(cfg, src, interface_exists, &mut out);
    firewall(cfg, src, &mut out);
    services(cfg, src, &mut out);
    dns(cfg, src, &mut out);
    replication(cfg, src, &mut out);
    conntrack(cfg, src, &mut out);
    cluster(cfg, src, &mut out);
    out
}

fn daemon(cfg: &Config, src: &Origin, interface_exists: &dyn Fn(&str) -> bool, out: &mut Vec<Problem>) {
    let d = &cfg.daemon;
    if !node_name_ok(&d.node()) {
        let (at, what) = match &d.node_name {
            Some(n) => (n.span(), format!("`{}`", n.get_ref())),
            None => (0..0, format!("the host name `{}`", d.node())),
        };
        out.push(src.problem(
            at,
            "daemon.node_name",
            format!("{what} cannot name this node (up to 64 letters, digits and _ . -): set daemon.node_name"),
        ));
    }
    if d.interfaces.is_empty() {
        out.push(src.problem(
            0..0,
            "daemon.interfaces",
            "names no interface: list where XDP attaches, e.g. [\"front\", \"back\"]",
        ));
    }
    let mut seen = HashSet::new();
    for i in &d.interfaces {
        if !seen.insert(i.get_ref()) {
            out.push(src.problem(i.span(), "daemon.interfaces", format!("`{}` is listed twice", i.get_ref())));
        } else if !interface_exists(i.get_ref()) {
            out.push(src.problem(
                i.span(),
                "daemon.interfaces",
                format!("no interface `{}` exists here (see `ip link`)", i.get_ref()),
            ));
        }
    }
    for u in &d.untrusted {
        if !d.interfaces.iter().any(|i| i.get_ref() == u.get_ref()) {
            out.push(src.problem(
                u.span(),
                "daemon.untrusted",
                format!("`{}` is not in daemon.interfaces: the firewall runs only where XDP is attached", u.get_ref()),
            ));
        }
    }
    if let Some(v) = &d.vip_interface
        && !matches!(v.get_ref().as_str(), "none" | "lo")
        && !interface_exists(v.get_ref())
    {
        out.push(src.problem(
            v.span(),
            "daemon.vip_interface",
            format!("no interface `{}` exists here (see `ip link`; or \"lo\", or \"none\")", v.get_ref()),
        ));
    }
}

/// Whether `name` can be a BIRD symbol: a letter or underscore, then letters, digits and
/// underscores (so nothing foobar sends BIRD can be more than one word).
fn bird_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name handed to `announce.command` as one argument (no shell sees it): what routes and
/// their labels are made of, and nothing that starts like an option.
fn route_name(name: &str) -> bool {
    !name.starts_with('-') && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

fn firewall(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    for (i, rule) in cfg.firewall.allow.iter().enumerate() {
        if *rule.proto.get_ref() == Proto::Icmp && !rule.ports.is_empty() {
            out.push(src.problem(
                rule.proto.span(),
                format!("firewall.allow[{i}].ports"),
                "ICMP has no ports: remove `ports`",
            ));
        }
        if rule.ports.contains(&0) {
            out.push(src.problem(rule.proto.span(), format!("firewall.allow[{i}].ports"), "port 0 is not a port"));
        }
    }
    if cfg.firewall.syn_burst == Some(0) {
        out.push(src.problem(0..0, "firewall.syn_burst", "must be at least 1 (or leave it out to use the rate)"));
    }
}

fn services(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    for (i, s) in cfg.services.iter().enumerate() {
        if let Some(a) = &s.affinity
            && *a.get_ref() != Affinity::None
            && s.scheduler != Scheduler::Maglev
        {
            out.push(src.problem(
                a.span(),
                format!("service[{i}].affinity"),
                "source affinity picks from a Maglev ring: set scheduler = \"maglev\"",
            ));
        }
        let Some(a) = &s.announce else { continue };
        let by_command = cfg.announce.as_ref().is_some_and(|an| an.command.is_some());
        let unspeakable = if by_command {
            (!route_name(a.get_ref())).then_some("a route name (letters, digits and _ . : / -)")
        } else {
            (!bird_symbol(a.get_ref())).then_some("a BIRD protocol name (letters, digits and _)")
        };
        if let Some(wanted) = unspeakable {
            out.push(src.problem(
                a.span(),
                format!("service[{i}].announce"),
                format!("`{}` is not {wanted}", a.get_ref()),
            ));
        } else if cfg.announce.as_ref().is_none_or(|an| an.bird_socket.is_none() && an.command.is_none()) {
            out.push(src.problem(
                a.span(),
                format!("service[{i}].announce"),
                "needs an [announce] table naming BIRD's control socket (bird_socket) or a command",
            ));
        }
    }
    if let Some(Announce { bird_socket: Some(_), command: Some(c) }) = &cfg.announce {
        out.push(src.problem(c.span(), "announce.command", "set bird_socket or command, not both"));
    }
    if let Some(c) = cfg.announce.as_ref().and_then(|an| an.command.as_ref()) {
        if c.get_ref().first().is_none_or(|p| !p.starts_with('/')) {
            out.push(src.problem(
                c.span(),
                "announce.command",
                "must start with the program's absolute path (it runs without a shell or PATH search)",
            ));
        }
    }
    let mut names = HashSet::new();
    let mut listeners = HashSet::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let at = s.name.span();
        if !names.insert(s.name.get_ref().as_str()) {
            out.push(src.problem(
                at.clone(),
                format!("service[{i}].name"),
                format!("service `{}` is defined twice", s.name.get_ref()),
            ));
        }
        if s.ports.is_empty() {
            out.push(src.problem(at.clone(), format!("service[{i}].ports"), "lists no port"));
        }
        if s.proto == Proto::Icmp {
            out.push(src.problem(at.clone(), format!("service[{i}].proto"), "must be tcp or udp"));
        }
        for &port in &s.ports {
            if port == 0 {
                out.push(src.problem(at.clone(), format!("service[{i}].ports"), "port 0 is not a port"));
            } else if !listeners.insert((*s.vip.get_ref(), s.proto, port)) {
                out.push(src.problem(
                    s.vip.span(),
                    format!("service[{i}].vip"),
                    format!("{} {:?} port {port} is already served by another service", s.vip.get_ref(), s.proto),
                ));
            }
        }
        if let Some(proxy) = &s.syn_proxy {
            let key = format!("service[{i}].syn_proxy");
            if s.proto != Proto::Tcp {
                out.push(src.problem(proxy.span(), key, "the SYN proxy is for TCP services: remove `syn_proxy`"));
            } else if s.mode == ForwardMode::Dsr && *proxy.get_ref() == SynProxy::Always {
                out.push(src.problem(
                    proxy.span(),
                    key,
                    "a DSR service's backends answer clients themselves, so the proxy cannot translate their \
                     sequence numbers: use \"under-flood\" (Maglev services then keep no state under a flood) or \"off\"",
                ));
            }
        }
        if s.backends.is_empty() {
            out.push(src.problem(
                at.clone(),
                format!("service[{i}].backend"),
                "has no backend: add [[service.backend]] entries",
            ));
        }
        let mut backend_names = HashSet::new();
        for (j, b) in s.backends.iter().enumerate() {
            if !backend_names.insert(b.name.get_ref().as_str()) {
                out.push(src.problem(
                    b.name.span(),
                    format!("service[{i}].backend[{j}].name"),
                    format!("backend `{}` is listed twice", b.name.get_ref()),
                ));
            }
            if b.address.is_ipv4() != s.vip.get_ref().is_ipv4() {
                out.push(src.problem(
                    b.name.span(),
                    format!("service[{i}].backend[{j}].address"),
                    "must be of the VIP's address family",
                ));
            }
            if b.weight == 0 {
                out.push(src.problem(
                    b.name.span(),
                    format!("service[{i}].backend[{j}].weight"),
                    "must be at least 1 (drain the backend instead)",
                ));
            }
        }
        if let Some(h) = &s.health {
            if h.rise == 0 || h.fall == 0 {
                out.push(src.problem(at.clone(), format!("service[{i}].health"), "rise and fall must be at least 1"));
            }
            if h.port == Some(0) {
                out.push(src.problem(at.clone(), format!("service[{i}].health.port"), "must be a port, 1 to 65535"));
            }
            if h.kind == HealthKind::Tcp && (h.host.is_some() || h.path != "/" || h.expect_body.is_some()) {
                out.push(src.problem(
                    at.clone(),
                    format!("service[{i}].health"),
                    "host, path and expect_body are for kind = \"http\" or \"https\"",
                ));
            }
            let timeout = h.timeout.get_ref();
            if h.interval.0.is_zero() || timeout.0.is_zero() || *timeout > h.interval {
                let span = if h.timeout.span().is_empty() { at.clone() } else { h.timeout.span() };
                out.push(src.problem(
                    span,
                    format!("service[{i}].health.timeout"),
                    "must be above zero and at most the interval",
                ));
            }
        }
    }
}

fn dns(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    let Some(dns) = &cfg.dns else { return };
    if dns.listen.is_empty() {
        out.push(src.problem(dns.zone.span(), "dns.listen", "lists no address"));
    }
    if dns.zone.get_ref().trim_matches('.').is_empty() {
        out.push(src.problem(dns.zone.span(), "dns.zone", "is empty"));
    }
    for (i, r) in dns.records.iter().enumerate() {
        let at = r.name.span();
        let key = |k: &str| format!("dns.record[{i}].{k}");
        let sources = [r.value.is_some(), r.service.is_some(), r.replication.is_some()];
        if sources.iter().filter(|s| **s).count() != 1 {
            out.push(src.problem(at.clone(), key("value"), "needs exactly one of `value`, `service` or `replication`"));
        }
        if let Some(svc) = &r.service
            && !cfg.services.iter().any(|s| s.name.get_ref() == svc.get_ref())
        {
            out.push(src.problem(svc.span(), key("service"), format!("no [[service]] is named `{}`", svc.get_ref())));
        }
        if r.replication.is_some() && cfg.replication.is_none() {
            out.push(src.problem(at.clone(), key("replication"), "needs a [replication] section"));
        }
        if (r.service.is_some() || r.replication.is_some()) && !matches!(r.kind, RecordType::A | RecordType::Aaaa) {
            out.push(src.problem(at.clone(), key("type"), "dynamic records must be A or AAAA"));
        }
        if let Some(v) = &r.value {
            let bad = match r.kind {
                RecordType::A => v.parse::<std::net::Ipv4Addr>().is_err(),
                RecordType::Aaaa => v.parse::<std::net::Ipv6Addr>().is_err(),
                RecordType::Mx => v.split_once(' ').is_none_or(|(p, _)| p.parse::<u16>().is_err()),
                RecordType::Cname | RecordType::Txt => false,
            };
            if bad {
                out.push(src.problem(at.clone(), key("value"), format!("`{v}` is not valid {:?} data", r.kind)));
            }
        }
    }
}

fn conntrack(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    let c = &cfg.conntrack;
    let reuse = std::time::Duration::from_nanos(foobar_common::lb::LbSettings::DEFAULT.nat_reuse_ns);
    for (key, value) in [("tcp_idle", &c.tcp_idle), ("udp_idle", &c.udp_idle), ("opening", &c.opening)] {
        if value.get_ref().0.is_zero() {
            out.push(src.problem(value.span(), format!("conntrack.{key}"), "must be above zero"));
        }
    }
    if c.closing.get_ref().0 < reuse {
        out.push(src.problem(
            c.closing.span(),
            "conntrack.closing",
            format!(
                "must be at least {}s: a closed flow's NAT port is reused only once it has been quiet that long",
                reuse.as_secs()
            ),
        ));
    }
    // Left unset, `opening` is cut to a shorter `tcp_idle` (see `Conntrack::settings`).
    if !c.opening.span().is_empty() && c.opening.get_ref().0 > c.tcp_idle.get_ref().0 {
        out.push(src.problem(c.opening.span(), "conntrack.opening", "must be at most `tcp_idle`"));
    }
    let [first, last] = *c.nat_ports.get_ref();
    if first < 1024 || first > last {
        out.push(src.problem(
            c.nat_ports.span(),
            "conntrack.nat_ports",
            format!("[{first}, {last}] must be [first, last] with 1024 <= first <= last"),
        ));
    }
    if *c.flood_new_flows.get_ref() == 0 {
        out.push(src.problem(c.flood_new_flows.span(), "conntrack.flood_new_flows", "must be at least 1"));
    }
}

fn cluster(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    let Some(c) = &cfg.cluster else { return };
    let me = cfg.daemon.node();
    if c.node(&me).is_none() {
        let at = c.nodes.first().map_or(c.sync_key_file.span(), |n| n.name.span());
        out.push(src.problem(
            at,
            "cluster.node",
            format!("no [[cluster.node]] is named `{me}`, this node (daemon.node_name)"),
        ));
    }
    if c.nodes.len() >= foobar_common::lb::NAT_PEER_SLOTS as usize {
        let most = foobar_common::lb::NAT_PEER_SLOTS - 1;
        out.push(src.problem(c.nodes[0].name.span(), "cluster.node", format!("at most {most} nodes")));
    }
    if let Some(a) = &c.announce
        && !bird_symbol(a.get_ref())
        && !route_name(a.get_ref())
    {
        out.push(src.problem(
            a.span(),
            "cluster.announce",
            format!("`{}` is not a protocol or route name", a.get_ref()),
        ));
    }
    if c.sync_interval.get_ref().0.is_zero() {
        out.push(src.problem(c.sync_interval.span(), "cluster.sync_interval", "must be above zero"));
    }
    if !cfg.conntrack.nat_ports.span().is_empty() {
        out.push(src.problem(
            cfg.conntrack.nat_ports.span(),
            "conntrack.nat_ports",
            "a cluster's nodes each have their own: set nat_ports in [[cluster.node]] instead",
        ));
    }
    for (i, n) in c.nodes.iter().enumerate() {
        let [first, last] = *n.nat_ports.get_ref();
        if first < 1024 || first > last {
            out.push(src.problem(
                n.nat_ports.span(),
                format!("cluster.node[{i}].nat_ports"),
                format!("[{first}, {last}] must be [first, last] with 1024 <= first <= last"),
            ));
        }
        for (j, m) in c.nodes.iter().enumerate().take(i) {
            let clash = |what: &str| format!("the same {what} as cluster.node[{j}] (`{}`)", m.name.get_ref());
            if m.name.get_ref() == n.name.get_ref() {
                out.push(src.problem(n.name.span(), format!("cluster.node[{i}].name"), clash("name")));
            }
            if m.nat_address.get_ref() == n.nat_address.get_ref() {
                out.push(src.problem(n.nat_address.span(), format!("cluster.node[{i}].nat_address"), clash("address")));
            }
            if overlap(m, n) {
                out.push(src.problem(n.nat_ports.span(), format!("cluster.node[{i}].nat_ports"), clash("ports")));
            }
        }
    }
}

/// Whether two nodes' NAT port ranges share a port.
fn overlap(a: &ClusterNode, b: &ClusterNode) -> bool {
    let ([a0, a1], [b0, b1]) = (*a.nat_ports.get_ref(), *b.nat_ports.get_ref());
    a0 <= b1 && b0 <= a1
}

fn replication(cfg: &Config, src: &Origin, out: &mut Vec<Problem>) {
    let Some(r) = &cfg.replication else { return };
    if r.interval.0.is_zero() || r.max_lag.0.is_zero() {
        out.push(src.problem(r.primary.span(), "replication.interval", "interval and max_lag must be above zero"));
    }
    let timeout = r.timeout.get_ref().0;
    if timeout.is_zero() || timeout > r.interval.0 {
        let at = if r.timeout.span().is_empty() { r.primary.span() } else { r.timeout.span() };
        out.push(src.problem(
            at,
            "replication.timeout",
            "must be above zero and at most `interval` (a check round must end before the next)",
        ));
    }
    let table = r.heartbeat_table.get_ref();
    let identifier = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !table.split_once('.').is_some_and(|(db, t)| identifier(db) && identifier(t)) {
        let at = if r.heartbeat_table.span().is_empty() { r.primary.span() } else { r.heartbeat_table.span() };
        out.push(src.problem(
            at,
            "replication.heartbeat_table",
            format!("`{table}` must be `database.table`, letters, digits and `_` only"),
        ));
    }
    let span_or = |span: std::ops::Range<usize>| if span.is_empty() { r.primary.span() } else { span };
    if *r.failover_after.get_ref() == 0 {
        out.push(src.problem(
            span_or(r.failover_after.span()),
            "replication.failover_after",
            "must be at least 1 check",
        ));
    }
    if r.replication_user.is_some() != r.replication_password_file.is_some() {
        out.push(src.problem(
            r.primary.span(),
            "replication.replication_user",
            "`replication_user` and `replication_password_file` go together",
        ));
    }
    if *r.auto_failover.get_ref() {
        let at = span_or(r.auto_failover.span());
        if r.replication_user.is_none() {
            out.push(src.problem(
                at.clone(),
                "replication.auto_failover",
                "needs `replication_user` and `replication_password_file`: the other replicas log in to the new \
                 primary with them",
            ));
        }
        if r.replicas.is_empty() {
            out.push(src.problem(at, "replication.auto_failover", "needs at least one replica to promote"));
        }
    }
    let mut names = HashSet::from([r.primary.get_ref().name.as_str()]);
    for (i, rep) in r.replicas.iter().enumerate() {
        if !names.insert(rep.name.as_str()) {
            out.push(src.problem(
                r.primary.span(),
                format!("replication.replicas[{i}].name"),
                format!("`{}` is used twice", rep.name),
            ));
        }
    }
}
