//! In front of the zone: counting every query by outcome, and per-source response rate
//! limiting (RRL) so foobar cannot be used to amplify floods at spoofed victims.
//!
//! Limits apply over UDP only (a TCP client has proven its address), per source prefix (/24
//! for IPv4, /56 for IPv6: attackers rotate addresses within their block), with the same
//! generic cell rate algorithm as the SYN limiter. Over the limit a query gets no answer.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use foobar_common::firewall::gcra;
use hickory_server::{
    net::{runtime::Time, xfer::Protocol},
    proto::op::{Header, MessageType, Metadata, ResponseCode},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::Catalog,
};

/// Most source prefixes tracked at once; the table is cleared when it fills (cheap and safe:
/// a cleared prefix starts again with a full bucket).
const MAX_TRACKED: usize = 65_536;

/// DNS counters, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub noerror: AtomicU64,
    pub nxdomain: AtomicU64,
    pub refused: AtomicU64,
    pub formerr: AtomicU64,
    pub other: AtomicU64,
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

/// Per-prefix token buckets (one GCRA timestamp each, in ns since `epoch`).
struct Limiter {
    interval_ns: u64,
    tolerance_ns: u64,
    epoch: Instant,
    tat: HashMap<IpAddr, u64>,
}

impl Limiter {
    fn allow(&mut self, src: IpAddr) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        if self.tat.len() >= MAX_TRACKED {
            self.tat.clear();
        }
        let key = prefix(src);
        let tat = self.tat.get(&key).copied().unwrap_or(0);
        match gcra(tat, now, self.interval_ns, self.tolerance_ns) {
            Some(next) => {
                self.tat.insert(key, next);
                true
            }
            None => false,
        }
    }
}

fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => std::net::Ipv4Addr::from(u32::from(a) & 0xffff_ff00).into(),
        IpAddr::V6(a) => std::net::Ipv6Addr::from(u128::from(a) & !((1u128 << 72) - 1)).into(),
    }
}

/// The catalog behind counters and the rate limiter.
pub struct Guard {
    catalog: Catalog,
    limiter: Option<Mutex<Limiter>>,
    pub stats: std::sync::Arc<DnsStats>,
}

impl Guard {
    /// `responses_per_second` per source prefix (bursts of the same size); 0 turns RRL off.
    pub fn new(catalog: Catalog, responses_per_second: u32, stats: std::sync::Arc<DnsStats>) -> Guard {
        let limiter = (responses_per_second > 0).then(|| {
            let interval_ns = 1_000_000_000 / u64::from(responses_per_second);
            Mutex::new(Limiter {
                interval_ns,
                tolerance_ns: interval_ns * u64::from(responses_per_second - 1),
                epoch: Instant::now(),
                tat: HashMap::new(),
            })
        });
        Guard { catalog, limiter, stats }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Guard {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response: R) -> ResponseInfo {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        if request.protocol() == Protocol::Udp {
            let allowed = match &self.limiter {
                Some(l) => l.lock().map(|mut l| l.allow(request.src().ip())).unwrap_or(true),
                None => true,
            };
            if !allowed {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                // No answer at all: an amplifier that stays silent amplifies nothing.
                let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
                metadata.response_code = ResponseCode::Refused;
                return ResponseInfo::from(Header { metadata, counts: Default::default() });
            }
        }
        let info = self.catalog.handle_request::<R, T>(request, response).await;
        let counter = match info.response_code {
            ResponseCode::NoError => &self.stats.noerror,
            ResponseCode::NXDomain => &self.stats.nxdomain,
            ResponseCode::Refused => &self.stats.refused,
            ResponseCode::FormErr => &self.stats.formerr,
            _ => &self.stats.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        info
    }
}
