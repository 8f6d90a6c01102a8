//! Compiling allow rules into allow-trie entries.
//!
//! Each rule becomes one entry per destination port (port 0 for "every port") under its
//! protocol and destination prefix. The kernel reads only the longest matching entry, so
//! every entry also receives the rules of entries that cover it (same family, protocol and
//! port, shorter destination prefix). Within an entry rules keep config order, which is the
//! order the kernel tries them in.

use std::{collections::BTreeMap, fmt, net::IpAddr};

use foobar_common::firewall::{MAX_RULES, RULES_PER_KEY, RuleRef, RuleSet};

use crate::net::{Cidr, words};

/// One allow rule as the data plane takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP; ICMPv6 rules use 58).
    pub protocol: u8,
    pub dst: Cidr,
    /// Destination ports; empty means every port.
    pub ports: Vec<u16>,
    pub src: Option<Cidr>,
}

impl fmt::Display for AllowRule {
    /// As `status` lists it: `tcp to 192.0.2.10/32 ports 80,443 from 203.0.113.0/24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            6 => "tcp",
            17 => "udp",
            1 | 58 => "icmp",
            _ => "ip",
        };
        write!(f, "{proto} to {}", self.dst)?;
        if self.ports.is_empty() {
            write!(f, " any port")?;
        } else {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            write!(f, " ports {}", ports.join(","))?;
        }
        if let Some(src) = self.src {
            write!(f, " from {src}")?;
        }
        Ok(())
    }
}

/// Where an allow-trie entry sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryKey {
    pub protocol: u8,
    pub port: u16,
    pub dst: IpAddr,
    pub prefix: u8,
}

impl EntryKey {
    fn covers(&self, other: &EntryKey) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && self.prefix < other.prefix
            && Cidr { addr: self.dst, prefix: self.prefix }.contains(other.dst)
    }
}

/// Rules the data plane cannot hold, with what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    #[error("{0} allow rules; at most {MAX_RULES} are supported")]
    TooMany(usize),
    #[error(
        "more than {RULES_PER_KEY} allow rules apply to protocol {protocol} port {port} towards {dst}: \
         merge rules that differ only by source"
    )]
    TooManyOnOneKey { protocol: u8, port: u16, dst: Cidr },
}

/// Allow rules as allow-trie entries, ready to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledRules(pub(super) BTreeMap<EntryKey, RuleSet>);

impl CompiledRules {
    pub fn entries(&self) -> impl Iterator<Item = (&EntryKey, &RuleSet)> {
        self.0.iter()
    }
}

pub fn compile(rules: &[AllowRule]) -> Result<CompiledRules, RulesError> {
    if rules.len() > MAX_RULES as usize {
        return Err(RulesError::TooMany(rules.len()));
    }
    let mut own: BTreeMap<EntryKey, Vec<RuleRef>> = BTreeMap::new();
    for (id, rule) in rules.iter().enumerate() {
        let reference = RuleRef {
            id: id as u32,
            src_prefix_len: rule.src.map_or(0, |s| u32::from(s.prefix)),
            src: rule.src.map_or([0; 4], |s| words(s.addr)),
        };
        let ports = if rule.ports.is_empty() { vec![0] } else { rule.ports.clone() };
        for port in ports {
            let key = EntryKey { protocol: rule.protocol, port, dst: rule.dst.addr, prefix: rule.dst.prefix };
            own.entry(key).or_default().push(reference);
        }
    }
    let mut out = BTreeMap::new();
    for key in own.keys() {
        let mut refs: Vec<RuleRef> =
            own.iter().filter(|(k, _)| *k == key || k.covers(key)).flat_map(|(_, r)| r.iter().copied()).collect();
        refs.sort_by_key(|r| r.id);
        if refs.len() > RULES_PER_KEY {
            return Err(RulesError::TooManyOnOneKey {
                protocol: key.protocol,
                port: key.port,
                dst: Cidr { addr: key.dst, prefix: key.prefix },
            });
        }
        let mut set = RuleSet { len: refs.len() as u32, ..RuleSet::default() };
        set.rules[..refs.len()].copy_from_slice(&refs);
        out.insert(*key, set);
    }
    Ok(CompiledRules(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: u8, dst: &str, ports: &[u16], src: Option<&str>) -> AllowRule {
        AllowRule {
            protocol,
            dst: dst.parse().expect("cidr"),
            ports: ports.to_vec(),
            src: src.map(|s| s.parse().expect("cidr")),
        }
    }

    #[test]
    fn one_entry_per_port_and_any_port_under_zero() {
        let sets =
            compile(&[rule(6, "192.0.2.10", &[80, 443], None), rule(1, "192.0.2.10", &[], None)]).expect("compile");
        let ports: Vec<_> = sets.0.keys().map(|k| (k.protocol, k.port)).collect();
        assert_eq!(ports, [(1, 0), (6, 80), (6, 443)]);
    }

    #[test]
    fn longer_prefixes_inherit_covering_rules_in_config_order() {
        let sets = compile(&[
            rule(6, "192.0.2.0/24", &[8080], None),
            rule(6, "192.0.2.10/32", &[8080], Some("203.0.113.0/24")),
            rule(6, "192.0.2.10/32", &[9090], None),
        ])
        .expect("compile");
        let host = sets.0.iter().find(|(k, _)| k.prefix == 32 && k.port == 8080).map(|(_, s)| s).expect("host entry");
        assert_eq!(host.len, 2);
        assert_eq!((host.rules[0].id, host.rules[1].id), (0, 1));
        let net = sets.0.iter().find(|(k, _)| k.prefix == 24).map(|(_, s)| s).expect("net entry");
        assert_eq!(net.len, 1, "a covering entry does not take rules of the entries it covers");
    }

    #[test]
    fn rules_describe_themselves_as_status_lists_them() {
        assert_eq!(rule(6, "192.0.2.10", &[80, 443], None).to_string(), "tcp to 192.0.2.10/32 ports 80,443");
        assert_eq!(
            rule(1, "192.0.2.0/24", &[], Some("203.0.113.0/24")).to_string(),
            "icmp to 192.0.2.0/24 any port from 203.0.113.0/24"
        );
    }

    #[test]
    fn too_many_rules_on_one_key_name_it() {
        let rules: Vec<_> = (0..5).map(|i| rule(17, "192.0.2.53", &[53], Some(&format!("203.0.113.{i}")))).collect();
        let err = compile(&rules).expect_err("five rules");
        assert_eq!(
            err.to_string(),
            "more than 4 allow rules apply to protocol 17 port 53 towards 192.0.2.53/32: merge rules that differ only by source"
        );
    }
}
