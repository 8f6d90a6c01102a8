//! The DNS zone's names and static data, checked once: a name that is no DNS name or a value
//! hickory cannot hold is a config problem, not a failure at the next health change.

use std::net::IpAddr;

use hickory_server::proto::{
    ProtoError,
    rr::{
        Name, RData,
        rdata::{CNAME, MX, TXT},
    },
};

use crate::{
    config::{
        Config, Problem,
        schema::{RecordType, ReplicationTarget},
    },
    dns::zone::{RecordSpec, Source, ZoneSpec, address, relative},
};

/// The zone of `config`'s `[dns]` section (`None` without one); problems are noted.
pub(super) fn compile(config: &Config, problems: &mut Vec<Problem>) -> Option<ZoneSpec> {
    let dns = config.dns.as_ref()?;
    let src = &config.origin;
    let zone = dns.zone.get_ref().trim_end_matches('.');
    let origin = match Name::from_ascii(format!("{zone}.")) {
        Ok(o) => o,
        Err(e) => {
            problems.push(src.problem(dns.zone.span(), "dns.zone", format!("`{zone}` is not a DNS name: {e}")));
            return None;
        }
    };
    let mut records = Vec::new();
    for (i, r) in dns.records.iter().enumerate() {
        let at = r.name.span();
        let mut problem = |key: &str, message: String| {
            problems.push(src.problem(at.clone(), format!("dns.record[{i}].{key}"), message));
        };
        let name = match relative(r.name.get_ref(), &origin) {
            Ok(n) => n,
            Err(e) => {
                problem("name", format!("`{}` is not a DNS name in {origin}: {e}", r.name.get_ref()));
                continue;
            }
        };
        let source = if let Some(v) = &r.value {
            match static_data(r.kind, v, &origin) {
                Ok(d) => Source::Static(d),
                Err(e) => {
                    problem("value", e.to_string());
                    continue;
                }
            }
        } else if let Some(s) = &r.service {
            // The config's checks made sure the service exists.
            let Some(svc) = config.services.iter().find(|x| x.name.get_ref() == s.get_ref()) else { continue };
            Source::Service { name: s.get_ref().clone(), vip: *svc.vip.get_ref() }
        } else {
            let Some(rep) = &config.replication else { continue };
            let target = r.replication.unwrap_or(ReplicationTarget::Replicas);
            let configured = match target {
                ReplicationTarget::Primary => vec![rep.primary.get_ref().address.ip()],
                ReplicationTarget::Replicas => rep.replicas.iter().map(|x| x.address.ip()).collect(),
            };
            Source::Replication { target, configured }
        };
        records.push(RecordSpec { name, kind: r.kind, ttl: r.ttl.unwrap_or(dns.ttl), source });
    }
    let ns1 = relative("ns1", &origin).ok()?;
    let hostmaster = relative("hostmaster", &origin).ok()?;
    let mut spec = ZoneSpec {
        ns1,
        hostmaster,
        ttl: dns.ttl,
        nameservers: dns.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect(),
        records,
        origin,
        serial: 0,
    };
    spec.serial = dns.serial.unwrap_or_else(|| content_serial(&spec));
    Some(spec)
}

/// A serial that every node compiling the same zone computes alike, and a restart keeps: the
/// first four bytes of a SHA-256 over the compiled zone (serial 0 while it is hashed).
fn content_serial(spec: &ZoneSpec) -> u32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{spec:?}").as_bytes());
    let mut first = [0; 4];
    first.copy_from_slice(&digest.as_ref()[..4]);
    u32::from_be_bytes(first)
}

/// What is wrong with a static record's `value`.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("`{0}` is not an address")]
    NotAnAddress(String),
    #[error("`{value}` is not a DNS name: {source}")]
    NotAName { value: String, source: ProtoError },
    #[error("MX `{0}` needs `PREFERENCE HOST`")]
    MxShape(String),
    #[error("MX preference `{0}` is not a number")]
    MxPreference(String),
}

/// A static record's data.
fn static_data(kind: RecordType, value: &str, origin: &Name) -> Result<RData, ValueError> {
    let name = |v: &str| relative(v, origin).map_err(|source| ValueError::NotAName { value: v.to_owned(), source });
    Ok(match kind {
        RecordType::A | RecordType::Aaaa => {
            address(value.parse::<IpAddr>().map_err(|_| ValueError::NotAnAddress(value.to_owned()))?)
        }
        RecordType::Cname => RData::CNAME(CNAME(name(value)?)),
        RecordType::Mx => {
            let (pref, host) = value.split_once(' ').ok_or_else(|| ValueError::MxShape(value.to_owned()))?;
            let pref = pref.parse().map_err(|_| ValueError::MxPreference(pref.to_owned()))?;
            RData::MX(MX::new(pref, name(host.trim())?))
        }
        // One TXT character-string holds at most 255 bytes: longer text is split.
        RecordType::Txt => RData::TXT(TXT::new(
            value.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect(),
        )),
    })
}
