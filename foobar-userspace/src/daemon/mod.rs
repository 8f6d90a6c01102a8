//! The daemon: its lifecycle and its event loop, separate from signals and the command line
//! so tests run the very code `foobar run` does.
//!
//! [`Daemon::start`] loads and configures the data plane; [`Daemon::serve`] runs the event
//! loop until its shutdown future resolves; [`Daemon::stop`] cleans up. The loop is the only
//! owner of the data plane: control requests and health results reach it over channels, so
//! no map update ever races another.
//!
//! - `backends`: each backend's record (operator state, health, last result, latency).
//! - `control`: the control socket's requests.
//! - `databases`: the replication monitor's reports, feeding status, metrics and DNS.
//! - `reload`: applying a changed config's plan as a difference.
//! - `status`: the report `foobar status` prints; `exposition`: what `/metrics` shows.
//! - `fd_limit`: the open-file limit, raised to cover every listener's cap.
//! - `error`: what can go wrong, by kind.

mod backends;
mod balance;
mod control;
mod databases;
mod error;
mod exposition;
mod fd_limit;
mod reload;
mod state;
mod status;

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::{debug, info, warn};

pub use self::error::{ControlError, DaemonError, ReloadError};
use self::{
    backends::Backends,
    state::{Stance, State, StateError},
};
use crate::{
    control::server::{self, Call},
    dataplane::{Dataplane, DataplaneError, Pins, pins::PinLock, services::Services},
    health::{self, Probe},
    metrics::{self as exporter, Scrape},
    net::Cidr,
    plan::Plan,
};

/// A running foobar: the loaded data plane, its services and the plan it runs.
pub struct Daemon {
    /// This process's hold on the pin directory (one foobar per pin directory).
    _lock: PinLock,
    dataplane: Dataplane,
    services: Services,
    backends: Backends,
    plan: Plan,
    /// Prefixes the operator blocked at run time (kept in the state file with the rest).
    blocked: BTreeSet<Cidr>,
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
    /// Its answers as XDP gives them.
    dns_answers: crate::dataplane::dns::DnsAnswers,
    /// Running health checkers, and where they report (set while serving).
    checkers: Vec<tokio::task::JoinHandle<()>>,
    probes: Option<mpsc::Sender<Probe>>,
    /// The replication monitor and its last report.
    databases: databases::Databases,
    /// Live flows, counted off the event loop (while serving).
    census: Option<crate::dataplane::census::Census>,
    /// When the flow count least-connections last rebalanced from was taken.
    balanced_at: Option<Instant>,
    /// `foobar node drain`: no service is announced (kept in the state file).
    node_drained: bool,
    /// Keeps BIRD's protocols as the services' state wants them (while serving, with `[announce]`).
    announcer: Option<crate::announce::Announcer>,
    /// How the last config load (start or reload) went, for `/metrics`.
    last_config: ConfigLoad,
    /// `[cluster]`: this node's part, until serving starts the flow sync with it.
    cluster: Option<crate::sync::Settings>,
    sync: Option<crate::sync::FlowSync>,
}

/// Whether the last config load succeeded, and when one last did.
#[derive(Clone, Copy, Debug)]
struct ConfigLoad {
    successful: bool,
    succeeded_at: std::time::SystemTime,
}

impl Daemon {
    /// Loads the XDP programs, fills the maps from `plan`, then attaches to its interfaces.
    ///
    /// Rules go in before any attach, so an untrusted interface never runs with an empty firewall.
    pub fn start(plan: Plan) -> Result<Daemon, DaemonError> {
        let config = &plan.config;
        // Read before anything is loaded or attached: a missing password file or a state
        // file that is not foobar's stops nothing.
        let monitor = databases::settings(&plan)?;
        let cluster = crate::sync::Settings::of(config)?;
        let dns_tcp = config.dns.as_ref().map_or(0, |d| u64::from(d.tcp_connections));
        fd_limit::raise(dns_tcp + (crate::metrics::SLOTS + crate::control::server::SLOTS) as u64)?;
        let state = State::load(&config.daemon.state_file)?;
        let pin_dir = &config.daemon.pin_dir;
        let pins = Pins::prepare(pin_dir).map_err(|source| DataplaneError::PinDir { path: pin_dir.clone(), source })?;
        // Before anything is loaded or touched: a second `foobar run` leaves the first alone.
        let lock = pins.lock()?;
        let mut dataplane = Dataplane::load_pinned(pins, &plan.capacity)?;
        dataplane.set_lb_settings(plan.lb)?;
        if let Some(c) = &cluster {
            dataplane.set_nat_peers(&c.nat_addresses())?;
        }
        let fw = &plan.firewall;
        dataplane.set_firewall_settings(fw.settings)?;
        let blocked = state.blocks();
        for cidr in fw.deny.iter().chain(&blocked) {
            dataplane.deny_source(*cidr)?;
        }
        dataplane.set_allow_rules(&fw.compiled)?;
        // Every id as the last run handed it out, so the flows it left keep their backends.
        let mut services =
            Services::resuming(plan.capacity, state.ids.clone()).nat_from(cluster.as_ref().map(|c| c.nat_address));
        for spec in &plan.services {
            services.add(&mut dataplane, spec.clone())?;
        }
        services.restore_retired(&mut dataplane)?;
        let flows = dataplane.active_flows()?;
        services.release_retired(&mut dataplane, |id| flows.by_backend.contains_key(&id))?;
        // Drains and disables before any attach: a drained backend never gets a new flow.
        let mut backends = Backends::default();
        for (service, stances) in &state.backends {
            let Some(spec) = plan.service(service) else { continue };
            for (backend, stance) in stances.iter().filter(|(b, _)| spec.backends.iter().any(|x| &x.name == *b)) {
                let record = backends.entry(service, backend);
                record.admin = (*stance).into();
                services.set_state(&mut dataplane, service, backend, record.effective())?;
                info!(service, backend, stance = ?stance, "kept from before the restart");
            }
        }
        let added = crate::addresses::ensure(config);
        for (iface, trust) in &plan.interfaces {
            if !plan.services.is_empty() {
                enable_forwarding(iface);
            }
            dataplane.attach(iface, *trust, config.daemon.xdp_mode)?;
        }
        info!(interfaces = dataplane.attachments().len(), services = services.all().len(), "data plane running");
        let daemon = Daemon {
            _lock: lock,
            census: None,
            balanced_at: None,
            node_drained: state.node_drained,
            announcer: None,
            last_config: ConfigLoad { successful: true, succeeded_at: std::time::SystemTime::now() },
            cluster,
            sync: None,
            dataplane,
            services,
            backends,
            plan,
            blocked,
            samples: HashMap::new(),
            added,
            source: None,
            detach_on_exit: false,
            dns: None,
            dns_answers: Default::default(),
            checkers: Vec::new(),
            probes: None,
            databases: databases::Databases::waiting(monitor, state.replication.clone()),
        };
        daemon.keep_state()?;
        Ok(daemon)
    }

    /// Writes what the operator changed, and every id, to the state file.
    fn keep_state(&self) -> Result<(), StateError> {
        let mut state = State {
            blocked: self.blocked.iter().map(Cidr::to_string).collect(),
            ids: self.services.ids().clone(),
            node_drained: self.node_drained,
            replication: self.databases.topology().clone(),
            ..State::default()
        };
        for spec in &self.plan.services {
            for b in &spec.backends {
                if let Some(stance) = Stance::of(self.backends.get(&spec.name, &b.name).admin) {
                    state.backends.entry(spec.name.clone()).or_default().insert(b.name.clone(), stance);
                }
            }
        }
        state.save(&self.plan.config.daemon.state_file)
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

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Takes in one health probe's result; a state change reaches the data plane at once.
    fn on_probe(&mut self, p: Probe) {
        let Some(up) = self.backends.entry(&p.service, &p.backend).observe(&p) else {
            // No change of state, but health may just have settled.
            self.refresh_announcements();
            return;
        };
        let why = if up { "health check passed" } else { "health check failed" };
        let last = match &p.result {
            Ok(answer) => answer.clone(),
            Err(e) => e.to_string(),
        };
        info!(service = p.service, backend = p.backend, last, "{why}");
        if let Err(e) = self.publish(&p.service, &p.backend, why) {
            warn!(service = p.service, backend = p.backend, error = %e, "cannot apply health change");
        }
    }

    /// Pushes a backend's effective state to the data plane.
    fn publish(&mut self, service: &str, backend: &str, why: &str) -> Result<(), DataplaneError> {
        let state = self.backends.get(service, backend).effective();
        let before = self.services.set_state(&mut self.dataplane, service, backend, state)?;
        if before != state {
            info!(service, backend, from = before.name(), to = state.name(), why, "backend state changed");
            self.follow_liveness();
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

    /// What each announced service wants of its route (BIRD protocol or command name) now, and why.
    fn wanted_announcements(&self) -> Vec<crate::announce::Wanted> {
        let mut out = Vec::new();
        for svc in self.services.all() {
            let Some(protocol) = self.announced_by(&svc.spec.name) else { continue };
            let settled = svc.spec.backends.iter().all(|b| self.backends.get(&svc.spec.name, &b.name).settled());
            let (announce, why) = if self.node_drained {
                (Some(false), "the node is drained (foobar node enable)")
            } else if !settled {
                (None, "waiting for health checks to settle (BIRD left as it was)")
            } else if self.sync.as_ref().is_some_and(|s| !s.settled()) {
                (None, "waiting for the cluster's peers to send their flows (BIRD left as it was)")
            } else if svc.active.is_empty() {
                (Some(false), "no backend is available")
            } else {
                (Some(true), "serving")
            };
            out.push(crate::announce::Wanted { protocol: protocol.to_owned(), announce, why: why.into() });
        }
        // This node's own NAT address: once its peers have sent their flows (a drain keeps it:
        // the node's flows still need their replies).
        if let Some(a) = self.plan.config.cluster.as_ref().and_then(|c| c.announce.as_ref()) {
            let (announce, why) = match &self.sync {
                Some(s) if s.settled() => (Some(true), "the cluster's peers have sent their flows"),
                _ => (None, "waiting for the cluster's peers to send their flows (BIRD left as it was)"),
            };
            out.push(crate::announce::Wanted { protocol: a.get_ref().clone(), announce, why: why.into() });
        }
        out
    }

    /// The BIRD protocol service `name` is announced by (`announce = ...`), if any.
    fn announced_by(&self, name: &str) -> Option<&str> {
        let service = self.plan.config.services.iter().find(|s| *s.name.get_ref() == name)?;
        service.announce.as_ref().map(|a| a.get_ref().as_str())
    }

    /// Tells the announcer what the services want now (only changes reach BIRD at once).
    fn refresh_announcements(&self) {
        if let Some(a) = &self.announcer {
            a.want(self.wanted_announcements());
        }
    }

    /// Hands DNS the current zone and what is live (it rebuilds only on a change), and the
    /// announcer what the services want of their routes.
    fn follow_liveness(&self) {
        if let (Some(dns), Some(zone)) = (&self.dns, &self.plan.zone) {
            dns.update(zone, self.live());
        }
        self.refresh_announcements();
    }

    /// Hands XDP the DNS answers just rendered, to answer at the listen addresses.
    fn publish_answers(&mut self, rx: &mut tokio::sync::watch::Receiver<Arc<crate::dns::render::Rendering>>) {
        let rendered = rx.borrow_and_update().clone();
        let Some(dns) = &self.plan.config.dns else { return };
        let limits = crate::dataplane::dns::Limits { per_second: dns.responses_per_second, slip: dns.slip };
        match self.dns_answers.publish(&mut self.dataplane, &dns.listen, &rendered, limits) {
            Ok(()) => debug!(answers = rendered.answers.len(), "DNS answers handed to XDP"),
            Err(e) => warn!(error = %e, "cannot hand DNS answers to XDP: userspace answers them all"),
        }
    }

    /// (Re)starts one health checker per checked backend; the records keep each backend's state.
    fn restart_checks(&mut self) {
        for c in self.checkers.drain(..) {
            c.abort();
        }
        self.backends.follow(&self.plan.checks);
        let Some(tx) = self.probes.clone() else { return };
        self.checkers = health::spawn(&self.plan.checks, tx);
    }

    /// Takes in a peer's flow-sync datagram.
    fn sync_receive(&mut self, datagram: &[u8], from: std::net::SocketAddr) {
        let Some(sync) = self.sync.as_mut() else { return };
        let settled = sync.settled();
        sync.receive(&mut self.dataplane, &self.services, datagram, from);
        if !settled && sync.settled() {
            info!("the cluster's peers have sent their flows");
            self.refresh_announcements();
        }
    }

    /// Runs the event loop (control socket, health checks, rate sampling, reloads on
    /// `hangups`) until `shutdown` resolves, then stops.
    pub async fn serve(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut hangups: Option<tokio::signal::unix::Signal>,
    ) -> Result<(), DaemonError> {
        let path = self.plan.config.daemon.control_socket.clone();
        let listener =
            server::bind(&path).map_err(|source| DaemonError::ControlSocket { path: path.clone(), source })?;
        let (call_tx, mut calls) = mpsc::channel::<Call>(64);
        let (probe_tx, mut probes) = mpsc::channel::<Probe>(256);
        let (report_tx, mut reports) = mpsc::channel::<crate::replication::Report>(16);
        let control = tokio::spawn(server::serve(listener, call_tx));
        let addr = self.plan.config.daemon.metrics_listen;
        let metrics_listener = exporter::bind(addr).await.map_err(|source| DaemonError::Metrics { addr, source })?;
        let (scrape_tx, mut scrapes) = mpsc::channel::<Scrape>(16);
        let exporter = tokio::spawn(exporter::serve(metrics_listener, scrape_tx));
        self.probes = Some(probe_tx);
        self.census = Some(self.dataplane.census()?);
        if let Some(settings) = self.cluster.take() {
            self.sync = Some(crate::sync::FlowSync::start(settings, &self.dataplane).await?);
        }
        let sync_socket = self.sync.as_ref().map(crate::sync::FlowSync::socket);
        self.restart_checks();
        // Only now, with the checks and the flow sync under way, can the first announcement
        // wait for them: earlier, a backend not yet checked and a sync not yet started look settled.
        if let Some(speaker) = self.plan.config.announce.as_ref().and_then(crate::announce::Speaker::of) {
            self.announcer = Some(crate::announce::Announcer::start(speaker));
            self.refresh_announcements();
        }
        self.databases.report_to(report_tx);
        if let (Some(zone), Some(dns)) = (&self.plan.zone, &self.plan.config.dns) {
            let live = self.live();
            self.dns = Some(crate::dns::Dns::start(zone, &dns.into(), live).await?);
        }
        let mut answers = self.dns.as_ref().map(crate::dns::Dns::answers);
        if let Some(rx) = answers.as_mut() {
            self.publish_answers(rx);
        }
        info!(socket = %path.display(), metrics = %addr, checks = self.checkers.len(), "serving");
        crate::notify::notify("READY=1\nSTATUS=serving: XDP attached, DNS answering");
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
                Some(call) = calls.recv() => match call.request {
                    // Seconds of database work: the monitor answers it, off this loop.
                    crate::control::protocol::Request::DbSwitchover { to } => self.databases.switchover(to, call.reply),
                    request => {
                        let response = self.handle(request);
                        let _ = call.reply.send(response);
                    }
                },
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
                        warn!(error = %e, "reload refused; the running config is unchanged");
                    }
                }
                Some((page, reply)) = scrapes.recv() => {
                    let _ = reply.send(match page {
                        crate::metrics::Page::Metrics => self.metrics(),
                        crate::metrics::Page::Status => crate::status_page::render(&self.status()),
                    });
                }
                _ = tick.tick() => self.sample(Instant::now()),
                Ok((datagram, from)) = async {
                    match &sync_socket {
                        Some(s) => {
                            let mut buf = vec![0u8; 2048];
                            s.recv_from(&mut buf).await.map(|(n, from)| {
                                buf.truncate(n);
                                (buf, from)
                            })
                        }
                        None => std::future::pending().await,
                    }
                } => self.sync_receive(&datagram, from),
                changed = async {
                    match answers.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => match (changed, answers.as_mut()) {
                    (Ok(()), Some(rx)) => self.publish_answers(rx),
                    _ => answers = None,
                },
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
        crate::notify::notify("STOPPING=1");
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
    /// `foobar run` to take over (the default), or detaches it and removes every pin, the
    /// addresses foobar added and the state file (`daemon.detach_on_exit`, `foobar run
    /// --detach-on-exit`): everything it made.
    pub fn stop(mut self) -> Result<(), DaemonError> {
        match self.dataplane.counters() {
            Ok(c) => {
                for (counter, value) in c.nonzero() {
                    info!(counter = counter.name(), value, "final count");
                }
            }
            Err(e) => warn!(error = %e, "cannot read counters"),
        }
        let pin_dir = self.plan.config.daemon.pin_dir.clone();
        if !(self.plan.config.daemon.detach_on_exit || self.detach_on_exit) {
            info!(pins = %pin_dir.display(),
                "leaving XDP attached and its state pinned: the next `foobar run` takes over without a gap \
                 (`foobar cleanup` removes it all)");
            return Ok(());
        }
        // Routes first: the router stops sending before the data plane goes.
        if let Some(a) = self.announcer.take() {
            a.withdraw_all();
        }
        std::mem::take(&mut self.added).remove();
        self.dataplane.detach_all()?;
        let state_file = &self.plan.config.daemon.state_file;
        match std::fs::remove_file(state_file) {
            Ok(()) => info!(file = %state_file.display(), "removed the state file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(file = %state_file.display(), error = %e, "cannot remove the state file"),
        }
        match Pins::remove_all(&pin_dir) {
            Ok(n) => info!(pins = %pin_dir.display(), removed = n, "detached and unpinned"),
            Err(e) => warn!(pins = %pin_dir.display(), error = %e, "cannot remove pins"),
        }
        Ok(())
    }
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
