//! The firewall's maps, changed in place while traffic flows: no reload, no lost flows.
//!
//! Every change is a sequence of single-entry map updates, each atomic in the kernel. Rule
//! replacement writes all new entries before deleting the ones no longer wanted, so a packet
//! never meets a moment where a rule present before and after the change is missing.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use aya::maps::{Array, LpmTrie, MapData, PerCpuArray, lpm_trie::Key};
use foobar_common::firewall::{
    ALLOW_FIXED_BITS, ALLOW_V4_MAP, ALLOW_V6_MAP, AllowDataV4, AllowDataV6, DENY_V4_FILTER_MAP, DENY_V4_MAP,
    DENY_V6_MAP, FirewallSettings, MAX_RULES, RULE_HITS_MAP, RuleSet, SETTINGS_MAP, allow_data_v4, allow_data_v6,
};

use super::{
    Dataplane, DataplaneError,
    rules::{CompiledRules, EntryKey},
};
use crate::net::{Cidr, words};

/// Policy knobs that are not rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub default_drop: bool,
    /// New TCP connections per second per source (an IPv4 address, an IPv6 /64); 0: no limit.
    pub syn_rate: u32,
    pub syn_burst: u32,
    /// New TCP connections per second from one IPv4 /24, all its sources together; 0: no limit.
    pub syn_net_rate: u32,
}

impl Dataplane {
    pub fn set_firewall_settings(&mut self, s: Settings) -> Result<(), DataplaneError> {
        let mut map: Array<&mut MapData, FirewallSettings> = Array::try_from(self.map_mut(SETTINGS_MAP)?)?;
        map.set(0, FirewallSettings::with_syn_limit(s.default_drop, s.syn_rate, s.syn_burst, s.syn_net_rate), 0)?;
        Ok(())
    }

    /// Adds `cidr` to the source deny list (idempotent).
    pub fn deny_source(&mut self, cidr: Cidr) -> Result<(), DataplaneError> {
        match cidr.addr {
            IpAddr::V4(a) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 4], u32> = LpmTrie::try_from(self.map_mut(DENY_V4_MAP)?)?;
                trie.insert(&Key::new(u32::from(cidr.prefix), a.octets()), 1, 0)?;
                self.set_deny_filter(a, cidr.prefix, true)?;
            }
            IpAddr::V6(a) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> = LpmTrie::try_from(self.map_mut(DENY_V6_MAP)?)?;
                trie.insert(&Key::new(u32::from(cidr.prefix), a.octets()), 1, 0)?;
            }
        }
        Ok(())
    }

    /// Brings the IPv4 deny filter in line with `a/prefix` being denied or not. Called after
    /// the trie changed: a bit set before the entry exists would only send lookups to a miss,
    /// and a bit cleared before the entry goes would let a denied source through.
    fn set_deny_filter(&mut self, a: Ipv4Addr, prefix: u8, denied: bool) -> Result<(), DataplaneError> {
        // The map and the filter are two fields: borrowed apart, not through `map_mut`.
        let map = self.ebpf.map_mut(DENY_V4_FILTER_MAP).ok_or(DataplaneError::MissingMap(DENY_V4_FILTER_MAP))?;
        self.deny_filter.set(map, u32::from(a), prefix, denied)
    }

    /// Removes `cidr` from the deny list; false if it was not there.
    pub fn undeny_source(&mut self, cidr: Cidr) -> Result<bool, DataplaneError> {
        let removed = match cidr.addr {
            IpAddr::V4(a) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 4], u32> = LpmTrie::try_from(self.map_mut(DENY_V4_MAP)?)?;
                let removed = trie.remove(&Key::new(u32::from(cidr.prefix), a.octets()));
                self.set_deny_filter(a, cidr.prefix, false)?;
                removed
            }
            IpAddr::V6(a) => {
                let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> = LpmTrie::try_from(self.map_mut(DENY_V6_MAP)?)?;
                trie.remove(&Key::new(u32::from(cidr.prefix), a.octets()))
            }
        };
        match removed {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every prefix on the deny list.
    pub fn denied_sources(&self) -> Result<Vec<Cidr>, DataplaneError> {
        let mut out = Vec::new();
        let v4: LpmTrie<&MapData, [u8; 4], u32> = LpmTrie::try_from(self.map(DENY_V4_MAP)?)?;
        for key in v4.keys() {
            let key = key?;
            out.push(Cidr { addr: IpAddr::from(key.data()), prefix: key.prefix_len() as u8 });
        }
        let v6: LpmTrie<&MapData, [u8; 16], u32> = LpmTrie::try_from(self.map(DENY_V6_MAP)?)?;
        for key in v6.keys() {
            let key = key?;
            out.push(Cidr { addr: IpAddr::from(key.data()), prefix: key.prefix_len() as u8 });
        }
        Ok(out)
    }

    /// Replaces the allow rules with `rules` (compiled by [`super::rules::compile`]). Rule `i`'s
    /// hits are counted in slot `i` of [`Self::rule_hits`].
    pub fn set_allow_rules(&mut self, rules: &CompiledRules) -> Result<(), DataplaneError> {
        let v4: Vec<_> = rules.entries().filter_map(|(k, set)| Some((v4_key(k)?, *set))).collect();
        let v6: Vec<_> = rules.entries().filter_map(|(k, set)| Some((v6_key(k)?, *set))).collect();
        replace_entries(&mut LpmTrie::try_from(self.map_mut(ALLOW_V4_MAP)?)?, &v4)?;
        replace_entries(&mut LpmTrie::try_from(self.map_mut(ALLOW_V6_MAP)?)?, &v6)?;
        Ok(())
    }

    /// Hits per allow rule, summed over CPUs, in rule order.
    pub fn rule_hits(&self, rules: usize) -> Result<Vec<u64>, DataplaneError> {
        let hits: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.map(RULE_HITS_MAP)?)?;
        (0..rules.min(MAX_RULES as usize)).map(|i| Ok(hits.get(&(i as u32), 0)?.iter().sum())).collect()
    }
}

/// Deleting an absent key: aya reports it as `KeyNotFound` or as the raw ENOENT.
pub(super) fn is_not_found(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn v4_key(k: &EntryKey) -> Option<Key<AllowDataV4>> {
    let IpAddr::V4(a) = k.dst else { return None };
    Some(Key::new(
        ALLOW_FIXED_BITS + u32::from(k.prefix),
        allow_data_v4(k.protocol, k.port, u32::from_ne_bytes(a.octets())),
    ))
}

fn v6_key(k: &EntryKey) -> Option<Key<AllowDataV6>> {
    let IpAddr::V6(_) = k.dst else { return None };
    Some(Key::new(ALLOW_FIXED_BITS + u32::from(k.prefix), allow_data_v6(k.protocol, k.port, &words(k.dst))))
}

/// Writes `entries` into `trie`, then deletes whatever else it held.
fn replace_entries<K: aya::Pod + Ord>(
    trie: &mut LpmTrie<&mut MapData, K, RuleSet>,
    entries: &[(Key<K>, RuleSet)],
) -> Result<(), DataplaneError> {
    let mut keep = BTreeSet::new();
    for (key, set) in entries {
        trie.insert(key, set, 0)?;
        keep.insert((key.prefix_len(), key.data()));
    }
    let stale: Vec<_> =
        trie.keys().filter_map(Result::ok).filter(|k| !keep.contains(&(k.prefix_len(), k.data()))).collect();
    for key in stale {
        trie.remove(&key)?;
    }
    Ok(())
}
