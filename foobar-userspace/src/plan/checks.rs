//! What each backend's health check probes.

use std::net::SocketAddr;

use crate::{
    config::{Config, schema::HealthKind},
    health::{Check, Target},
};

/// Every backend the config wants checked, probing its service's first port.
pub(super) fn compile(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &config.services {
        let (Some(h), Some(&port)) = (&s.health, s.ports.first()) else { continue };
        let check = match h.kind {
            HealthKind::Tcp => Check::Tcp,
            HealthKind::Http => {
                Check::Http { path: h.path.clone(), expect_status: h.expect_status, expect_body: h.expect_body.clone() }
            }
        };
        for b in &s.backends {
            out.push(Target {
                service: s.name.get_ref().clone(),
                backend: b.name.get_ref().clone(),
                addr: SocketAddr::new(b.address, port),
                check: check.clone(),
                interval: h.interval.0,
                timeout: h.timeout.get_ref().0,
                rise: h.rise,
                fall: h.fall,
            });
        }
    }
    out
}
