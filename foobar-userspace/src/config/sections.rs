//! Every type error in a config at once. serde stops a document at its first bad value, so
//! when the whole file does not deserialize, each table, each `[[service]]` with its health
//! check and each of its backends, and each DNS record is deserialized again on its own,
//! from the same parse (the spans still point into the file), each reporting its first error.

use serde::de::DeserializeOwned;
use toml::{
    Spanned,
    de::{DeTable, DeValue, Error, ValueDeserializer},
};

use super::schema::{
    Announce, Backend, Capacity, Conntrack, Daemon, Dns, Firewall, Health, Record, Replication, Service,
};

/// The errors of each part of `text` that does not deserialize, in file order, one per part
/// (a part inside another that fails is reported once). Empty when the text does not parse
/// as TOML at all, or when only the document as a whole is wrong (a missing table).
pub fn type_errors(text: &str) -> Vec<Error> {
    let Ok(root) = DeTable::parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    for (key, value) in root.get_ref() {
        match &**key.get_ref() {
            "daemon" => check::<Daemon>(value, &mut out),
            "firewall" => check::<Firewall>(value, &mut out),
            "capacity" => check::<Capacity>(value, &mut out),
            "conntrack" => check::<Conntrack>(value, &mut out),
            "replication" => check::<Replication>(value, &mut out),
            "announce" => check::<Announce>(value, &mut out),
            "service" => each(value, &mut out, &|service, out| {
                check::<Service>(service, out);
                if let Some(health) = member(service, "health") {
                    check::<Health>(health, out);
                }
                if let Some(backends) = member(service, "backend") {
                    each(backends, out, &|b, out| check::<Backend>(b, out));
                }
            }),
            "dns" => {
                check::<Dns>(value, &mut out);
                if let Some(records) = member(value, "record") {
                    each(records, &mut out, &|r, out| check::<Record>(r, out));
                }
            }
            // Unknown tables: the whole document's error names them.
            _ => {}
        }
    }
    out.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    out.dedup_by(|a, b| a.span() == b.span() && a.message() == b.message());
    out
}

fn check<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, out: &mut Vec<Error>) {
    if let Err(e) = T::deserialize(ValueDeserializer::from(value.clone())) {
        out.push(e);
    }
}

fn each(value: &Spanned<DeValue<'_>>, out: &mut Vec<Error>, f: &dyn Fn(&Spanned<DeValue<'_>>, &mut Vec<Error>)) {
    if let DeValue::Array(items) = value.get_ref() {
        for item in items.iter() {
            f(item, out);
        }
    }
}

fn member<'a, 'i>(table: &'a Spanned<DeValue<'i>>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    match table.get_ref() {
        DeValue::Table(t) => t.iter().find(|(k, _)| &**k.get_ref() == key).map(|(_, v)| v),
        _ => None,
    }
}
