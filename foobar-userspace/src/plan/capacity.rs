//! The `[capacity]` table, checked against what the plan needs of it: what the data plane
//! could not hold is a config problem `foobar check` names, not a failure half-way through a start.

use foobar_common::lb::SERVICE_KEYS_PER_SERVICE;
use toml::Spanned;

use crate::{
    config::{Config, Problem},
    dataplane::{Capacity, services::ServiceSpec},
};

pub(super) fn compile(config: &Config, services: &[ServiceSpec], problems: &mut Vec<Problem>) -> Capacity {
    let c = &config.capacity;
    let src = &config.origin;
    // Defaulted values have no position of their own: their problems point at the services.
    let at = |v: &Spanned<u32>| {
        if v.span().is_empty() { config.services.first().map_or(0..0, |s| s.name.span()) } else { v.span() }
    };
    let capacity = Capacity {
        services: *c.services.get_ref(),
        backends: *c.backends.get_ref(),
        flows: *c.flows.get_ref(),
        nat_bindings: *c.nat_bindings.get_ref(),
        deny_entries: *c.deny_entries.get_ref(),
        ring_slots: *c.ring_slots.get_ref(),
    };
    for (key, v) in [
        ("services", &c.services),
        ("backends", &c.backends),
        ("flows", &c.flows),
        ("nat_bindings", &c.nat_bindings),
        ("deny_entries", &c.deny_entries),
        ("ring_slots", &c.ring_slots),
    ] {
        if *v.get_ref() == 0 {
            problems.push(src.problem(at(v), format!("capacity.{key}"), "must be at least 1"));
        }
    }
    let mut over = |v: &Spanned<u32>, key: &str, needed: u64, what: &str| {
        if needed > u64::from(*v.get_ref()) {
            let message = format!("is {} but the config needs {needed} {what}", v.get_ref());
            problems.push(src.problem(at(v), format!("capacity.{key}"), message));
        }
    };
    over(&c.services, "services", services.len() as u64, "services");
    let ports: u64 = services.iter().map(|s| s.ports.len() as u64).sum();
    let ports_per_service = u64::from(SERVICE_KEYS_PER_SERVICE);
    over(&c.services, "services", ports.div_ceil(ports_per_service), "services' room for its ports (eight each)");
    over(&c.backends, "backends", services.iter().map(|s| s.backends.len() as u64).sum(), "backend entries");
    let slots: u64 = services.iter().map(|s| 2 * u64::from(s.ring_half())).sum();
    over(&c.ring_slots, "ring_slots", slots, "ring slots (a Maglev service takes 131074)");
    let (v4, v6) = config
        .firewall
        .deny_sources
        .iter()
        .fold((0u64, 0u64), |(a, b), d| if d.addr.is_ipv4() { (a + 1, b) } else { (a, b + 1) });
    over(&c.deny_entries, "deny_entries", v4.max(v6), "deny-list prefixes of one family");
    capacity
}
