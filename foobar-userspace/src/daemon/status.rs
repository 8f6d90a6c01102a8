//! The report behind `foobar status`: services with their backends' state, health and traffic,
//! firewall rules with their hits, and every non-zero data-plane counter.

use std::time::Instant;

use foobar_common::lb::TrafficStats;

use super::Daemon;
use crate::{
    control::protocol::{
        BackendStatus, DnsStatus, InterfaceStatus, PinsStatus, RuleStatus, ServiceStatus, StatusReport,
    },
    dataplane::{
        Trust,
        services::{Mode, Scheduler},
    },
    xdp_mode::kernel_mode_name,
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
        for a in self.dataplane.attachments() {
            report.interfaces.push(InterfaceStatus {
                name: a.interface.clone(),
                trust: match a.trust {
                    Trust::Trusted => "trusted",
                    Trust::Untrusted => "untrusted",
                }
                .to_owned(),
                mode: kernel_mode_name(a.mode).to_owned(),
                why: a.why.clone(),
                adopted: a.adopted,
            });
        }
        report.pins = self
            .dataplane
            .pins()
            .map(|p| PinsStatus { dir: p.dir.display().to_string(), kept_across_restarts: !p.private });
        let active = self.dataplane.active_flows().unwrap_or_default();
        for svc in self.services.all() {
            let stats = self.dataplane.service_stats(svc.id).unwrap_or_default();
            let rates = self.samples.get(&svc.id);
            let backends: Vec<BackendStatus> = svc
                .spec
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let record = self.backends.get(&svc.spec.name, &b.name);
                    let traffic = self.dataplane.backend_stats(svc.backend_ids[i]).unwrap_or_default();
                    BackendStatus {
                        name: b.name.clone(),
                        address: b.addr.to_string(),
                        weight: b.weight,
                        backup: b.backup,
                        state: record.label().to_owned(),
                        active: svc.active.contains(&i),
                        health: record.health(),
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
                protocol: if svc.spec.protocol == 17 { "udp" } else { "tcp" }.to_owned(),
                mode: match svc.spec.mode {
                    Mode::Nat => "nat",
                    Mode::Dsr => "dsr",
                }
                .to_owned(),
                scheduler: match svc.spec.scheduler {
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
        report.denied_by_config = self.plan.firewall.deny.len();
        report.blocked_by_operator = self.blocked.iter().map(ToString::to_string).collect();
        let rules = &self.plan.firewall.rules;
        let hits = self.dataplane.rule_hits(rules.len()).unwrap_or_default();
        for (i, r) in rules.iter().enumerate() {
            report.firewall_rules.push(RuleStatus { rule: r.to_string(), hits: hits.get(i).copied().unwrap_or(0) });
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
