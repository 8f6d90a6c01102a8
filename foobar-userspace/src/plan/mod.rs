//! The config compiled, once, into what the daemon runs: each interface's trust, the
//! firewall's settings, deny list and compiled allow rules, the services as the data plane
//! takes them, the DNS zone and the health checks. `foobar check` compiles a plan, `foobar run`
//! applies one whole, and a reload compiles the new file into a plan and applies the difference
//! between the two. A problem found while compiling names the file, line and key, as the
//! config's own checks do.
//!
//! - `firewall`: settings, deny list and allow rules (compiled into trie entries).
//! - `services`: service and backend specs.
//! - `zone`: the DNS zone's names and static data.
//! - `checks`: what each backend's health check probes.
//! - `capacity`: the data plane's table sizes, checked against what the rest needs.

mod capacity;
mod checks;
mod firewall;
mod services;
mod zone;

use std::path::Path;

pub use self::firewall::Firewall;
use crate::{
    config::{self, Config, ConfigError},
    dataplane::{Capacity, Trust, services::ServiceSpec},
    dns::zone::ZoneSpec,
    health::Target,
};

/// What a config asks the daemon to run.
#[derive(Debug)]
pub struct Plan {
    /// The config compiled (the daemon's own settings are read from it as they are).
    pub config: Config,
    /// Interfaces XDP attaches to, in config order, with their trust.
    pub interfaces: Vec<(String, Trust)>,
    pub firewall: Firewall,
    /// Services in config order.
    pub services: Vec<ServiceSpec>,
    pub zone: Option<ZoneSpec>,
    /// One health check per checked backend.
    pub checks: Vec<Target>,
    /// How big the data plane's tables are.
    pub capacity: Capacity,
    /// The connection table's timeouts, NAT ports and flood threshold (`[conntrack]`).
    pub lb: foobar_common::lb::LbSettings,
    /// This node's name (`daemon.node_name`, or the host name as it was at compile time).
    pub node: String,
    /// SHA-256 of the config's text, hex: nodes of a cluster that show the same run the same.
    pub digest: String,
}

impl Plan {
    /// Reads, validates and compiles the config at `path` (its interfaces must exist here).
    pub fn load(path: &Path) -> Result<Plan, ConfigError> {
        Plan::compile(config::load(path)?)
    }

    /// Compiles a validated config; every problem it finds is reported at once.
    pub fn compile(config: Config) -> Result<Plan, ConfigError> {
        let mut problems = Vec::new();
        let firewall = firewall::compile(&config, &mut problems);
        let zone = zone::compile(&config, &mut problems);
        let services = services::compile(&config);
        let capacity = capacity::compile(&config, &services, &mut problems);
        let (Some(firewall), true) = (firewall, problems.is_empty()) else {
            return Err(problems.into());
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, config.origin.text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Plan {
            digest,
            interfaces: interfaces(&config),
            firewall,
            services,
            zone,
            checks: checks::compile(&config),
            capacity,
            lb: lb_settings(&config),
            node: config.daemon.node(),
            config,
        })
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// `[conntrack]` as the data plane takes it, with this node's own NAT ports in a cluster.
fn lb_settings(config: &Config) -> foobar_common::lb::LbSettings {
    let mut lb = config.conntrack.settings();
    if let Some((_, me)) = config.cluster.as_ref().and_then(|c| c.node(&config.daemon.node())) {
        let [first, last] = *me.nat_ports.get_ref();
        lb.nat_port_min = u32::from(first);
        lb.nat_port_count = u32::from(last.saturating_sub(first)) + 1;
    }
    lb
}

/// Each configured interface with its trust.
fn interfaces(config: &Config) -> Vec<(String, Trust)> {
    let d = &config.daemon;
    d.interfaces
        .iter()
        .map(|i| {
            let untrusted = d.untrusted.iter().any(|u| u.get_ref() == i.get_ref());
            (i.get_ref().clone(), if untrusted { Trust::Untrusted } else { Trust::Trusted })
        })
        .collect()
}

#[cfg(test)]
mod tests;
