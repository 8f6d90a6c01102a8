//! What decides a backend's data-plane state: the operator's word (enabled, draining,
//! disabled) and, where a health check runs, its verdict. Disabled or unhealthy means no new
//! flows; draining means no new flows but existing ones stay (they always do: conntrack).

use std::collections::HashMap;

use crate::{
    control::protocol::{BackendAction, HealthStatus},
    dataplane::services::BackendState,
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

/// One backend's operator state and latest health.
#[derive(Clone, Debug, Default)]
pub struct Control {
    pub admin: Admin,
    /// `None` while no health check has reported (or none is configured): assumed healthy.
    pub health: Option<HealthStatus>,
    /// How long its health checks took.
    pub latency: Histogram,
}

impl Control {
    /// The state the data plane should hold.
    pub fn effective(&self) -> BackendState {
        let healthy = self.health.as_ref().is_none_or(|h| h.healthy);
        match (self.admin, healthy) {
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
}

/// Every backend's control state, by (service, backend) name.
#[derive(Debug, Default)]
pub struct Backends(HashMap<(String, String), Control>);

impl Backends {
    pub fn get(&self, service: &str, backend: &str) -> Control {
        self.0.get(&(service.to_owned(), backend.to_owned())).cloned().unwrap_or_default()
    }

    pub fn entry(&mut self, service: &str, backend: &str) -> &mut Control {
        self.0.entry((service.to_owned(), backend.to_owned())).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(healthy: bool) -> Option<HealthStatus> {
        Some(HealthStatus { healthy, last: String::new(), latency_ms: 0.0 })
    }

    #[test]
    fn operator_and_health_combine() {
        let c = |admin, health| Control { admin, health, latency: Histogram::default() };
        assert_eq!(c(Admin::Enabled, None).effective(), BackendState::Up);
        assert_eq!(c(Admin::Enabled, health(false)).effective(), BackendState::Down);
        assert_eq!(c(Admin::Enabled, health(false)).label(), "down");
        assert_eq!(c(Admin::Draining, health(true)).effective(), BackendState::Draining);
        assert_eq!(c(Admin::Disabled, health(true)).effective(), BackendState::Down);
        assert_eq!(c(Admin::Disabled, health(true)).label(), "disabled");
    }
}
