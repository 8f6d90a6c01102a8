//! In front of the zone: counting every query by outcome, and response rate limiting (see
//! `rrl`) over UDP so foobar cannot be used to amplify floods at spoofed victims. A TCP
//! client has proven its address and is not limited.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use hickory_server::{
    net::{NetError, runtime::Time, xfer::Protocol},
    proto::{
        op::{Header, ResponseCode},
        rr::Record,
        serialize::binary::{BinDecodable, BinDecoder},
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::{Catalog, MessageResponse, MessageResponseBuilder, Queries},
};

use super::{
    fast::Fast,
    rrl::{Kind, Rrl, Verdict},
};

/// DNS counters, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Of `rate_limited`, those answered empty with TC (RRL's slip).
    pub slipped: AtomicU64,
    pub noerror: AtomicU64,
    pub nxdomain: AtomicU64,
    pub refused: AtomicU64,
    pub formerr: AtomicU64,
    pub other: AtomicU64,
    /// Of `queries`, those answered from the rendered answers without the zone's catalog.
    pub answered_rendered: AtomicU64,
}

impl DnsStats {
    /// (rcode label, count) for every outcome counted.
    pub fn by_rcode(&self) -> [(&'static str, u64); 5] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("NOERROR", l(&self.noerror)),
            ("NXDOMAIN", l(&self.nxdomain)),
            ("REFUSED", l(&self.refused)),
            ("FORMERR", l(&self.formerr)),
            ("other", l(&self.other)),
        ]
    }
}

/// The catalog behind counters and the rate limiter; cheap to clone (UDP and TCP share one).
#[derive(Clone)]
pub struct Guard {
    catalog: Arc<Catalog>,
    rrl: Option<Arc<Mutex<Rrl>>>,
    pub stats: Arc<DnsStats>,
}

impl Guard {
    /// `responses_per_second` per bucket (bursts of the same size; 0 turns RRL off), every
    /// `slip`-th limited answer truncated.
    pub fn new(catalog: Arc<Catalog>, responses_per_second: u32, slip: u32, stats: Arc<DnsStats>) -> Guard {
        let rrl = (responses_per_second > 0).then(|| Arc::new(Mutex::new(Rrl::new(responses_per_second, slip))));
        Guard { catalog, rrl, stats }
    }
}

impl Guard {
    /// `rendering`'s answers for [`Guard::answer_rendered`], in this guard's RRL buckets.
    pub fn fast(&self, rendering: &super::render::Rendering) -> Fast {
        match &self.rrl {
            Some(rrl) => Fast::new(rendering, rrl.lock().ok().as_deref()),
            None => Fast::new(rendering, None),
        }
    }

    /// Answers a UDP `query` from `client` out of `fast` into `out` as XDP would, counted and
    /// rate limited as the catalog's answers are: `Some(true)` to send `out`, `Some(false)`
    /// when RRL holds it back, `None` to leave the query to [`Guard::handle_request`].
    pub fn answer_rendered(&self, fast: &Fast, query: &[u8], client: IpAddr, out: &mut Vec<u8>) -> Option<bool> {
        let taken = fast.take(query)?;
        self.counted(ResponseCode::from_low((taken.answer.flags & 0xf) as u8));
        let verdict = self.rrl.as_ref().and_then(|r| r.lock().ok().map(|mut r| r.decide(client, taken.kind)));
        let verdict = verdict.unwrap_or(Verdict::Answer);
        if verdict != Verdict::Answer {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        match verdict {
            Verdict::Drop => return Some(false),
            Verdict::Slip => self.stats.slipped.fetch_add(1, Ordering::Relaxed),
            Verdict::Answer => self.stats.answered_rendered.fetch_add(1, Ordering::Relaxed),
        };
        fast.write(&taken, query, verdict == Verdict::Slip, out)?;
        Some(true)
    }

    /// Counts a query answered with `rcode` without the catalog.
    pub fn counted(&self, rcode: ResponseCode) {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        self.count(rcode);
    }

    fn count(&self, rcode: ResponseCode) {
        let counter = match rcode {
            ResponseCode::NoError => &self.stats.noerror,
            ResponseCode::NXDomain => &self.stats.nxdomain,
            ResponseCode::Refused => &self.stats.refused,
            ResponseCode::FormErr => &self.stats.formerr,
            _ => &self.stats.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl RequestHandler for Guard {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response: R) -> ResponseInfo {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let info = match (&self.rrl, request.protocol()) {
            (Some(rrl), Protocol::Udp) => {
                let name = request.request_info().ok().map(|i| {
                    let q = i.query;
                    (q.name().to_ascii(), u16::from(q.query_type()))
                });
                let name = name.and_then(|(n, t)| rrl.lock().ok().map(|r| r.name_kind(n.as_bytes(), t)));
                let limited = Limited {
                    inner: response,
                    rrl: rrl.clone(),
                    stats: self.stats.clone(),
                    client: request.src().ip(),
                    name,
                    query: request.as_slice().to_vec().into(),
                };
                self.catalog.handle_request::<Limited<R>, T>(request, limited).await
            }
            _ => self.catalog.handle_request::<R, T>(request, response).await,
        };
        self.count(info.response_code);
        info
    }
}

/// A UDP answer on its way out, judged by RRL once the zone has said what it is.
#[derive(Clone)]
struct Limited<R> {
    inner: R,
    rrl: Arc<Mutex<Rrl>>,
    stats: Arc<DnsStats>,
    client: IpAddr,
    /// The query's bucket if the answer is positive (None: no single question).
    name: Option<Kind>,
    /// The query as received, for echoing its question in a slipped answer.
    query: Arc<[u8]>,
}

#[async_trait::async_trait]
impl<R: ResponseHandler> ResponseHandler for Limited<R> {
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
        let metadata = *response.metadata();
        let kind = match (metadata.response_code, self.name) {
            (ResponseCode::NoError, Some(name)) => name,
            (ResponseCode::NXDomain, _) => Kind::NxDomain,
            _ => Kind::Error,
        };
        let verdict = self.rrl.lock().map_or(Verdict::Answer, |mut r| r.decide(self.client, kind));
        if verdict == Verdict::Answer {
            return self.inner.send_response(response).await;
        }
        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        if verdict == Verdict::Slip
            && let Some(queries) = questions(&self.query)
        {
            self.stats.slipped.fetch_add(1, Ordering::Relaxed);
            let mut empty = metadata;
            empty.truncation = true;
            return self.inner.send_response(MessageResponseBuilder::new(&queries, None).build_no_records(empty)).await;
        }
        // No answer at all: an amplifier that stays silent amplifies nothing.
        Ok(ResponseInfo::from(Header { metadata, counts: Default::default() }))
    }
}

/// The question section of `query` (already parsed once by the server, so this succeeds).
fn questions(query: &[u8]) -> Option<Queries> {
    let mut decoder = BinDecoder::new(query);
    let header = Header::read(&mut decoder).ok()?;
    Queries::read(&mut decoder, usize::from(header.counts.queries)).ok()
}
