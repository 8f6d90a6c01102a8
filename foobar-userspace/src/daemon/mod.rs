//! The daemon: its lifecycle and its event loop, separate from signals and the command line
//! so tests run the very code `foobar run` does.
//!
//! [`Daemon::start`] loads and configures the data plane; [`Daemon::serve`] runs the event
//! loop until its shutdown future resolves; [`Daemon::stop`] cleans up. The loop is the only
//! owner of the data plane: control requests and health results reach it over channels, so
//! no map update ever races another.
//!
//! - `backends`: operator state and health combined into a backend's data-plane state.
//! - `databases`: the replication monitor's reports, feeding status, metrics and DNS.
//! - `reload`: applying a changed config as a difference.
//! - `status`: the report `foobar status` prints; `exposition`: what `/metrics` shows.

mod backends;
mod databases;
mod exposition;
mod reload;
mod status;

use std::{collections::HashMap, future::Future, path::PathBuf, time::Instant};

use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::{info, warn};

use self::backends::{Admin, Backends};
use crate::{
    apply,
    config::Config,
    control::{
        protocol::{HealthStatus, Request, Response},
        server::{self, Call},
    },
    dataplane::{Dataplane, DataplaneError, Pins, services::Services},
    health::{self, Probe},
    metrics::{self as exporter, Scrape},
    net::Cidr,
};

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("cannot open the control socket {path}: {source}")]
    ControlSocket { path: PathBuf, source: std::io::Error },
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("DNS: {0}")]
    Dns(String),
    #[error("{0}")]
    Replication(String),
}

/// A running foobar: the loaded data plane, its services and the config it runs.
pub struct Daemon {
    dataplane: Dataplane,
    services: Services,
    backends: Backends,
    config: Config,
    /// Per service id: the last traffic sample, for rates in `status`.
    samples: HashMap<u32, status::Sample>,
    /// The file the config came from, for reloads.
    source: Option<PathBuf>,
    /// `foobar run --detach-on-exit`: detach on exit whatever the (reloaded) config says.
    detach_on_exit: bool,
    /// VIPs and DNS addresses foobar added to the node (removed again on stop).
    added: crate::addresses::Added,
    /// The DNS server, while serving with a `[dns]` section.
    dns: Option<crate::dns::Dns>,
    /// Running health checkers, and where they report (set while serving).
    checkers: Vec<tokio::task::JoinHandle<()>>,
    probes: Option<mpsc::Sender<Probe>>,
    /// The replication monitor and its last report.
    databases: databases::Databases,
}

impl Daemon {
    /// Loads the XDP programs, fills the maps from `config`, then attaches to its interfaces.
    ///
    /// Rules go in before any attach, so an untrusted interface never runs with an empty firewall.
    pub fn start(config: Config) -> Result<Daemon, DaemonError> {
        // Read before anything is loaded or attached: a missing password file stops nothing.
        let monitor = databases::settings(&config).map_err(DaemonError::Replication)?;
        let pins = Pins::prepare(&config.daemon.pin_dir)
            .map_err(|e| DataplaneError::Pin(format!("{}: {e}", config.daemon.pin_dir.display())))?;
        let mut dataplane = Dataplane::load_pinned(pins)?;
        apply::firewall(&mut dataplane, &config.firewall)?;
        let services = apply::services(&mut dataplane, &config)?;
        let added = crate::addresses::ensure(&config);
        for (iface, trust) in apply::interface_trust(&config) {
            if !config.services.is_empty() {
                enable_forwarding(&iface);
            }
            dataplane.attach(&iface, trust, config.daemon.xdp_mode)?;
        }
        info!(interfaces = dataplane.attachments().len(), services = services.all().len(), "data plane running");
        Ok(Daemon {
            dataplane,
            services,
            backends: Backends::default(),
            config,
            samples: HashMap::new(),
            added,
            source: None,
            detach_on_exit: false,
            dns: None,
            checkers: Vec::new(),
            probes: None,
            databases: databases::Databases::waiting(monitor),
        })
    }

    /// Detach and unpin on exit even if the config says to keep forwarding (survives reloads).
    pub fn detach_on_exit(mut self, yes: bool) -> Daemon {
        self.detach_on_exit = yes;
        self
    }

    /// Names the file the config came from, so that `reload` and SIGHUP re-read it.
    pub fn watching(mut self, path: PathBuf) -> Daemon {
        self.source = Some(path);
        self
    }

    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one control request (the socket's requests all come through here).
    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Status => return Response::Status(Box::new(self.status())),
            Request::Backend { service, backend, action } => {
                self.backends.entry(&service, &backend).admin = Admin::from(action);
                self.publish(&service, &backend, "operator").map(|()| format!("{service}/{backend}: {action:?}"))
            }
            Request::FirewallBlock { cidr } => parse_cidr(&cidr).and_then(|c| {
                self.dataplane.deny_source(c).map_err(|e| e.to_string())?;
                info!(%c, "source blocked");
                Ok(format!("{c} blocked"))
            }),
            Request::FirewallUnblock { cidr } => {
                parse_cidr(&cidr).and_then(|c| match self.dataplane.undeny_source(c).map_err(|e| e.to_string())? {
                    true => {
                        info!(%c, "source unblocked");
                        Ok(format!("{c} unblocked"))
                    }
                    false => Err(format!("{c} is not on the deny list (see `foobar firewall list`)")),
                })
            }
            Request::Reload => self.reload(),
            Request::FirewallList => {
                return match self.dataplane.denied_sources() {
                    Ok(list) => Response::Firewall { denied: list.iter().map(Cidr::to_string).collect() },
                    Err(e) => Response::Error { message: e.to_string() },
                };
            }
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(message) => Response::Error { message },
        }
    }

    /// Takes in one health probe; a state change reaches the data plane at once.
    fn on_probe(&mut self, p: Probe) {
        let control = self.backends.entry(&p.service, &p.backend);
        let healthy = match p.change {
            Some(h) => h,
            None => control.health.as_ref().is_none_or(|h| h.healthy),
        };
        control.health =
            Some(HealthStatus { healthy, last: p.detail.clone(), latency_ms: p.latency.as_secs_f64() * 1000.0 });
        control.latency.observe(p.latency.as_secs_f64());
        if let Some(up) = p.change {
            let why = if up { "health check passed" } else { "health check failed" };
            info!(service = p.service, backend = p.backend, last = p.detail, "{why}");
            if let Err(e) = self.publish(&p.service, &p.backend, why) {
                warn!(service = p.service, backend = p.backend, error = e, "cannot apply health change");
            }
        }
    }

    /// Pushes a backend's effective state to the data plane.
    fn publish(&mut self, service: &str, backend: &str, why: &str) -> Result<(), String> {
        let state = self.backends.get(service, backend).effective();
        let before =
            self.services.set_state(&mut self.dataplane, service, backend, state).map_err(|e| e.to_string())?;
        if before != state {
            info!(service, backend, from = before.name(), to = state.name(), why, "backend state changed");
            self.refresh_dns();
        }
        Ok(())
    }

    /// What DNS should answer for now: services with a backend taking new flows, and the
    /// databases' addresses once the replication monitor has checked them.
    fn live(&self) -> crate::dns::zone::Live {
        crate::dns::zone::Live {
            databases: self.databases.answers(),
            services: self
                .services
                .all()
                .iter()
                .filter(|s| !s.active.is_empty())
                .map(|s| s.spec.name.clone())
                .collect(),
        }
    }

    /// Hands DNS the current zone and what is live (it rebuilds only on a change).
    fn refresh_dns(&self) {
        let Some(dns) = &self.dns else { return };
        match crate::dns::zone::ZoneSpec::from_config(&self.config) {
            Ok(Some(spec)) => dns.update(spec, self.live()),
            Ok(None) => {}
            Err(e) => warn!(error = e, "cannot build the DNS zone"),
        }
    }

    /// (Re)starts one health checker per checked backend, from each backend's current health.
    fn restart_checks(&mut self) {
        for c in self.checkers.drain(..) {
            c.abort();
        }
        let Some(tx) = self.probes.clone() else { return };
        let mut targets = health::targets(&self.config);
        for t in &mut targets {
            t.healthy = self.backends.get(&t.service, &t.backend).health.is_none_or(|h| h.healthy);
        }
        self.checkers = health::spawn(targets, tx);
    }

    /// Runs the event loop (control socket, health checks, rate sampling, reloads on
    /// `hangups`) until `shutdown` resolves, then stops.
    pub async fn serve(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut hangups: Option<tokio::signal::unix::Signal>,
    ) -> Result<(), DaemonError> {
        let path = self.config.daemon.control_socket.clone();
        let listener =
            server::bind(&path).map_err(|source| DaemonError::ControlSocket { path: path.clone(), source })?;
        let (call_tx, mut calls) = mpsc::channel::<Call>(64);
        let (probe_tx, mut probes) = mpsc::channel::<Probe>(256);
        let (report_tx, mut reports) = mpsc::channel::<crate::replication::Report>(16);
        let control = tokio::spawn(server::serve(listener, call_tx));
        let addr = self.config.daemon.metrics_listen;
        let metrics_listener = exporter::bind(addr).await.map_err(|source| DaemonError::Metrics { addr, source })?;
        let (scrape_tx, mut scrapes) = mpsc::channel::<Scrape>(16);
        let exporter = tokio::spawn(exporter::serve(metrics_listener, scrape_tx));
        self.probes = Some(probe_tx);
        self.restart_checks();
        self.databases.report_to(report_tx);
        if let (Some(spec), Some(dns)) =
            (crate::dns::zone::ZoneSpec::from_config(&self.config).map_err(DaemonError::Dns)?, &self.config.dns)
        {
            self.dns = Some(
                crate::dns::Dns::start(spec, &dns.listen, dns.responses_per_second, dns.allow_axfr, self.live())
                    .await
                    .map_err(DaemonError::Dns)?,
            );
        }
        info!(socket = %path.display(), metrics = %addr, checks = self.checkers.len(), "serving");
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        // Kernel log messages, handed to the same log as everything else as they arrive.
        // SAFETY: the logger owns its ring buffer's fd for its whole life and always returns it.
        let mut kernel_log = self.dataplane.take_kernel_log().and_then(|l| {
            match unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) } {
                Ok(fd) => Some(fd),
                Err(e) => {
                    warn!(error = %e, "cannot watch kernel log messages");
                    None
                }
            }
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(call) = calls.recv() => {
                    let response = self.handle(call.request);
                    let _ = call.reply.send(response);
                }
                Some(probe) = probes.recv() => self.on_probe(probe),
                Some(report) = reports.recv() => self.on_report(report),
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    info!("SIGHUP: reloading the config");
                    if let Err(e) = self.reload() {
                        warn!(error = e, "reload refused; the running config is unchanged");
                    }
                }
                Some(scrape) = scrapes.recv() => {
                    let _ = scrape.send(self.metrics());
                }
                _ = tick.tick() => self.sample(Instant::now()),
                Ok(mut ready) = async {
                    match kernel_log.as_mut() {
                        Some(fd) => fd.readable_mut().await,
                        None => std::future::pending().await,
                    }
                } => {
                    ready.get_inner_mut().flush();
                    ready.clear_ready();
                }
            }
        }
        control.abort();
        exporter.abort();
        self.dns = None;
        self.databases.run(None);
        for c in self.checkers.drain(..) {
            c.abort();
        }
        let _ = std::fs::remove_file(&path);
        self.stop()
    }

    /// Logs the final counters, then either leaves the data plane forwarding for the next
    /// `foobar run` to take over (the default), or detaches it and removes every pin and the
    /// addresses foobar added (`daemon.detach_on_exit`, `foobar run --detach-on-exit`).
    pub fn stop(mut self) -> Result<(), DaemonError> {
        match self.dataplane.counters() {
            Ok(c) => {
                for (counter, value) in c.nonzero() {
                    info!(counter = counter.name(), value, "final count");
                }
            }
            Err(e) => warn!(error = %e, "cannot read counters"),
        }
        let pin_dir = self.config.daemon.pin_dir.clone();
        if !(self.config.daemon.detach_on_exit || self.detach_on_exit) {
            info!(pins = %pin_dir.display(),
                "leaving XDP attached and its state pinned: the next `foobar run` takes over without a gap \
                 (`foobar cleanup` removes it all)");
            return Ok(());
        }
        std::mem::take(&mut self.added).remove();
        self.dataplane.detach_all()?;
        match Pins::remove_all(&pin_dir) {
            Ok(n) => info!(pins = %pin_dir.display(), removed = n, "detached and unpinned"),
            Err(e) => warn!(pins = %pin_dir.display(), error = %e, "cannot remove pins"),
        }
        Ok(())
    }
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse().map_err(|e| format!("{e}; type an address or prefix, e.g. `foobar firewall block 203.0.113.7/32`"))
}

/// The kernel's FIB lookup, which the XDP load balancer asks for next hops, answers only for
/// interfaces that forward (as IPVS needs `ip_forward`). Turned on per interface, not globally.
fn enable_forwarding(iface: &str) {
    for family in ["ipv4", "ipv6"] {
        let path = format!("/proc/sys/net/{family}/conf/{iface}/forwarding");
        match std::fs::read_to_string(&path) {
            Ok(v) if v.trim() == "1" => {}
            _ => match std::fs::write(&path, "1") {
                Ok(()) => info!(interface = iface, family, "enabled forwarding for the load balancer"),
                Err(e) => warn!(interface = iface, family, error = %e,
                    "cannot enable forwarding; balanced traffic will be dropped as lb_no_route"),
            },
        }
    }
}
