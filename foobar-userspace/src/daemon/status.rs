//! The report behind `foobar status`: services with their backends' state, health and traffic,
//! firewall rules with their hits, and every non-zero data-plane counter.

use std::time::Instant;

use foobar_common::lb::TrafficStats;

use super::Daemon;
use crate::{
    config::schema::{ForwardMode, Proto, Scheduler},
    control::protocol::{BackendStatus, DnsStatus, RuleStatus, ServiceStatus, StatusReport},
};

/// A service's traffic at one moment, and the rates since the one before.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: Instant,
    stats: TrafficStats,
    new_flows_per_sec: f64,
    bytes_per_sec: f64,
}

impl Daemon {
    /// Samples every service's traffic (once a second) so `status` can show rates.
    pub(super) fn sample(&mut self, now: Instant) {
        for svc in self.services.all() {
            let Ok(stats) = self.dataplane.service_stats(svc.id) else { continue };
            let (flows, bytes) = match self.samples.get(&svc.id) {
                Some(prev) => {
                    let secs = now.duration_since(prev.at).as_secs_f64().max(1e-3);
                    (
                        stats.new_flows.saturating_sub(prev.stats.new_flows) as f64 / secs,
                        stats.bytes.saturating_sub(prev.stats.bytes) as f64 / secs,
                    )
                }
                None => (0.0, 0.0),
            };
            self.samples.insert(svc.id, Sample { at: now, stats, new_flows_per_sec: flows, bytes_per_sec: bytes });
        }
    }

    pub(super) fn status(&self) -> StatusReport {
        let mut report = StatusReport::default();
        let active = self.dataplane.active_flows().unwrap_or_default();
        for (svc, cfg) in self.services.all().iter().zip(&self.config.services) {
            let stats = self.dataplane.service_stats(svc.id).unwrap_or_default();
            let rates = self.samples.get(&svc.id);
            let backends: Vec<BackendStatus> = svc
                .spec
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let control = self.backends.get(&svc.spec.name, &b.name);
                    let traffic = self.dataplane.backend_stats(svc.backend_ids[i]).unwrap_or_default();
                    BackendStatus {
                        name: b.name.clone(),
                        address: b.addr.to_string(),
                        weight: b.weight,
                        backup: b.backup,
                        state: control.label().to_owned(),
                        active: svc.active.contains(&i),
                        health: control.health.clone(),
                        packets: traffic.packets,
                        bytes: traffic.bytes,
                        new_flows: traffic.new_flows,
                        active_flows: active.by_backend.get(&svc.backend_ids[i]).copied().unwrap_or(0),
                    }
                })
                .collect();
            let note = svc
                .active
                .is_empty()
                .then(|| "no backend is available (all down, draining or disabled): new flows are dropped".to_owned());
            report.services.push(ServiceStatus {
                name: svc.spec.name.clone(),
                vip: svc.spec.vip.to_string(),
                ports: svc.spec.ports.clone(),
                protocol: proto_name(cfg.proto).to_owned(),
                mode: match cfg.mode {
                    ForwardMode::Nat => "nat",
                    ForwardMode::Dsr => "dsr",
                }
                .to_owned(),
                scheduler: match cfg.scheduler {
                    Scheduler::RoundRobin => "round-robin",
                    Scheduler::WeightedRoundRobin => "weighted-round-robin",
                    Scheduler::Maglev => "maglev",
                }
                .to_owned(),
                packets: stats.packets,
                bytes: stats.bytes,
                new_flows: stats.new_flows,
                new_flows_per_sec: rates.map_or(0.0, |r| r.new_flows_per_sec),
                bytes_per_sec: rates.map_or(0.0, |r| r.bytes_per_sec),
                active_flows: active.by_service.get(&svc.id).copied().unwrap_or(0),
                note,
                backends,
            });
        }
        let rules = &self.config.firewall.allow;
        let hits = self.dataplane.rule_hits(rules.len()).unwrap_or_default();
        for (i, r) in rules.iter().enumerate() {
            let ports = if r.ports.is_empty() {
                "any port".to_owned()
            } else {
                format!("ports {}", r.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
            };
            let from = r.from.map(|f| format!(" from {f}")).unwrap_or_default();
            report.firewall_rules.push(RuleStatus {
                rule: format!("{} to {} {ports}{from}", proto_name(*r.proto.get_ref()), r.to),
                hits: hits.get(i).copied().unwrap_or(0),
            });
        }
        if let Some(dns) = &self.dns {
            report.dns = Some(DnsStatus {
                zone: dns.zone.clone(),
                serial: dns.serial(),
                listen: dns.listen.iter().map(ToString::to_string).collect(),
                answering: self.live().services.into_iter().collect(),
                queries: dns.stats.queries.load(std::sync::atomic::Ordering::Relaxed),
                rate_limited: dns.stats.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
                responses: dns.stats.by_rcode().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            });
        }
        report.replication = self.databases.status();
        if let Ok(c) = self.dataplane.counters() {
            report.counters = c.nonzero().map(|(c, v)| (c.name().to_owned(), v)).collect();
        }
        report
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    }
}
