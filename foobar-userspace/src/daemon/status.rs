//! The report behind `foobar status`: services with their backends' state, health and traffic,
//! firewall rules with their hits, and every non-zero data-plane counter.

use std::time::Instant;

use foobar_common::{counters::Counter, lb::TrafficStats};

use super::Daemon;
use crate::{
    control::protocol::{
        AnnounceStatus, BackendStatus, CensusStatus, DnsStatus, InterfaceStatus, NodeStatus, PinsStatus, RuleStatus,
        ServiceStatus, StatusReport,
    },
    dataplane::{
        Trust,
        services::{Mode, Scheduler, ServiceSpec, SynProxy},
    },
    xdp_mode::kernel_mode_name,
};

/// A service's traffic at one moment, and the rates since the one before.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: Instant,
    stats: TrafficStats,
    pub(super) new_flows_per_sec: f64,
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
        if let Err(e) = self.dataplane.refresh_surroundings() {
            tracing::warn!(error = %e, "cannot read the link MTUs and routing rules again; the data plane keeps the last ones");
        }
        self.observe_passive();
        self.rebalance();
        // The flow sync settles by time too (peers that are down never say they are done).
        if self.sync.is_some() {
            self.refresh_announcements();
        }
    }

    /// Passive health: each checked backend's failures since the last sample against its
    /// check's `error_limit`; one over it is ejected at once, and one whose ejection is due
    /// comes back (if its checks pass).
    fn observe_passive(&mut self) {
        let now = std::time::Instant::now();
        let mut changed = Vec::new();
        for t in self.plan.checks.iter().filter(|t| t.error_limit > 0) {
            let Some(svc) = self.services.all().iter().find(|s| s.spec.name == t.service) else { continue };
            let Some(i) = svc.spec.backends.iter().position(|b| b.name == t.backend) else { continue };
            let Ok(stats) = self.dataplane.backend_stats(svc.backend_ids[i]) else { continue };
            let timeouts = self.dataplane.backend_timeouts(svc.backend_ids[i]).unwrap_or_default();
            let record = self.backends.entry(&t.service, &t.backend);
            if record.ejection.release(now) {
                changed.push((t.service.clone(), t.backend.clone(), "passive health's ejection ended".to_owned()));
            }
            let Some((n, hold, count)) =
                record.observe_passive(stats.passive_failures() + timeouts, t.error_limit, t.ejection_time, now)
            else {
                continue;
            };
            let why = format!(
                "{n} passive failures in a second (limit {}); so far {} refused, {} reset before answering, {} \
                 unreachable, {timeouts} timed out; out for {hold:?} (ejection {count})",
                t.error_limit, stats.refused, stats.reset_unanswered, stats.unreachable
            );
            tracing::warn!(
                service = t.service,
                backend = t.backend,
                reason = why,
                "passive health took the backend out"
            );
            record.passive_note = Some(why);
            changed.push((t.service.clone(), t.backend.clone(), "passive health".to_owned()));
        }
        for (service, backend, why) in changed {
            if let Err(e) = self.publish(&service, &backend, &why) {
                tracing::warn!(service, backend, error = %e, "cannot apply health change");
            }
        }
    }

    pub fn status(&self) -> StatusReport {
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
        let count = self.census.as_ref().and_then(crate::dataplane::census::Census::latest);
        report.flow_census = count
            .as_ref()
            .map(|c| CensusStatus { age_s: c.at.elapsed().as_secs_f64(), took_ms: c.took.as_secs_f64() * 1000.0 });
        let active = count.map(|c| c.flows).unwrap_or_default();
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
                        passive_refused: traffic.refused,
                        passive_resets: traffic.reset_unanswered,
                        passive_unreachable: traffic.unreachable,
                        passive_timeouts: self.dataplane.backend_timeouts(svc.backend_ids[i]).unwrap_or_default(),
                        passive_note: record.passive_note.clone(),
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
                    Mode::Dnat => "dnat",
                }
                .to_owned(),
                scheduler: match svc.spec.scheduler {
                    Scheduler::RoundRobin => "round-robin",
                    Scheduler::WeightedRoundRobin => "weighted-round-robin",
                    Scheduler::Maglev => "maglev",
                    Scheduler::LeastConnections => "least-connections",
                }
                .to_owned(),
                packets: stats.packets,
                bytes: stats.bytes,
                new_flows: stats.new_flows,
                new_flows_per_sec: rates.map_or(0.0, |r| r.new_flows_per_sec),
                bytes_per_sec: rates.map_or(0.0, |r| r.bytes_per_sec),
                active_flows: active.by_service.get(&svc.id).copied().unwrap_or(0),
                note,
                syn_proxy: match svc.spec.syn_proxy {
                    SynProxy::Always => "always",
                    SynProxy::UnderFlood => "under-flood",
                    SynProxy::Off => "off",
                }
                .to_owned(),
                under_flood: self.dataplane.under_flood(svc.id).unwrap_or(false),
                exposed: exposure(&svc.spec),
                announce: self.announcement(&svc.spec.name),
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
        let counters = self.dataplane.counters().ok();
        let xdp = |c: Counter| counters.as_ref().map_or(0, |s| s.get(c));
        if let Some(dns) = &self.dns {
            let user = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            // XDP's own: what it answered, limited and slipped (a query it passed on is
            // counted by the server).
            let in_xdp = xdp(Counter::DnsXdpAnswered) + xdp(Counter::DnsXdpRateLimited);
            report.dns = Some(DnsStatus {
                zone: dns.zone.clone(),
                serial: dns.serial(),
                listen: dns.listen.iter().map(ToString::to_string).collect(),
                answering: self.live().services.into_iter().collect(),
                queries: user(&dns.stats.queries) + in_xdp,
                rate_limited: user(&dns.stats.rate_limited) + xdp(Counter::DnsXdpRateLimited),
                slipped: user(&dns.stats.slipped) + xdp(Counter::DnsXdpSlipped),
                answered_in_xdp: xdp(Counter::DnsXdpAnswered),
                answered_rendered: user(&dns.stats.answered_rendered),
                tcp_open: dns.tcp.in_use() as u64,
                tcp_limit: dns.tcp.limit() as u64,
                tcp_refused: dns.tcp.refused(),
                responses: dns.stats.by_rcode().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            });
        }
        report.replication = self.databases.status();
        report.node = NodeStatus {
            name: self.plan.node.clone(),
            drained: self.node_drained,
            config_sha256: self.plan.digest.clone(),
            sync: self.sync.as_ref().map(crate::sync::FlowSync::status),
        };
        if let Some(c) = counters {
            report.counters = c.nonzero().map(|(c, v)| (c.name().to_owned(), v)).collect();
        }
        report
    }
}

/// What a spoofed flood could still do to `spec`: a TCP service whose SYNs make state with
/// no cookie in front, whose hash cannot stand in for a table either.
fn exposure(spec: &ServiceSpec) -> Option<String> {
    let keeps_no_state_under_flood = spec.mode == Mode::Dsr && spec.scheduler == Scheduler::Maglev;
    if spec.protocol != 6 || keeps_no_state_under_flood {
        return None;
    }
    match (spec.mode, spec.syn_proxy) {
        (Mode::Dsr, SynProxy::Off | SynProxy::UnderFlood) => Some(
            "exposed to spoofed SYN floods: DSR cannot be SYN-proxied and round-robin needs a flow entry per SYN \
             (scheduler = \"maglev\" keeps no state under a flood)"
                .to_owned(),
        ),
        (Mode::Nat, SynProxy::Off) => Some(
            "exposed to spoofed SYN floods: syn_proxy = \"off\" gives every SYN a flow and a NAT port for opening_ns"
                .to_owned(),
        ),
        (Mode::Dnat, SynProxy::Off) => Some(
            "exposed to spoofed SYN floods: syn_proxy = \"off\" gives every SYN a flow and a binding for opening_ns"
                .to_owned(),
        ),
        _ => None,
    }
}

impl Daemon {
    /// Service `name`'s announcement as the announcer last saw it (`None`: not announced).
    fn announcement(&self, name: &str) -> Option<AnnounceStatus> {
        let protocol = self.announced_by(name)?;
        let Some(announcer) = &self.announcer else {
            return Some(AnnounceStatus {
                protocol: protocol.to_owned(),
                why: "not serving yet".into(),
                ..AnnounceStatus::default()
            });
        };
        let (wanted, applied) = announcer.report().into_iter().find(|(w, _)| w.protocol == protocol)?;
        Some(AnnounceStatus {
            protocol: wanted.protocol,
            wanted: wanted.announce == Some(true),
            why: wanted.why,
            announced: applied.announced,
            error: applied.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_which_services_a_spoofed_flood_still_reaches() {
        let spec = |mode, scheduler, syn_proxy, protocol| ServiceSpec {
            mode,
            scheduler,
            syn_proxy,
            protocol,
            ..ServiceSpec::tcp("www", "192.0.2.10".parse().expect("ip"), 80, Vec::new())
        };
        let rr = Scheduler::RoundRobin;
        assert_eq!(exposure(&spec(Mode::Nat, rr, SynProxy::Always, 6)), None);
        assert_eq!(exposure(&spec(Mode::Dsr, Scheduler::Maglev, SynProxy::UnderFlood, 6)), None);
        assert_eq!(exposure(&spec(Mode::Nat, rr, SynProxy::Off, 17)), None, "UDP has no SYNs");
        assert!(exposure(&spec(Mode::Dsr, rr, SynProxy::UnderFlood, 6)).is_some_and(|e| e.contains("maglev")));
        assert!(exposure(&spec(Mode::Nat, rr, SynProxy::Off, 6)).is_some_and(|e| e.contains("syn_proxy")));
    }
}
