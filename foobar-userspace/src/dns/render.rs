//! The zone's answers rendered ahead of the queries, for XDP to answer from
//! (`foobar_common::dns`): each name the zone owns is asked, for each type, of the server's
//! own catalog, so an answer from the kernel is the server's, byte for byte.

use std::sync::{Arc, Mutex};

use foobar_common::dns::{Answer, BODY_MAX, KIND_NXDOMAIN, MAX_POINTERS, NAME_MAX, NxTemplate, QTYPE_OWNED, sum};
use hickory_server::{
    net::{NetError, runtime::TokioTime, xfer::Protocol},
    proto::{
        op::ResponseCode,
        rr::{Name, Record, RecordType},
        serialize::binary::{BinEncodable, BinEncoder},
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::{Catalog, MessageResponse},
};

use super::zone::ZoneSpec;

/// The types asked of every name: those a zone serves, and those clients commonly ask that
/// it may not have (HTTPS from every browser), whose NODATA answers are rendered too.
const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::PTR,
    RecordType::MX,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::SVCB,
    RecordType::HTTPS,
    RecordType::CAA,
];

/// One question's answer: the question's name (wire format, lowercase) and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub name: Vec<u8>,
    pub qtype: u16,
    pub answer: Answer,
}

/// The zone as XDP answers it: each owned name's answers, and the NXDOMAIN answer for the
/// names under the apex it does not own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendering {
    pub answers: Vec<Rendered>,
    pub nxdomain: Option<NxTemplate>,
}

/// Every name the zone owns: its apex, its name server and every configured record's name
/// (one whose records are withheld, as a service with no backend, is answered NXDOMAIN), and
/// the names between those and the apex (which exist, empty, for the names below them).
pub fn names(spec: &ZoneSpec) -> Vec<Name> {
    let owned = [spec.origin.clone(), spec.ns1.clone()].into_iter().chain(spec.records.iter().map(|r| r.name.clone()));
    let mut names: Vec<Name> = owned
        .flat_map(|n| {
            let n = n.to_lowercase();
            let below = n.num_labels().saturating_sub(spec.origin.num_labels());
            (0..=below).map(move |i| n.trim_to(n.num_labels() as usize - i as usize))
        })
        .filter(|n| spec.origin.zone_of(n))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The first label of the name NXDOMAIN is rendered for (no zone name can hold `*`'s twin `=`).
const PROBE: &[u8] = b"\x0anxdomain=0";

/// Renders `spec`'s zone as `catalog` answers it: [`answers`] for its names and the NXDOMAIN
/// template for the rest under its apex.
pub async fn render(catalog: &Catalog, spec: &ZoneSpec) -> Rendering {
    let names = names(spec);
    let answers = answers(catalog, &names).await;
    // A wildcard below the apex answers names the probe's NXDOMAIN would deny: none then.
    let wildcard = spec.records.iter().any(|r| r.name.is_wildcard());
    let nxdomain = match spec.origin.to_lowercase().to_bytes() {
        Ok(apex) if !wildcard => nxdomain(catalog, &apex).await,
        _ => None,
    };
    Rendering { answers, nxdomain }
}

/// The NXDOMAIN answer for the probe under `apex`, with its compression pointers found.
async fn nxdomain(catalog: &Catalog, apex: &[u8]) -> Option<NxTemplate> {
    let name = [PROBE, apex].concat();
    if name.len() > NAME_MAX {
        return None;
    }
    let response = ask(catalog, query(&name, 1)).await?;
    let answer = answer(&response, name.len() + 4, 0)?;
    if answer.kind != KIND_NXDOMAIN {
        return None;
    }
    let found = pointers(&response, 12 + name.len() + 4)?;
    let mut t = NxTemplate {
        probe_prefix: PROBE.len() as u16,
        apex_len: apex.len() as u16,
        pointer_count: found.len() as u32,
        answer,
        ..NxTemplate::default()
    };
    t.apex[..apex.len()].copy_from_slice(apex);
    for (i, at) in found.iter().enumerate() {
        // Each must point past the probe's label, which another name does not have.
        let target = u16::from_be_bytes([response[*at], response[at + 1]]) & 0x3fff;
        if usize::from(target) < 12 + PROBE.len() {
            return None;
        }
        t.pointers[i] = (at - (12 + name.len() + 4)) as u16;
    }
    Some(t)
}

/// Where `message`'s compression pointers are, from its record at `start` on: in owner names
/// and in the names the records a negative answer holds carry (SOA, NS, CNAME, PTR, MX).
/// `None` for anything else, or more than [`MAX_POINTERS`].
fn pointers(message: &[u8], start: usize) -> Option<Vec<usize>> {
    let count = |i: usize| usize::from(u16::from_be_bytes([message[i], message[i + 1]]));
    let records = count(6) + count(8) + count(10);
    let mut found = Vec::new();
    let name = |mut at: usize, found: &mut Vec<usize>| -> Option<usize> {
        loop {
            let l = *message.get(at)?;
            match l {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => {
                    found.push(at);
                    return Some(at + 2);
                }
                l if l < 64 => at += usize::from(l) + 1,
                _ => return None,
            }
        }
    };
    let mut at = start;
    for _ in 0..records {
        at = name(at, &mut found)?;
        let rtype = u16::from_be_bytes([*message.get(at)?, *message.get(at + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([*message.get(at + 8)?, *message.get(at + 9)?]));
        let rdata = at + 10;
        match RecordType::from(rtype) {
            RecordType::SOA => {
                let next = name(rdata, &mut found)?;
                name(next, &mut found)?;
            }
            RecordType::NS | RecordType::CNAME | RecordType::PTR => {
                name(rdata, &mut found)?;
            }
            RecordType::MX => {
                name(rdata + 2, &mut found)?;
            }
            RecordType::A | RecordType::AAAA | RecordType::TXT => {}
            _ => return None,
        }
        at = rdata + rdlen;
    }
    (at == message.len() && found.len() <= MAX_POINTERS).then_some(found)
}

/// Renders the answer to each of `names` × [`TYPES`] that a plain UDP answer holds; the rest
/// (errors, truncated or too long answers) are left to the server. Each name also gets its
/// [`QTYPE_OWNED`] marker, which keeps the other types asked of it from the NXDOMAIN template.
pub async fn answers(catalog: &Catalog, names: &[Name]) -> Vec<Rendered> {
    let mut out = Vec::new();
    for name in names {
        let Ok(wire) = name.to_bytes() else { continue };
        if wire.len() > NAME_MAX {
            continue;
        }
        out.push(Rendered { name: wire.clone(), qtype: QTYPE_OWNED, answer: Answer::default() });
        for qtype in TYPES {
            let query = query(&wire, u16::from(qtype));
            let Some(response) = ask(catalog, query).await else { continue };
            let kind = out.len() as u32 + 1;
            if let Some(answer) = answer(&response, wire.len() + 4, kind) {
                out.push(Rendered { name: wire.clone(), qtype: u16::from(qtype), answer });
            }
        }
    }
    out
}

/// A plain query for `name` (wire format) and `qtype`, ID 0, no flags.
pub fn query(name: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// The catalog's UDP answer to `query`, as it would go out.
async fn ask(catalog: &Catalog, query: Vec<u8>) -> Option<Vec<u8>> {
    let src = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
    let request = Request::from_bytes(query, src, Protocol::Udp).ok()?;
    let capture = Capture::default();
    catalog.handle_request::<Capture, TokioTime>(&request, capture.clone()).await;
    capture.0.lock().ok()?.take()
}

/// `response`'s header words and the sections after its question (`question` bytes from
/// byte 12), if it is an answer XDP may give: NOERROR or NXDOMAIN, not truncated, short.
fn answer(response: &[u8], question: usize, kind: u32) -> Option<Answer> {
    let word = |i: usize| Some(u16::from_be_bytes([*response.get(i)?, *response.get(i + 1)?]));
    let flags = word(2)?;
    let rcode = ResponseCode::from_low((flags & 0xf) as u8);
    let body = response.get(12 + question..)?;
    if flags & foobar_common::dns::FLAG_TC != 0 || body.len() > BODY_MAX {
        return None;
    }
    let kind = match rcode {
        ResponseCode::NoError => kind,
        ResponseCode::NXDomain => KIND_NXDOMAIN,
        _ => return None,
    };
    let mut a = Answer {
        kind,
        flags,
        answers: word(6)?,
        authorities: word(8)?,
        additionals: word(10)?,
        len: body.len() as u16,
        sum: sum(body),
        ..Answer::default()
    };
    a.body[..body.len()].copy_from_slice(body);
    Some(a)
}

/// Keeps the response a handler sends, encoded as the UDP server encodes one without EDNS.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(512);
        let info = response.destructive_emit(&mut encoder)?;
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(bytes);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zone::Live;

    async fn rendering(live: &Live) -> Rendering {
        let text = include_str!("../../../examples/lab.toml");
        let cfg = crate::config::parse(std::path::Path::new("lab.toml"), text, &|_| true).expect("lab config");
        let spec = crate::plan::Plan::compile(cfg).expect("plan").zone.expect("dns section");
        let (_, catalog) = crate::dns::catalog(&spec, live, false).await;
        render(&catalog, &spec).await
    }

    async fn rendered(live: &Live) -> Vec<Rendered> {
        rendering(live).await.answers
    }

    fn find<'a>(all: &'a [Rendered], name: &[u8], qtype: u16) -> &'a Answer {
        &all.iter().find(|r| r.name == name && r.qtype == qtype).expect("rendered").answer
    }

    #[tokio::test]
    async fn every_name_is_rendered_and_follows_health() {
        const WWW: &[u8] = b"\x03www\x06foobar\x03com\x00";
        let up = rendered(&Live { services: ["www".to_owned()].into(), databases: None }).await;
        let a = find(&up, WWW, 1);
        assert_eq!((a.flags & 0xf, a.answers, a.authorities), (0, 1, 0), "{a:?}");
        assert_eq!(&a.body[a.len as usize - 4..a.len as usize], &[192, 0, 2, 10], "the VIP");
        assert_eq!(a.sum, sum(&a.body[..a.len as usize]));
        let nodata = find(&up, WWW, 28);
        assert_eq!((nodata.flags & 0xf, nodata.answers, nodata.authorities), (0, 0, 1), "NODATA with the SOA");
        assert_ne!(a.kind, nodata.kind, "one RRL bucket per name and type");
        let down = rendered(&Live::default()).await;
        let gone = find(&down, WWW, 1);
        assert_eq!((gone.flags & 0xf, gone.kind), (3, KIND_NXDOMAIN), "NXDOMAIN with no backend");
        assert!(up.iter().any(|r| r.name == b"\x06foobar\x03com\x00" && r.qtype == 6), "the SOA");
    }

    #[tokio::test]
    async fn the_nxdomain_template_knows_its_pointers() {
        let t = rendering(&Live::default()).await.nxdomain.expect("a template");
        assert_eq!((t.answer.flags & 0xf, t.answer.authorities, t.answer.kind), (3, 1, KIND_NXDOMAIN));
        // The SOA's owner is written out; its name server's and its mailbox's names point at it.
        assert_eq!(t.pointer_count, 2, "{:?}", &t.pointers);
        assert_eq!(&t.apex[..t.apex_len as usize], b"\x06foobar\x03com\x00");
    }
}
