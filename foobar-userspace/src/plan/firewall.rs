//! The firewall section as the data plane takes it.

use std::net::IpAddr;

use crate::{
    config::{
        Config, Problem,
        schema::{Policy, Proto},
    },
    dataplane::{
        firewall::Settings,
        rules::{AllowRule, CompiledRules, compile as compile_rules},
    },
    net::Cidr,
};

/// The firewall a plan runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall {
    pub settings: Settings,
    pub deny: Vec<Cidr>,
    /// The allow rules in config order (rule `i` counts its hits in slot `i`).
    pub rules: Vec<AllowRule>,
    /// The same rules as allow-trie entries.
    pub compiled: CompiledRules,
}

/// The firewall of `config`; `None` (with the problem noted) when the data plane cannot hold
/// its rules.
pub(super) fn compile(config: &Config, problems: &mut Vec<Problem>) -> Option<Firewall> {
    let fw = &config.firewall;
    let rules: Vec<AllowRule> = fw
        .allow
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
        .collect();
    let compiled = match compile_rules(&rules) {
        Ok(c) => c,
        Err(e) => {
            let at = fw.allow.first().map_or(0..0, |r| r.proto.span());
            problems.push(config.origin.problem(at, "firewall.allow", e.to_string()));
            return None;
        }
    };
    let settings = Settings {
        default_drop: fw.default_policy == Policy::Drop,
        syn_rate: fw.syn_rate_per_source,
        syn_burst: fw.syn_burst.unwrap_or(fw.syn_rate_per_source),
        syn_net_rate: fw.syn_rate_per_net,
    };
    Some(Firewall { settings, deny: fw.deny_sources.clone(), rules, compiled })
}
