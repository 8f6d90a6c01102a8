//! The authoritative DNS server for the configured zone (hickory-server), on UDP and TCP at
//! every `dns.listen` address. Its answers follow the data plane: the daemon sends what is
//! live over a watch channel, and one updater task rebuilds the zone and swaps the whole
//! record map under a single write lock, so a query sees the old zone or the new one, never a
//! mix. The SOA serial is the config's ([`ZoneSpec::serial`]): answers that follow health are
//! dynamic, as in gdnsd or Route 53, so every node with one config gives one serial.
//!
//! - `zone`: the records, built from the config and what is live.
//! - `guard`: counters and response rate limiting in front of the zone.
//! - `rrl`: the rate limiter's buckets and slip.
//! - `tcp`: DNS over TCP, with a connection cap and timeouts.
//! - `render`: the zone's answers rendered for XDP to answer from, after each rebuild.
//! - `fast`: those answers answered by the UDP server too, ahead of the catalog.
//! - `udp`: DNS over UDP, a loop per socket; `batch`: its datagrams moved by the batch.

pub mod batch;
pub mod fast;
pub mod guard;
pub mod render;
pub mod rrl;
pub mod steer;
pub mod tcp;
pub mod udp;
pub mod zone;

use std::sync::Arc;

use hickory_server::{
    net::runtime::TokioRuntimeProvider,
    proto::rr::LowerName,
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType},
};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::watch,
    task::JoinHandle,
};
use tracing::{info, warn};

use self::zone::{Live, ZoneSpec};

/// A DNS listen address that cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("dns.listen {addr} ({transport}): {source}")]
pub struct DnsError {
    pub addr: std::net::SocketAddr,
    pub transport: &'static str,
    pub source: std::io::Error,
}

/// How the server runs, from `[dns]` (everything but the zone's contents).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub listen: Vec<std::net::SocketAddr>,
    /// UDP answers per second per RRL bucket; 0 turns RRL off.
    pub responses_per_second: u32,
    pub slip: u32,
    pub allow_axfr: bool,
    pub tcp_connections: u32,
    pub tcp_idle_timeout: std::time::Duration,
}

impl From<&crate::config::schema::Dns> for Settings {
    fn from(d: &crate::config::schema::Dns) -> Settings {
        Settings {
            listen: d.listen.clone(),
            responses_per_second: d.responses_per_second,
            slip: d.slip,
            allow_axfr: d.allow_axfr,
            tcp_connections: d.tcp_connections,
            tcp_idle_timeout: d.tcp_idle_timeout.0,
        }
    }
}

/// A running DNS server and the channel its answers follow.
pub struct Dns {
    live: watch::Sender<(Arc<ZoneSpec>, Live)>,
    answers: watch::Receiver<Arc<render::Rendering>>,
    serial: watch::Receiver<u32>,
    udp_servers: Vec<JoinHandle<()>>,
    updater: JoinHandle<()>,
    pub zone: String,
    pub listen: Vec<std::net::SocketAddr>,
    pub stats: Arc<guard::DnsStats>,
    /// DNS-over-TCP connections, open and turned away.
    pub tcp: Arc<crate::slots::Slots>,
    tcp_servers: Vec<JoinHandle<()>>,
}

/// The zone's records for `live`, and a catalog answering from them (zone transfers with
/// `allow_axfr`).
pub async fn catalog(
    spec: &ZoneSpec,
    live: &Live,
    allow_axfr: bool,
) -> (Arc<InMemoryZoneHandler<TokioRuntimeProvider>>, Catalog) {
    let axfr = if allow_axfr { AxfrPolicy::AllowAll } else { AxfrPolicy::Deny };
    let handler =
        Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(spec.origin.clone(), ZoneType::Primary, axfr));
    *handler.records_mut().await = spec.build(live);
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::from(&spec.origin), vec![handler.clone() as Arc<dyn ZoneHandler>]);
    (handler, catalog)
}

impl Dns {
    /// Binds every `config.listen` address and starts answering for `spec` with `live`.
    pub async fn start(spec: &ZoneSpec, config: &Settings, live: Live) -> Result<Dns, DnsError> {
        let listen = &config.listen;
        let (handler, catalog) = catalog(spec, &live, config.allow_axfr).await;
        let catalog = Arc::new(catalog);
        let stats = Arc::new(guard::DnsStats::default());
        let guard = guard::Guard::new(catalog.clone(), config.responses_per_second, config.slip, stats.clone());
        let rendered = render::render(&catalog, spec).await;
        let (fast_tx, fast_rx) = watch::channel(Arc::new(guard.fast(&rendered)));
        let tcp = crate::slots::Slots::new("dns-tcp", config.tcp_connections as usize);
        let (mut udp_servers, mut tcp_servers) = (Vec::new(), Vec::new());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for addr in listen {
            // One UDP socket per core on the same address (SO_REUSEPORT), each taking the
            // queries of its CPU, so no single socket's queue is the bottleneck.
            let group = (0..cores)
                .map(|_| reuseport_udp(*addr))
                .collect::<std::io::Result<Vec<UdpSocket>>>()
                .map_err(|source| DnsError { addr: *addr, transport: "udp", source })?;
            if let Err(e) = steer::by_cpu(&group[0], cores as u32) {
                warn!(addr = %addr, error = %e, "cannot steer queries by CPU: the kernel's hash spreads them");
            }
            for udp in group {
                udp_servers.push(tokio::spawn(udp::serve(udp, guard.clone(), fast_rx.clone())));
            }
            let listener =
                TcpListener::bind(addr).await.map_err(|source| DnsError { addr: *addr, transport: "tcp", source })?;
            let idle = config.tcp_idle_timeout;
            tcp_servers.push(tokio::spawn(tcp::serve(listener, guard.clone(), tcp.clone(), idle)));
        }
        let zone = spec.origin.to_string();
        info!(zone, listen = ?listen, serial = spec.serial, "DNS answering");
        let (live_tx, mut live_rx) = watch::channel((Arc::new(spec.clone()), live));
        let (serial_tx, serial_rx) = watch::channel(spec.serial);
        let (answers_tx, answers_rx) = watch::channel(Arc::new(rendered));
        let updater = tokio::spawn(async move {
            while live_rx.changed().await.is_ok() {
                let (spec, live) = live_rx.borrow_and_update().clone();
                *handler.records_mut().await = spec.build(&live);
                let rendered = render::render(&catalog, &spec).await;
                let _ = fast_tx.send(Arc::new(guard.fast(&rendered)));
                let _ = answers_tx.send(Arc::new(rendered));
                let _ = serial_tx.send(spec.serial);
                info!(serial = spec.serial, live = ?live.services, "DNS zone updated");
            }
        });
        Ok(Dns {
            live: live_tx,
            answers: answers_rx,
            serial: serial_rx,
            udp_servers,
            updater,
            zone,
            listen: listen.to_vec(),
            stats,
            tcp,
            tcp_servers,
        })
    }

    /// Publishes what is live (and the zone, after a reload); only changes rebuild the zone.
    pub fn update(&self, spec: &ZoneSpec, live: Live) {
        self.live.send_if_modified(|current| {
            if *current.0 == *spec && current.1 == live {
                return false;
            }
            *current = (Arc::new(spec.clone()), live);
            true
        });
    }

    /// The zone's answers as rendered after its last rebuild, for XDP; changes on each rebuild.
    pub fn answers(&self) -> watch::Receiver<Arc<render::Rendering>> {
        self.answers.clone()
    }

    /// The zone's current SOA serial.
    pub fn serial(&self) -> u32 {
        *self.serial.borrow()
    }
}

/// Receive buffer of each UDP socket: a burst of queries waits here while the server catches
/// up, instead of being dropped by a default-sized buffer (about 200 queries).
const UDP_RECEIVE_BUFFER: libc::c_int = 4 << 20;

fn reuseport_udp(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    // SO_RCVBUFFORCE passes net.core.rmem_max (as root, which the daemon is); else the cap applies.
    let size = UDP_RECEIVE_BUFFER;
    // SAFETY: setsockopt reads an int the size it is told from a live local.
    let forced = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER as usize)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.updater.abort();
        for t in self.udp_servers.iter().chain(&self.tcp_servers) {
            t.abort();
        }
    }
}
