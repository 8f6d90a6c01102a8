//! What `/metrics` shows: data-plane counters, rule hits, service and backend traffic, backend
//! state and health gauges, and health-check latency histograms.

use foobar_common::counters::Counter;

use super::Daemon;
use crate::{
    control::protocol::{BackendStatus, ServiceStatus},
    metrics::{Exposition, LATENCY_BUCKETS},
};

/// A per-service counter family: name, help, and how to read it from a service's status.
type ServiceFamily = (&'static str, &'static str, fn(&ServiceStatus) -> u64);
/// A per-backend family: name, type, help, and how to read it from a backend's status.
type BackendFamily = (&'static str, &'static str, &'static str, fn(&BackendStatus) -> f64);

impl Daemon {
    pub(super) fn metrics(&self) -> String {
        let report = self.status();
        let mut m = Exposition::default();
        m.family("foobar_xdp_attached", "gauge", "1 for each interface XDP runs on, with its trust and mode.");
        for i in &report.interfaces {
            let labels = [("interface", i.name.as_str()), ("trust", i.trust.as_str()), ("mode", i.mode.as_str())];
            m.sample("foobar_xdp_attached", &labels, 1.0);
        }
        m.family("foobar_build_info", "gauge", "The running build: its version.");
        m.sample("foobar_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        let reload = &self.last_config;
        m.single(
            "foobar_config_last_reload_successful",
            "gauge",
            "1 if the last config load (start or reload) succeeded, 0 if it was refused.",
            f64::from(u8::from(reload.successful)),
        );
        m.single(
            "foobar_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the running config was last loaded successfully (start or reload), in Unix time.",
            reload.succeeded_at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        );
        // Every data-plane counter as its own metric, from zero.
        let counters = self.dataplane.counters().unwrap_or_default();
        for c in Counter::ALL {
            let name = format!("foobar_xdp_{}_total", c.name());
            m.single(&name, "counter", c.help().trim(), counters.get(*c) as f64);
        }
        m.family("foobar_firewall_rule_hits_total", "counter", "Packets each allow rule admitted.");
        for (i, r) in report.firewall_rules.iter().enumerate() {
            m.sample(
                "foobar_firewall_rule_hits_total",
                &[("rule", &i.to_string()), ("description", &r.rule)],
                r.hits as f64,
            );
        }
        let families: [ServiceFamily; 3] = [
            ("foobar_service_packets_total", "Packets balanced for the service, both ways.", |s| s.packets),
            ("foobar_service_bytes_total", "Bytes balanced for the service, both ways.", |s| s.bytes),
            ("foobar_service_new_flows_total", "New flows scheduled for the service.", |s| s.new_flows),
        ];
        for (name, help, value) in families {
            m.family(name, "counter", help);
            for s in &report.services {
                m.sample(name, &[("service", &s.name)], value(s) as f64);
            }
        }
        m.single(
            "foobar_node_drained",
            "gauge",
            "1 while `foobar node drain` holds.",
            f64::from(u8::from(report.node.drained)),
        );
        m.family("foobar_config_info", "gauge", "The running config's SHA-256 (nodes running the same file agree).");
        m.sample("foobar_config_info", &[("sha256", &report.node.config_sha256), ("node", &report.node.name)], 1.0);
        m.family(
            "foobar_service_announced",
            "gauge",
            "1 while the routing daemon (BIRD or announce.command) has confirmed the service's route announced.",
        );
        for s in &report.services {
            if let Some(a) = &s.announce {
                let on = a.announced == Some(true);
                m.sample(
                    "foobar_service_announced",
                    &[("service", &s.name), ("protocol", &a.protocol)],
                    f64::from(u8::from(on)),
                );
            }
        }
        m.family("foobar_service_active_flows", "gauge", "Tracked flows still live.");
        for s in &report.services {
            m.sample("foobar_service_active_flows", &[("service", &s.name)], s.active_flows as f64);
        }
        if let Some(c) = &report.flow_census {
            m.single(
                "foobar_flow_census_age_seconds",
                "gauge",
                "Age of the active-flow counts (the connection table is counted off the event loop).",
                c.age_s,
            );
            m.single(
                "foobar_flow_census_duration_seconds",
                "gauge",
                "How long the last count of the connection table took.",
                c.took_ms / 1000.0,
            );
        }
        m.family(
            "foobar_service_under_flood",
            "gauge",
            "1 while the service's new flows come faster than flood_new_flows.",
        );
        for s in &report.services {
            m.sample("foobar_service_under_flood", &[("service", &s.name)], f64::from(u8::from(s.under_flood)));
        }
        if let Some(d) = &report.dns {
            m.single(
                "foobar_dns_soa_serial",
                "gauge",
                "The zone's SOA serial (the config's: nodes running one config agree).",
                f64::from(d.serial),
            );
            m.family(
                "foobar_dns_service_answered",
                "gauge",
                "1 while DNS answers the service's records (it has a backend).",
            );
            for s in &report.services {
                let on = d.answering.contains(&s.name);
                m.sample("foobar_dns_service_answered", &[("service", &s.name)], f64::from(u8::from(on)));
            }
        }
        m.family("foobar_service_available_backends", "gauge", "Backends taking new flows.");
        for s in &report.services {
            let n = s.backends.iter().filter(|b| b.active).count();
            m.sample("foobar_service_available_backends", &[("service", &s.name)], n as f64);
        }
        let per_backend: [BackendFamily; 5] = [
            ("foobar_backend_packets_total", "counter", "Packets to and from the backend.", |b| b.packets as f64),
            ("foobar_backend_bytes_total", "counter", "Bytes to and from the backend.", |b| b.bytes as f64),
            ("foobar_backend_new_flows_total", "counter", "New flows given to the backend.", |b| b.new_flows as f64),
            ("foobar_backend_active", "gauge", "1 while the backend takes new flows.", |b| {
                f64::from(u8::from(b.active))
            }),
            ("foobar_backend_healthy", "gauge", "1 while health checks pass (or none run).", |b| {
                f64::from(u8::from(b.health.as_ref().is_none_or(|h| h.healthy)))
            }),
        ];
        for (name, kind, help, value) in per_backend {
            m.family(name, kind, help);
            for s in &report.services {
                for b in &s.backends {
                    m.sample(name, &[("service", &s.name), ("backend", &b.name)], value(b));
                }
            }
        }
        m.family(
            "foobar_backend_passive_failures_total",
            "counter",
            "Passive health failures: RSTs to a SYN (refused) or before the backend answered (reset), ICMP unreachables (unreachable), handshakes unanswered until a SYN was said again (timeout).",
        );
        for s in &report.services {
            for b in &s.backends {
                for (kind, n) in [
                    ("refused", b.passive_refused),
                    ("reset", b.passive_resets),
                    ("unreachable", b.passive_unreachable),
                    ("timeout", b.passive_timeouts),
                ] {
                    let labels = [("service", s.name.as_str()), ("backend", b.name.as_str()), ("kind", kind)];
                    m.sample("foobar_backend_passive_failures_total", &labels, n as f64);
                }
            }
        }
        // A state is a gauge of its own, one series per possible state (1 for the current),
        // so counters never move to a new series when a backend changes state.
        m.family("foobar_backend_state", "gauge", "1 for the backend's state: up, draining, disabled or down.");
        for s in &report.services {
            for b in &s.backends {
                for state in ["up", "draining", "disabled", "down"] {
                    let labels = [("service", s.name.as_str()), ("backend", b.name.as_str()), ("state", state)];
                    m.sample("foobar_backend_state", &labels, f64::from(u8::from(b.state == state)));
                }
            }
        }
        if let Some(d) = &report.dns {
            let dns: [(&str, &str, &str, u64); 7] = [
                ("foobar_dns_queries_total", "counter", "DNS queries received.", d.queries),
                (
                    "foobar_dns_answered_in_xdp_total",
                    "counter",
                    "DNS queries answered in XDP from the rendered zone.",
                    d.answered_in_xdp,
                ),
                (
                    "foobar_dns_answered_rendered_total",
                    "counter",
                    "DNS queries the userspace server answered from the rendered zone.",
                    d.answered_rendered,
                ),
                (
                    "foobar_dns_rate_limited_total",
                    "counter",
                    "DNS answers held back by response rate limiting (dropped or slipped).",
                    d.rate_limited,
                ),
                (
                    "foobar_dns_slipped_total",
                    "counter",
                    "Rate-limited DNS queries answered empty and truncated, so resolvers retry over TCP.",
                    d.slipped,
                ),
                ("foobar_dns_tcp_connections", "gauge", "DNS-over-TCP connections open.", d.tcp_open),
                (
                    "foobar_dns_tcp_refused_total",
                    "counter",
                    "DNS-over-TCP connections closed on accept because dns.tcp_connections were open.",
                    d.tcp_refused,
                ),
            ];
            for (name, kind, help, value) in dns {
                m.single(name, kind, help, value as f64);
            }
            m.family("foobar_dns_responses_total", "counter", "DNS responses by response code.");
            for (rcode, n) in &d.responses {
                m.sample("foobar_dns_responses_total", &[("rcode", rcode)], *n as f64);
            }
        }
        if let Some(r) = &report.replication {
            super::databases::metrics(&mut m, r);
        }
        let name = "foobar_health_check_duration_seconds";
        m.family(name, "histogram", "How long health checks took.");
        for s in &report.services {
            for b in &s.backends {
                let h = self.backends.get(&s.name, &b.name).latency;
                let labels = [("service", s.name.as_str()), ("backend", b.name.as_str())];
                for (count, bound) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                    let le = bound.to_string();
                    m.sample(&format!("{name}_bucket"), &[labels[0], labels[1], ("le", &le)], *count as f64);
                }
                m.sample(&format!("{name}_bucket"), &[labels[0], labels[1], ("le", "+Inf")], h.count as f64);
                m.sample(&format!("{name}_sum"), &labels, h.sum);
                m.sample(&format!("{name}_count"), &labels, h.count as f64);
            }
        }
        if let Some(sync) = &self.sync {
            flow_sync(&mut m, &sync.counts());
        }
        m.finish()
    }
}

/// The cluster's flow sync: flows sent and taken on, datagrams refused by why.
fn flow_sync(m: &mut Exposition, c: &crate::sync::Counts) {
    let singles: [(&str, &str, &str, u64); 6] = [
        ("foobar_sync_flows_sent_total", "counter", "NAT flows sent to the cluster's peers.", c.flows_sent),
        ("foobar_sync_datagrams_sent_total", "counter", "Flow-sync datagrams sent, over all peers.", c.datagrams_sent),
        (
            "foobar_sync_send_failures_total",
            "counter",
            "Flow-sync datagrams the socket would not take.",
            c.send_failures,
        ),
        (
            "foobar_sync_flows_adopted_total",
            "counter",
            "Peers' NAT flows written into this node's tables.",
            c.flows_adopted,
        ),
        (
            "foobar_sync_flows_ignored_total",
            "counter",
            "Peers' flows not taken: held here as this node's own, or of a service, backend or port range this node does not know.",
            c.flows_kept_own + c.flows_unknown,
        ),
        ("foobar_sync_bindings_held", "gauge", "NAT bindings this node holds for its peers' flows.", c.bindings_held),
    ];
    for (name, kind, help, value) in singles {
        m.single(name, kind, help, value as f64);
    }
    let name = "foobar_sync_datagrams_refused_total";
    m.family(name, "counter", "Flow-sync datagrams refused, by why.");
    for (reason, n) in [
        ("malformed", c.refused_malformed),
        ("bad_signature", c.refused_bad_tag),
        ("replayed", c.refused_replayed),
        ("stranger", c.refused_stranger),
    ] {
        m.sample(name, &[("reason", reason)], n as f64);
    }
}
