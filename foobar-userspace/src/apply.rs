//! Turning a validated config into data-plane state: the one place that knows how config
//! terms (`untrusted`, `proto = "icmp"`, `syn_rate_per_source`) map onto maps and programs.

use std::net::IpAddr;

use crate::{
    config::{
        Config,
        schema::{Firewall, Policy, Proto},
    },
    dataplane::{Dataplane, DataplaneError, Role, firewall::Settings, rules::AllowRule},
};

/// Each configured interface with the program role it gets.
pub fn interface_roles(config: &Config) -> Vec<(String, Role)> {
    let d = &config.daemon;
    d.interfaces
        .iter()
        .map(|i| {
            let untrusted = d.untrusted.iter().any(|u| u.get_ref() == i.get_ref());
            (i.get_ref().clone(), if untrusted { Role::Untrusted } else { Role::Trusted })
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

/// Loads the firewall section into the maps: settings, deny list, allow rules.
pub fn firewall(dp: &mut Dataplane, fw: &Firewall) -> Result<(), DataplaneError> {
    dp.set_firewall_settings(Settings {
        default_drop: fw.default_policy == Policy::Drop,
        syn_rate: fw.syn_rate_per_source,
        syn_burst: fw.syn_burst.unwrap_or(fw.syn_rate_per_source),
    })?;
    for cidr in &fw.deny_sources {
        dp.deny_source(*cidr)?;
    }
    dp.set_allow_rules(&allow_rules(fw))
}
