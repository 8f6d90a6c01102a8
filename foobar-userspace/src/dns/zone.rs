//! The zone's records, built from the plan's [`ZoneSpec`] and what is live right now.
//!
//! SOA and NS come by default (`ns1.<zone>`, answered by every `dns.listen` address);
//! static records come from `value`; dynamic ones follow the data plane: a `service = "..."`
//! record answers the service's VIP while it has a backend taking new flows; otherwise the
//! name has no records and is answered NXDOMAIN (negatively cached for the zone's TTL).
//! `replication` records follow the replication monitor: `primary` answers the primary while it
//! is reachable, `replicas` the healthy replicas or the primary when none is; before the first
//! check they answer the configured servers.

use std::{collections::BTreeMap, collections::BTreeSet, net::IpAddr, sync::Arc};

use hickory_server::proto::{
    ProtoError,
    rr::{
        LowerName, Name, RData, Record, RecordSet, RecordType, RrKey,
        rdata::{A, AAAA, NS, SOA},
    },
};

use crate::config::schema::{RecordType as ConfigType, ReplicationTarget};

/// Everything the zone is built from, compiled from the config once (`crate::plan`).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneSpec {
    pub origin: Name,
    pub ttl: u32,
    /// The SOA's primary name server and responsible mailbox (`ns1.` and `hostmaster.` the zone).
    pub ns1: Name,
    pub hostmaster: Name,
    pub nameservers: Vec<IpAddr>,
    pub records: Vec<RecordSpec>,
    /// The SOA serial: `dns.serial`, or a digest of everything above. It follows the config,
    /// never health, so nodes with one config agree while their health views differ.
    pub serial: u32,
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
    /// Fixed data, checked when the plan was compiled.
    Static(RData),
    /// The VIP of the named service, while it has an available backend.
    Service { name: String, vip: IpAddr },
    /// The primary or the readable replicas, as the replication monitor sees them; the
    /// configured addresses until it has.
    Replication { target: ReplicationTarget, configured: Vec<IpAddr> },
}

/// What is live: services with a backend taking new flows, and once the replication monitor
/// has checked them, the databases to answer as `(primary, readable)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub services: BTreeSet<String>,
    pub databases: Option<(Vec<IpAddr>, Vec<IpAddr>)>,
}

/// `name` in the zone `origin`: `@` is the origin, a name ending in `.` is absolute, any other
/// is relative to the origin.
pub fn relative(name: &str, origin: &Name) -> Result<Name, ProtoError> {
    if name == "@" {
        return Ok(origin.clone());
    }
    let n = Name::from_ascii(name)?;
    if name.ends_with('.') { Ok(n) } else { n.append_domain(origin) }
}

impl ZoneSpec {
    /// The full record map for `live`.
    pub fn build(&self, live: &Live) -> BTreeMap<RrKey, Arc<RecordSet>> {
        let (origin, serial) = (&self.origin, self.serial);
        let soa = SOA::new(self.ns1.clone(), self.hostmaster.clone(), serial, 3600, 600, 86400, self.ttl);
        let mut out: Vec<Record> = vec![
            Record::from_rdata(origin.clone(), self.ttl, RData::SOA(soa)),
            Record::from_rdata(origin.clone(), self.ttl, RData::NS(NS(self.ns1.clone()))),
        ];
        out.extend(self.nameservers.iter().map(|ip| Record::from_rdata(self.ns1.clone(), self.ttl, address(*ip))));
        for r in &self.records {
            let rdata: Vec<RData> = match &r.source {
                Source::Static(d) => vec![d.clone()],
                Source::Service { name, vip } if live.services.contains(name) => vec![address(*vip)],
                Source::Service { .. } => Vec::new(),
                Source::Replication { target, configured } => {
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
        map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
    }
}

/// An address record's data.
pub fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The zone a config text compiles to.
    pub(crate) fn zone_of(text: &str) -> ZoneSpec {
        let cfg = crate::config::parse(Path::new("lab.toml"), text, &|_| true).expect("lab config");
        crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section")
    }

    fn lab() -> ZoneSpec {
        zone_of(include_str!("../../../examples/lab.toml"))
    }

    fn answers(map: &BTreeMap<RrKey, Arc<RecordSet>>, name: &str, t: RecordType) -> Vec<String> {
        let key = RrKey::new(LowerName::from(&Name::from_ascii(name).expect("name")), t);
        map.get(&key).map(|rs| rs.records_without_rrsigs().map(|r| r.data.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn the_lab_zone_follows_service_health() {
        let zone = lab();
        let up = Live { services: ["www".to_owned()].into(), databases: None };
        let map = zone.build(&up);
        assert_eq!(answers(&map, "www.foobar.com.", RecordType::A), ["192.0.2.10"]);
        assert_eq!(answers(&map, "db-write.foobar.com.", RecordType::A), ["198.51.100.31"]);
        assert_eq!(answers(&map, "db-read.foobar.com.", RecordType::A), ["198.51.100.32"]);
        assert_eq!(answers(&map, "ns1.foobar.com.", RecordType::A), ["192.0.2.53"]);
        assert_eq!(answers(&map, "foobar.com.", RecordType::NS), ["ns1.foobar.com."]);
        let down = zone.build(&Live::default());
        assert!(answers(&down, "www.foobar.com.", RecordType::A).is_empty(), "www answered with no backend");
        let serial = |map: &BTreeMap<RrKey, Arc<RecordSet>>| answers(map, "foobar.com.", RecordType::SOA);
        assert_eq!(serial(&map), serial(&down), "health moved the serial");
        assert!(serial(&map)[0].contains(&format!(" {} ", zone.serial)), "{:?}", serial(&map));
    }

    #[test]
    fn the_serial_follows_the_config_alone() {
        let text = include_str!("../../../examples/lab.toml");
        assert_eq!(zone_of(text).serial, zone_of(text).serial, "two compilations of one config differ");
        let edited = text.replacen("ttl = 30", "ttl = 31", 1);
        assert_ne!(zone_of(text).serial, zone_of(&edited).serial, "an edited zone kept its serial");
        let set = text.replacen("ttl = 30", "ttl = 30\nserial = 2026120201", 1);
        assert_eq!(zone_of(&set).serial, 2_026_120_201);
    }

    #[test]
    fn replication_records_follow_the_monitor() {
        let zone = lab();
        let db1: IpAddr = "198.51.100.31".parse().expect("ip");
        let moved = Live { databases: Some((vec![db1], vec![db1])), ..Live::default() };
        let map = zone.build(&moved);
        assert_eq!(answers(&map, "db-read.foobar.com.", RecordType::A), ["198.51.100.31"], "reads on the primary");
        let gone = Live { databases: Some((vec![], vec![])), ..Live::default() };
        let map = zone.build(&gone);
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
        let zone = zone_of(&text);
        let map = zone.build(&Live::default());
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
    use hickory_server::{
        net::runtime::TokioRuntimeProvider,
        store::in_memory::InMemoryZoneHandler,
        zone_handler::{AxfrPolicy, LookupOptions, ZoneHandler, ZoneType},
    };

    use super::*;

    #[tokio::test]
    async fn hickory_finds_the_built_records() {
        let zone = super::tests::zone_of(include_str!("../../../examples/lab.toml"));
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            zone.origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        *handler.records_mut().await = zone.build(&Live { services: ["www".to_owned()].into(), databases: None });
        for (name, t) in
            [("foobar.com.", RecordType::SOA), ("ns1.foobar.com.", RecordType::A), ("www.foobar.com.", RecordType::A)]
        {
            let n = LowerName::from(&Name::from_ascii(name).expect("name"));
            let found = handler.lookup(&n, t, None, LookupOptions::default()).await;
            assert!(matches!(found.map_result(), Some(Ok(_))), "{name} {t} not found");
        }
    }
}
