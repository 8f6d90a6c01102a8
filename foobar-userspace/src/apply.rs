//! Turning a validated config into data-plane state: the one place that knows how config
//! terms (`untrusted`, `proto = "icmp"`, `syn_rate_per_source`) map onto maps and programs.

use std::net::IpAddr;

use crate::{
    config::{
        Config,
        schema::{self, Firewall, Policy, Proto},
    },
    dataplane::{
        Dataplane, DataplaneError, Trust,
        firewall::Settings,
        rules::AllowRule,
        services::{BackendSpec, Mode, Scheduler, ServiceSpec, Services},
    },
};

/// Each configured interface with the program role it gets.
pub fn interface_trust(config: &Config) -> Vec<(String, Trust)> {
    let d = &config.daemon;
    d.interfaces
        .iter()
        .map(|i| {
            let untrusted = d.untrusted.iter().any(|u| u.get_ref() == i.get_ref());
            (i.get_ref().clone(), if untrusted { Trust::Untrusted } else { Trust::Trusted })
        })
        .collect()
}

/// The allow rules as the data plane takes them, in config order (= counter slots).
pub fn allow_rules(fw: &Firewall) -> Vec<AllowRule> {
    fw.allow
        .iter()
        .map(|r| AllowRule {
            protocol: match (*r.proto.get_ref(), r.to.addr) {
                (Proto::Tcp, _) => 6,
                (Proto::Udp, _) => 17,
                (Proto::Icmp, IpAddr::V4(_)) => 1,
                (Proto::Icmp, IpAddr::V6(_)) => 58,
            },
            dst: r.to,
            ports: r.ports.clone(),
            src: r.from,
        })
        .collect()
}

/// The firewall's policy knobs (default policy, SYN limit) as the data plane takes them.
pub fn firewall_settings(fw: &Firewall) -> Settings {
    Settings {
        default_drop: fw.default_policy == Policy::Drop,
        syn_rate: fw.syn_rate_per_source,
        syn_burst: fw.syn_burst.unwrap_or(fw.syn_rate_per_source),
    }
}

/// Loads the firewall section into the maps: settings, deny list, allow rules.
pub fn firewall(dp: &mut Dataplane, fw: &Firewall) -> Result<(), DataplaneError> {
    dp.set_firewall_settings(firewall_settings(fw))?;
    for cidr in &fw.deny_sources {
        dp.deny_source(*cidr)?;
    }
    dp.set_allow_rules(&allow_rules(fw))
}

/// IP protocol number of a service's protocol.
fn protocol(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Icmp => 1,
    }
}

/// A configured service as the data plane takes it.
pub fn service_spec(s: &schema::Service) -> ServiceSpec {
    ServiceSpec {
        name: s.name.get_ref().clone(),
        vip: *s.vip.get_ref(),
        ports: s.ports.clone(),
        protocol: protocol(s.proto),
        mode: match s.mode {
            schema::ForwardMode::Nat => Mode::Nat,
            schema::ForwardMode::Dsr => Mode::Dsr,
        },
        scheduler: match s.scheduler {
            schema::Scheduler::RoundRobin => Scheduler::RoundRobin,
            schema::Scheduler::WeightedRoundRobin => Scheduler::WeightedRoundRobin,
            schema::Scheduler::Maglev => Scheduler::Maglev,
        },
        backends: s
            .backends
            .iter()
            .map(|b| BackendSpec {
                name: b.name.get_ref().clone(),
                addr: b.address,
                weight: b.weight,
                backup: b.backup,
            })
            .collect(),
    }
}

/// Registers every configured service in the data plane.
pub fn services(dp: &mut Dataplane, config: &Config) -> Result<Services, DataplaneError> {
    let mut services = Services::new();
    for s in &config.services {
        services.add(dp, service_spec(s))?;
    }
    Ok(services)
}
