//! The zone's records, built from the config and what is live right now.
//!
//! SOA and NS come by default (`ns1.<zone>`, answered by every `dns.listen` address);
//! static records come from `value`; dynamic ones follow the data plane: a `service = "..."`
//! record answers the service's VIP while it has a backend taking new flows; otherwise the
//! name has no records and is answered NXDOMAIN (negatively cached for the zone's TTL).
//! `replication` records follow the replication monitor: `primary` answers the primary while it
//! is reachable, `replicas` the healthy replicas or the primary when none is; before the first
//! check they answer the configured servers.

use std::{collections::BTreeMap, collections::BTreeSet, net::IpAddr, sync::Arc};

use hickory_server::proto::rr::{
    LowerName, Name, RData, Record, RecordSet, RecordType, RrKey,
    rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT},
};

use crate::config::{
    Config,
    schema::{RecordType as ConfigType, ReplicationTarget},
};

/// Everything the zone is built from, taken from the config once.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneSpec {
    pub origin: Name,
    pub ttl: u32,
    pub nameservers: Vec<IpAddr>,
    pub records: Vec<RecordSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordSpec {
    pub name: Name,
    pub kind: ConfigType,
    pub ttl: u32,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Static(String),
    /// The VIP of the named service, while it has an available backend.
    Service {
        name: String,
        vip: IpAddr,
    },
    /// The primary or the readable replicas, as the replication monitor sees them; the
    /// configured addresses until it has.
    Replication {
        target: ReplicationTarget,
        configured: Vec<IpAddr>,
    },
}

/// What is live: services with a backend taking new flows, and once the replication monitor
/// has checked them, the databases to answer as `(primary, readable)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub services: BTreeSet<String>,
    pub databases: Option<(Vec<IpAddr>, Vec<IpAddr>)>,
}

fn relative(name: &str, origin: &Name) -> Result<Name, String> {
    if name == "@" {
        return Ok(origin.clone());
    }
    let n = Name::from_ascii(name).map_err(|e| format!("`{name}` is not a DNS name: {e}"))?;
    if name.ends_with('.') { Ok(n) } else { n.append_domain(origin).map_err(|e| e.to_string()) }
}

impl ZoneSpec {
    /// The zone as the config describes it; `None` when there is no `[dns]` section.
    pub fn from_config(config: &Config) -> Result<Option<ZoneSpec>, String> {
        let Some(dns) = &config.dns else { return Ok(None) };
        let zone = dns.zone.get_ref().trim_end_matches('.');
        let origin = Name::from_ascii(format!("{zone}.")).map_err(|e| format!("dns.zone `{zone}`: {e}"))?;
        let mut records = Vec::new();
        for r in &dns.records {
            let source = if let Some(v) = &r.value {
                Source::Static(v.clone())
            } else if let Some(s) = &r.service {
                let svc = config.services.iter().find(|x| x.name.get_ref() == s.get_ref());
                let vip = svc.map(|x| *x.vip.get_ref()).ok_or_else(|| format!("no service `{}`", s.get_ref()))?;
                Source::Service { name: s.get_ref().clone(), vip }
            } else {
                let rep = config.replication.as_ref().ok_or("replication records need [replication]")?;
                let target = r.replication.unwrap_or(ReplicationTarget::Replicas);
                let configured = match target {
                    ReplicationTarget::Primary => vec![rep.primary.get_ref().address.ip()],
                    ReplicationTarget::Replicas => rep.replicas.iter().map(|x| x.address.ip()).collect(),
                };
                Source::Replication { target, configured }
            };
            records.push(RecordSpec {
                name: relative(r.name.get_ref(), &origin)?,
                kind: r.kind,
                ttl: r.ttl.unwrap_or(dns.ttl),
                source,
            });
        }
        Ok(Some(ZoneSpec {
            origin,
            ttl: dns.ttl,
            nameservers: dns.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect(),
            records,
        }))
    }

    /// The full record map for `live`, with SOA serial `serial`.
    pub fn build(&self, live: &Live, serial: u32) -> Result<BTreeMap<RrKey, Arc<RecordSet>>, String> {
        let origin = &self.origin;
        let ns1 = relative("ns1", origin)?;
        let hostmaster = relative("hostmaster", origin)?;
        let mut out: Vec<Record> = vec![
            Record::from_rdata(
                origin.clone(),
                self.ttl,
                RData::SOA(SOA::new(ns1.clone(), hostmaster, serial, 3600, 600, 86400, self.ttl)),
            ),
            Record::from_rdata(origin.clone(), self.ttl, RData::NS(NS(ns1.clone()))),
        ];
        out.extend(self.nameservers.iter().map(|ip| Record::from_rdata(ns1.clone(), self.ttl, address(*ip))));
        for r in &self.records {
            let rdata: Vec<RData> = match (&r.source, r.kind) {
                (Source::Static(v), ConfigType::A | ConfigType::Aaaa) => {
                    vec![address(v.parse().map_err(|_| format!("`{v}` is not an address"))?)]
                }
                (Source::Static(v), ConfigType::Cname) => vec![RData::CNAME(CNAME(relative(v, origin)?))],
                (Source::Static(v), ConfigType::Mx) => {
                    let (pref, host) = v.split_once(' ').ok_or_else(|| format!("MX `{v}` needs `PREFERENCE HOST`"))?;
                    let pref = pref.parse().map_err(|_| format!("MX preference `{pref}`"))?;
                    vec![RData::MX(MX::new(pref, relative(host.trim(), origin)?))]
                }
                // One TXT character-string holds at most 255 bytes: longer text is split.
                (Source::Static(v), ConfigType::Txt) => {
                    let chunks = v.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                    vec![RData::TXT(TXT::new(chunks))]
                }
                (Source::Service { name, vip }, _) if live.services.contains(name) => vec![address(*vip)],
                (Source::Service { .. }, _) => Vec::new(),
                (Source::Replication { target, configured }, _) => {
                    let addrs = match (&live.databases, target) {
                        (None, _) => configured,
                        (Some((write, _)), ReplicationTarget::Primary) => write,
                        (Some((_, read)), ReplicationTarget::Replicas) => read,
                    };
                    addrs.iter().map(|ip| address(*ip)).collect()
                }
            };
            for d in rdata {
                let wanted = match r.kind {
                    ConfigType::A => RecordType::A,
                    ConfigType::Aaaa => RecordType::AAAA,
                    _ => d.record_type(),
                };
                if d.record_type() == wanted {
                    out.push(Record::from_rdata(r.name.clone(), r.ttl, d));
                }
            }
        }
        let mut map: BTreeMap<RrKey, RecordSet> = BTreeMap::new();
        for rec in out {
            let key = RrKey::new(LowerName::from(&rec.name), rec.record_type());
            map.entry(key)
                .or_insert_with(|| RecordSet::new(rec.name.clone(), rec.record_type(), serial))
                .insert(rec, serial);
        }
        Ok(map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn lab() -> ZoneSpec {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(Path::new("lab.toml"), text, &|_| true).expect("lab config");
        ZoneSpec::from_config(&cfg).expect("zone").expect("dns section")
    }

    fn answers(map: &BTreeMap<RrKey, Arc<RecordSet>>, name: &str, t: RecordType) -> Vec<String> {
        let key = RrKey::new(LowerName::from(&Name::from_ascii(name).expect("name")), t);
        map.get(&key).map(|rs| rs.records_without_rrsigs().map(|r| r.data.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn the_lab_zone_follows_service_health() {
        let zone = lab();
        let up = Live { services: ["www".to_owned()].into(), databases: None };
        let map = zone.build(&up, 7).expect("build");
        assert_eq!(answers(&map, "www.foobar.com.", RecordType::A), ["192.0.2.10"]);
        assert_eq!(answers(&map, "db-write.foobar.com.", RecordType::A), ["198.51.100.31"]);
        assert_eq!(answers(&map, "db-read.foobar.com.", RecordType::A), ["198.51.100.32"]);
        assert_eq!(answers(&map, "ns1.foobar.com.", RecordType::A), ["192.0.2.53"]);
        assert_eq!(answers(&map, "foobar.com.", RecordType::NS), ["ns1.foobar.com."]);
        assert!(answers(&map, "foobar.com.", RecordType::SOA)[0].contains(" 7 "));
        let down = zone.build(&Live::default(), 8).expect("build");
        assert!(answers(&down, "www.foobar.com.", RecordType::A).is_empty(), "www answered with no backend");
    }

    #[test]
    fn replication_records_follow_the_monitor() {
        let zone = lab();
        let db1: IpAddr = "198.51.100.31".parse().expect("ip");
        let moved = Live { databases: Some((vec![db1], vec![db1])), ..Live::default() };
        let map = zone.build(&moved, 2).expect("build");
        assert_eq!(answers(&map, "db-read.foobar.com.", RecordType::A), ["198.51.100.31"], "reads on the primary");
        let gone = Live { databases: Some((vec![], vec![])), ..Live::default() };
        let map = zone.build(&gone, 3).expect("build");
        assert!(answers(&map, "db-write.foobar.com.", RecordType::A).is_empty());
        assert!(answers(&map, "db-read.foobar.com.", RecordType::A).is_empty());
    }

    #[test]
    fn every_static_record_type() {
        let extra = "[[dns.record]]\nname = \"web\"\ntype = \"CNAME\"\nvalue = \"www\"\n\n\
                     [[dns.record]]\nname = \"@\"\ntype = \"MX\"\nvalue = \"10 mail\"\n\n\
                     [[dns.record]]\nname = \"mail\"\ntype = \"AAAA\"\nvalue = \"2001:db8:1::25\"\nttl = 300\n\n\
                     [[dns.record]]\nname = \"@\"\ntype = \"TXT\"\nvalue = \"v=spf1 -all\"\n\n[replication]";
        let text = include_str!("../../../examples/lab.toml").replacen("[replication]", extra, 1);
        let cfg = crate::config::parse(Path::new("lab.toml"), &text, &|_| true).expect("config");
        let zone = ZoneSpec::from_config(&cfg).expect("zone").expect("dns");
        let map = zone.build(&Live::default(), 1).expect("build");
        assert_eq!(answers(&map, "web.foobar.com.", RecordType::CNAME), ["www.foobar.com."]);
        assert_eq!(answers(&map, "foobar.com.", RecordType::MX), ["10 mail.foobar.com."]);
        assert_eq!(answers(&map, "mail.foobar.com.", RecordType::AAAA), ["2001:db8:1::25"]);
        assert_eq!(answers(&map, "foobar.com.", RecordType::TXT), ["v=spf1 -all"]);
        let key = RrKey::new(LowerName::from(&Name::from_ascii("mail.foobar.com.").expect("name")), RecordType::AAAA);
        assert_eq!(map[&key].ttl(), 300, "per-record TTL");
    }
}

#[cfg(test)]
mod handler_tests {
    use std::path::Path;

    use hickory_server::{
        net::runtime::TokioRuntimeProvider,
        store::in_memory::InMemoryZoneHandler,
        zone_handler::{AxfrPolicy, LookupOptions, ZoneHandler, ZoneType},
    };

    use super::*;

    #[tokio::test]
    async fn hickory_finds_the_built_records() {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(Path::new("lab.toml"), text, &|_| true).expect("lab config");
        let zone = ZoneSpec::from_config(&cfg).expect("zone").expect("dns");
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            zone.origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        *handler.records_mut().await =
            zone.build(&Live { services: ["www".to_owned()].into(), databases: None }, 5).expect("build");
        for (name, t) in
            [("foobar.com.", RecordType::SOA), ("ns1.foobar.com.", RecordType::A), ("www.foobar.com.", RecordType::A)]
        {
            let n = LowerName::from(&Name::from_ascii(name).expect("name"));
            let found = handler.lookup(&n, t, None, LookupOptions::default()).await;
            assert!(matches!(found.map_result(), Some(Ok(_))), "{name} {t} not found");
        }
    }
}
