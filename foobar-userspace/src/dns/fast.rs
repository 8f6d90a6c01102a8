//! The rendered answers XDP answers from, answered by the userspace server too: a plain query
//! (as `foobar_common::dns::read_query` reads one) that reaches a socket, because XDP is not
//! attached or the query came from the node itself, is answered from them without a trip
//! through hickory's catalog and encoder. Byte for byte the same answer either way.

use std::collections::HashMap;

use foobar_common::dns::{
    Answer, AnswerKey, NxTemplate, QTYPE_OWNED, QUERY_MAX, Reply, moved_pointer, opt_record, read_query, reply,
    under_apex,
};
use hickory_server::proto::{rr::Name, serialize::binary::BinDecodable};

use super::{
    render::Rendering,
    rrl::{Kind, Rrl},
};

/// One rendering's answers, by question, with each answer's RRL bucket kind.
#[derive(Default)]
pub struct Fast {
    /// Keyed by the question's lowercase wire-format name followed by its type.
    answers: HashMap<Box<[u8]>, (Answer, Kind)>,
    nxdomain: Option<NxTemplate>,
}

/// A query the fast path took: the answer its reply is written from and the bucket RRL
/// judges it by.
pub struct Taken<'a> {
    pub kind: Kind,
    pub answer: &'a Answer,
    query: foobar_common::dns::Query,
    /// For an NXDOMAIN from the template: how far its pointers move.
    moved: Option<i32>,
}

impl Fast {
    /// The answers of `rendering`; `rrl` gives positive answers their buckets (the ones the
    /// guard gives the same questions).
    pub fn new(rendering: &Rendering, rrl: Option<&Rrl>) -> Fast {
        let mut answers = HashMap::with_capacity(rendering.answers.len());
        for r in &rendering.answers {
            let kind = match (r.answer.kind, rrl) {
                (foobar_common::dns::KIND_NXDOMAIN, _) => Kind::NxDomain,
                (_, Some(rrl)) => {
                    let dotted = Name::from_bytes(&r.name).map(|n| n.to_ascii()).unwrap_or_default();
                    rrl.name_kind(dotted.as_bytes(), r.qtype)
                }
                (_, None) => Kind::Error,
            };
            answers.insert(key(&r.name, r.qtype), (r.answer, kind));
        }
        Fast { answers, nxdomain: rendering.nxdomain }
    }

    /// The answer to `query` if it is one XDP would give; `None` leaves it to the server.
    pub fn take(&self, query: &[u8]) -> Option<Taken<'_>> {
        if query.len() > QUERY_MAX {
            return None;
        }
        let mut msg = [0u8; QUERY_MAX];
        msg[..query.len()].copy_from_slice(query);
        let mut k = AnswerKey::default();
        let q = read_query(&msg, query.len(), &mut k)?;
        let n = usize::from(k.name_len);
        let mut question = [0u8; 258];
        question[..n].copy_from_slice(&k.name[..n]);
        question[n..n + 2].copy_from_slice(&k.qtype.to_be_bytes());
        let (answer, kind, moved) = match self.answers.get(&question[..n + 2]) {
            Some((a, kind)) => (a, *kind, None),
            None => {
                question[n..n + 2].copy_from_slice(&QTYPE_OWNED.to_be_bytes());
                if self.answers.contains_key(&question[..n + 2]) {
                    return None;
                }
                let t = self.nxdomain.as_ref()?;
                let prefix = under_apex(&k, t)?;
                (&t.answer, Kind::NxDomain, Some(prefix as i32 - i32::from(t.probe_prefix)))
            }
        };
        // One that would not fit is the server's to truncate, before RRL counts it.
        reply(answer, &q, q.question_len, false)?;
        Some(Taken { kind, answer, query: q, moved })
    }

    /// Writes the reply to `query` (as [`Fast::take`] took it) into `out`, `slip`ped or not.
    pub fn write(&self, taken: &Taken<'_>, query: &[u8], slip: bool, out: &mut Vec<u8>) -> Option<()> {
        let Reply { flags, counts, body_len, opt, .. } =
            reply(taken.answer, &taken.query, taken.query.question_len, slip)?;
        out.clear();
        out.extend_from_slice(&query[..2]);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_be_bytes());
        }
        // The question as the client wrote it (its name's case kept).
        out.extend_from_slice(query.get(12..12 + taken.query.question_len)?);
        let body_at = out.len();
        out.extend_from_slice(&taken.answer.body[..body_len]);
        if let (Some(by), Some(t), false) = (taken.moved, &self.nxdomain, slip) {
            for &pos in &t.pointers[..t.pointer_count as usize] {
                let at = body_at + usize::from(pos);
                let old = u16::from_be_bytes([*out.get(at)?, *out.get(at + 1)?]);
                out[at..at + 2].copy_from_slice(&moved_pointer(old, by).to_be_bytes());
            }
        }
        if opt {
            out.extend_from_slice(&opt_record(taken.query.edns_size));
        }
        Some(())
    }
}

/// A question as [`Fast`] keys it.
fn key(name: &[u8], qtype: u16) -> Box<[u8]> {
    [name, &qtype.to_be_bytes()].concat().into_boxed_slice()
}
