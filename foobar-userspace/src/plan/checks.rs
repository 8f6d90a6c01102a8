//! What each backend's health check probes.

use std::net::SocketAddr;

use crate::{
    config::{Config, schema::HealthKind},
    health::{Check, Http, Target},
};

/// Every backend the config wants checked, on its check port (the service's first port
/// unless `health.port` says).
pub(super) fn compile(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &config.services {
        let Some(h) = &s.health else { continue };
        let Some(port) = h.port.or_else(|| s.ports.first().copied()) else { continue };
        let http = |tls| {
            Check::Http(Http {
                tls,
                path: h.path.clone(),
                host: h.host.clone(),
                expect: h.expect_status,
                expect_body: h.expect_body.clone(),
            })
        };
        let check = match h.kind {
            HealthKind::Tcp => Check::Tcp,
            HealthKind::Http => http(false),
            HealthKind::Https => http(true),
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
                error_limit: h.error_limit,
                ejection_time: h.ejection_time.0,
            });
        }
    }
    out
}
