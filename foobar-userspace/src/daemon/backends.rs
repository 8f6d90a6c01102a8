//! One record per backend, owned by the event loop (pingora keeps its health the same way):
//! the operator's word (enabled, draining, disabled), what its checks say (rise/fall
//! hysteresis over the checkers' raw results), the last result and how long checks take.
//! Disabled or unhealthy means no new flows; draining means no new flows but existing ones
//! stay (they always do: conntrack).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    control::protocol::{BackendAction, HealthStatus},
    dataplane::services::BackendState,
    health::{Hysteresis, Probe, ProbeError, Target, ejection::Ejection},
    metrics::Histogram,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Admin {
    #[default]
    Enabled,
    Draining,
    Disabled,
}

impl From<BackendAction> for Admin {
    fn from(a: BackendAction) -> Admin {
        match a {
            BackendAction::Enable => Admin::Enabled,
            BackendAction::Drain => Admin::Draining,
            BackendAction::Disable => Admin::Disabled,
        }
    }
}

/// The last probe's outcome.
#[derive(Clone, Debug)]
pub struct LastProbe {
    pub result: Result<String, ProbeError>,
    pub latency: Duration,
}

/// One backend's record.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub admin: Admin,
    /// The hysteresis over its probe results; `None` while no check runs for it (assumed healthy).
    pub checks: Option<Hysteresis>,
    /// `None` until a probe has reported.
    pub last: Option<LastProbe>,
    /// How long its health checks took.
    pub latency: Histogram,
    /// Whether its checks have once said what it is (see [`Record::settled`]).
    settled_once: bool,
    /// Its passive failures as last counted (`None` before the first count: the pinned
    /// counters carry a previous run's).
    passive_seen: Option<u64>,
    /// The last time passive health took it out, and why.
    pub passive_note: Option<String>,
    /// Passive health's ejections: while one lasts it is out, whatever its checks say.
    pub ejection: Ejection,
}

impl Record {
    /// Whether its checks pass (or none run) and passive health has not ejected it.
    pub fn healthy(&self) -> bool {
        self.checks.as_ref().is_none_or(Hysteresis::healthy) && !self.ejection.active()
    }

    /// Whether its checks have said what it is since the daemon started: a probe came back
    /// agreeing with the state (so a backend that starts out healthy but fails its first
    /// probes is not taken for up). Once settled it stays so: a later failure streak is the
    /// hysteresis's business. A backend not checked is settled as healthy.
    pub fn settled(&self) -> bool {
        self.checks.is_none() || self.settled_once
    }

    /// The state the data plane should hold.
    pub fn effective(&self) -> BackendState {
        match (self.admin, self.healthy()) {
            (Admin::Disabled, _) | (Admin::Enabled, false) => BackendState::Down,
            (Admin::Draining, _) => BackendState::Draining,
            (Admin::Enabled, true) => BackendState::Up,
        }
    }

    /// How `status` names it: up, down (unhealthy), draining or disabled.
    pub fn label(&self) -> &'static str {
        match (self.admin, self.effective()) {
            (Admin::Disabled, _) => "disabled",
            (Admin::Draining, _) => "draining",
            (_, BackendState::Down) => "down",
            _ => "up",
        }
    }

    /// Takes one probe's result; `Some(healthy)` when it flips the backend's health. A result
    /// for a backend no check runs for any more (a checker stopped by a reload) is ignored.
    pub fn observe(&mut self, probe: &Probe) -> Option<bool> {
        let checks = self.checks.as_mut()?;
        self.latency.observe(probe.latency.as_secs_f64());
        self.last = Some(LastProbe { result: probe.result.clone(), latency: probe.latency });
        let changed = checks.record(probe.result.is_ok());
        self.settled_once |= checks.settled();
        changed
    }

    /// Takes its passive failure count so far, at `now`. When `limit` or more came since the
    /// last count, it is ejected (for `base` or longer, see [`Ejection`]) and must pass
    /// `rise` checks after: the failures counted, how long it is out and the how-manieth
    /// ejection that is. `None` when nothing changes (it may be out already).
    pub fn observe_passive(
        &mut self,
        total: u64,
        limit: u32,
        base: Duration,
        now: Instant,
    ) -> Option<(u64, Duration, u32)> {
        let since = total.saturating_sub(self.passive_seen.replace(total)?);
        if limit == 0 || since < u64::from(limit) {
            return None;
        }
        self.checks.as_mut()?.fail_now();
        let (hold, count) = self.ejection.eject(now, base)?;
        Some((since, hold, count))
    }

    /// Its health as `status` shows it, once a probe has reported.
    pub fn health(&self) -> Option<HealthStatus> {
        let last = self.last.as_ref()?;
        let text = match &last.result {
            Ok(answer) => answer.clone(),
            Err(e) => e.to_string(),
        };
        Some(HealthStatus { healthy: self.healthy(), last: text, latency_ms: last.latency.as_secs_f64() * 1000.0 })
    }
}

/// Every backend's record, by (service, backend) name.
#[derive(Debug, Default)]
pub struct Backends(HashMap<(String, String), Record>);

impl Backends {
    pub fn get(&self, service: &str, backend: &str) -> Record {
        self.0.get(&(service.to_owned(), backend.to_owned())).cloned().unwrap_or_default()
    }

    pub fn entry(&mut self, service: &str, backend: &str) -> &mut Record {
        self.0.entry((service.to_owned(), backend.to_owned())).or_default()
    }

    /// Makes the checks of `targets` the ones records follow: a backend checked before keeps
    /// its state and streak under the new rise and fall; one no longer checked is assumed
    /// healthy again.
    pub fn follow(&mut self, targets: &[Target]) {
        for (key, record) in &mut self.0 {
            if !targets.iter().any(|t| (&t.service, &t.backend) == (&key.0, &key.1)) {
                record.checks = None;
                record.last = None;
            }
        }
        for t in targets {
            let record = self.entry(&t.service, &t.backend);
            record.checks = Some(match record.checks.take() {
                Some(h) => h.retuned(t.rise, t.fall),
                None => Hysteresis::new(t.rise, t.fall),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ok: bool) -> Probe {
        let result = if ok { Ok("HTTP 200".to_owned()) } else { Err(ProbeError::NoStatusLine("FOO 200".into())) };
        Probe { service: "www".into(), backend: "web1".into(), result, latency: Duration::from_millis(2) }
    }

    fn target(rise: u32, fall: u32) -> Target {
        Target {
            service: "www".into(),
            backend: "web1".into(),
            addr: "198.51.100.11:80".parse().expect("addr"),
            check: crate::health::Check::Tcp,
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(300),
            rise,
            fall,
            error_limit: 0,
            ejection_time: Duration::from_secs(10),
        }
    }

    #[test]
    fn passive_failures_over_the_limit_in_a_second_take_it_out_for_the_ejection_time() {
        let (base, t0) = (Duration::from_secs(10), Instant::now());
        let mut r = Record { checks: Some(Hysteresis::new(2, 3)), ..Record::default() };
        assert_eq!(r.observe_passive(500, 5, base, t0), None, "the first count is the baseline (a previous run's)");
        assert_eq!(r.observe_passive(504, 5, base, t0), None, "four in a second: under the limit");
        assert!(r.healthy());
        assert_eq!(r.observe_passive(509, 5, base, t0), Some((5, base, 1)));
        assert!(!r.healthy());
        assert_eq!(r.observe_passive(520, 5, base, t0), None, "already out");
        assert_eq!(r.observe_passive(600, 0, base, t0), None, "limit 0: passive health is off");
        // Its checks pass `rise` times: still out until the ejection ends.
        r.observe(&probe(true));
        r.observe(&probe(true));
        assert!(!r.healthy(), "back before the ejection time");
        assert!(r.ejection.release(t0 + base));
        assert!(r.healthy());
    }

    #[test]
    fn operator_and_health_combine() {
        let checked = |admin, healthy: bool| {
            let mut r = Record { admin, checks: Some(Hysteresis::new(1, 1)), ..Record::default() };
            r.observe(&probe(healthy));
            r
        };
        assert_eq!(Record::default().effective(), BackendState::Up);
        assert_eq!(checked(Admin::Enabled, false).effective(), BackendState::Down);
        assert_eq!(checked(Admin::Enabled, false).label(), "down");
        assert_eq!(checked(Admin::Draining, true).effective(), BackendState::Draining);
        assert_eq!(checked(Admin::Disabled, true).effective(), BackendState::Down);
        assert_eq!(checked(Admin::Disabled, true).label(), "disabled");
    }

    #[test]
    fn settled_once_its_checks_agree_with_its_state_and_then_for_good() {
        let mut r = Record { checks: Some(Hysteresis::new(2, 2)), ..Record::default() };
        assert!(!r.settled(), "no probe yet");
        r.observe(&probe(false));
        assert!(!r.settled(), "failing, but not down yet");
        r.observe(&probe(false));
        assert!(r.settled() && !r.healthy(), "down: settled");
        r.observe(&probe(true));
        assert!(r.settled(), "one success on the way up does not unsettle it");
        assert!(Record::default().settled(), "a backend no check runs for");
    }

    #[test]
    fn records_keep_their_state_across_new_checks_and_forget_it_without() {
        let mut b = Backends::default();
        b.follow(&[target(2, 1)]);
        assert_eq!(b.entry("www", "web1").observe(&probe(false)), Some(false));
        b.follow(&[target(3, 3)]);
        assert!(!b.get("www", "web1").healthy(), "a reload must not bring a down backend back");
        assert_eq!(b.entry("www", "web1").observe(&probe(true)), None);
        assert_eq!(b.entry("www", "web1").observe(&probe(true)), None, "the new rise is 3");
        assert_eq!(b.entry("www", "web1").observe(&probe(true)), Some(true));
        b.entry("www", "web1").observe(&probe(false));
        b.follow(&[]);
        assert!(b.get("www", "web1").healthy(), "an unchecked backend is assumed healthy");
        assert_eq!(b.entry("www", "web1").observe(&probe(false)), None, "a stopped checker's late result");
    }
}
