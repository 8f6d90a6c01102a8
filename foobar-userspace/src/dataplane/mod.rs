//! The XDP data plane as the daemon sees it: one loaded eBPF object, the interfaces its
//! program is attached to, and typed access to its maps.
//!
//! - `object`: the bytes of the eBPF object embedded at build time.
//! - `stats`: summing the per-CPU counters.
//! - `firewall` + `rules`: deny list, allow rules and settings, changed in place;
//!   `deny_filter`: the /24 bitmap that spares most IPv4 sources the deny-trie lookup.
//! - `services` + `ring`: load-balanced services, their backends and scheduling rings;
//!   `vip_filter`: which addresses are VIPs, for the kernel's established-flow path.
//! - `flows`: reading the connection table (live flows, forgetting a withdrawn service's);
//!   `census`: counting its live flows on a thread of its own.
//! - `peer_flows`: a cluster node's NAT flows read for its peers, and theirs taken on.
//! - `pins`: stateful maps and XDP links pinned so a restart does not interrupt forwarding.

mod batch;
pub mod capacity;
pub mod census;
mod deny_filter;
pub mod dns;
mod error;
pub mod firewall;
pub mod flows;
pub mod ids;
pub mod link;
pub mod object;
pub mod peer_flows;
pub mod pins;
pub mod ring;
pub mod rules;
pub mod services;
mod stats;
pub mod surroundings;
pub mod vip_filter;

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        Xdp,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use foobar_common::{
    PROXY_STEPS_MAP, STATS_MAP, XDP_PROXY_PROGRAMS, XDP_TRUSTED_PROGRAM, XDP_UNTRUSTED_PROGRAM,
    counters::{Counter, FAST_STATS_MAP, FastKind},
    dns::{STEP_MAP as DNS_STEP_MAP, XDP_DNS_PROGRAM},
    lb::LbSettings,
};
use tracing::{debug, info, warn};

pub use self::{
    capacity::Capacity,
    error::{DataplaneError, ServiceError},
    pins::Pins,
    stats::CounterSnapshot,
};
use crate::xdp_mode::{XdpMode, kernel_mode_name};
use surroundings::Surroundings;

/// The kernel's index of `interface` in this thread's network namespace (0: no such interface).
fn ifindex(interface: &str) -> u32 {
    std::ffi::CString::new(interface).map_or(0, |c| {
        // SAFETY: if_nametoindex reads a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    })
}

/// A loaded data plane. Dropping it detaches the program from every interface.
pub struct Dataplane {
    ebpf: Ebpf,
    attached: Vec<Attachment>,
    /// Where stateful maps and links are pinned; `None` for a private data plane (tests).
    pins: Option<Pins>,
    /// The kernel programs' log messages (aya-log), until the daemon takes them to drain.
    logger: Option<KernelLog>,
    /// The IPv4 deny prefixes, mirrored into the kernel's deny filter.
    deny_filter: deny_filter::DenyFilter,
}

/// The reader of the XDP programs' log messages; [`KernelLog::flush`] hands them to `log`.
pub type KernelLog = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The verifier's budget: a program whose verification walks more instructions than this is
/// refused (BPF_COMPLEXITY_LIMIT_INSNS in the kernel).
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// Whether an interface is trusted (the node's inside: backends, its own network) or untrusted
/// (`daemon.untrusted`: the firewall runs first); it decides which program the interface runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Parse and balance only.
    Trusted,
    /// The firewall first (`daemon.untrusted`).
    Untrusted,
}

impl Trust {
    /// Name of the XDP program for interfaces of this trust.
    pub fn program(self) -> &'static str {
        match self {
            Trust::Trusted => XDP_TRUSTED_PROGRAM,
            Trust::Untrusted => XDP_UNTRUSTED_PROGRAM,
        }
    }
}

/// One interface a program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub trust: Trust,
    /// The mode the kernel reports the program running in.
    pub mode: aya::programs::XdpMode,
    /// Why that mode: the choice `xdp_mode` made for this interface, or what the kernel said.
    pub why: String,
    /// Whether an earlier foobar's pinned link was taken over (its program swapped in place).
    pub adopted: bool,
    link: XdpLinkId,
}

impl Dataplane {
    /// Loads the embedded object into the kernel (the verifier runs here), with every map
    /// private to this process and of the default capacity.
    pub fn load() -> Result<Self, DataplaneError> {
        Dataplane::load_sized(&Capacity::default())
    }

    /// [`Dataplane::load`] with the tables sized by `capacity`.
    pub fn load_sized(capacity: &Capacity) -> Result<Self, DataplaneError> {
        let mut loader = EbpfLoader::new();
        size_tables(&mut loader, capacity);
        Dataplane::load_with(loader.load(object::bytes()?)?, None)
    }

    /// Loads the object reusing (or creating) the stateful maps pinned in `pins`; `attach`
    /// then adopts or pins links there too. Pins this build would misread are refused first.
    pub fn load_pinned(pins: Pins, capacity: &Capacity) -> Result<Self, DataplaneError> {
        pins.check_layout(capacity)?;
        let mut loader = EbpfLoader::new();
        size_tables(&mut loader, capacity);
        for name in pins::pinned_maps() {
            loader.map_pin_path(name, pins.map(name));
        }
        let ebpf = loader.load(object::bytes()?)?;
        let mut dp = Dataplane::load_with(ebpf, Some(pins))?;
        dp.warn_of_short_counters()?;
        let mut layout: aya::maps::Array<&mut aya::maps::MapData, u64> =
            aya::maps::Array::try_from(dp.map_mut(foobar_common::LAYOUT_MAP)?)?;
        layout.set(0, foobar_common::LAYOUT_VERSION, 0)?;
        Ok(dp)
    }

    /// Warns when a pinned counter array, kept from an older build, has fewer slots than this
    /// build counts in: the missing counters stay at 0 until the pins are removed.
    fn warn_of_short_counters(&self) -> Result<(), DataplaneError> {
        let arrays = [(STATS_MAP, Counter::ALL.len()), (FAST_STATS_MAP, FastKind::ALL.len())];
        for (name, wants) in arrays {
            if let Some((has, wants)) = stats::short_of(self.map(name)?, wants)? {
                warn!(
                    map = name,
                    has,
                    wants,
                    "pinned counters from an older build: the newer counters read 0 until `foobar down` removes the pins"
                );
            }
        }
        Ok(())
    }

    fn load_with(mut ebpf: Ebpf, pins: Option<Pins>) -> Result<Self, DataplaneError> {
        for trust in [Trust::Trusted, Trust::Untrusted] {
            let program = program_mut(&mut ebpf, trust)?;
            load_program(program)?;
            // Only for the log: a kernel that will not say must not stop the load.
            if let Some(walked) = program.info().ok().and_then(|i| i.verified_instruction_count()) {
                debug!(program = trust.program(), walked, limit = VERIFIER_LIMIT, "verifier accepted the program");
            }
        }
        load_steps(&mut ebpf)?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "kernel log messages are unavailable");
                None
            }
        };
        let mut dp = Dataplane { ebpf, attached: Vec::new(), pins, logger, deny_filter: Default::default() };
        dp.set_lb_settings(LbSettings::DEFAULT)?;
        dp.seed()?;
        Ok(dp)
    }

    /// Swaps `trust`'s program into the link an earlier foobar pinned for `interface`.
    fn adopt(&mut self, trust: Trust, path: &std::path::Path) -> Result<XdpLinkId, DataplaneError> {
        let link_error = |source| DataplaneError::Link { path: path.to_path_buf(), source };
        let pinned = PinnedLink::from_pin(path).map_err(link_error)?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(link_error)?;
        Ok(program_mut(&mut self.ebpf, trust)?.attach_to_link(link)?)
    }

    /// Pins the link `id` of `trust`'s program at `path` and keeps it owned by the program.
    fn pin(&mut self, trust: Trust, id: XdpLinkId, path: &std::path::Path) -> Result<XdpLinkId, DataplaneError> {
        let program = program_mut(&mut self.ebpf, trust)?;
        let link_error = |source| DataplaneError::Link { path: path.to_path_buf(), source };
        let link = FdLink::try_from(program.take_link(id)?).map_err(link_error)?;
        let pinned = link.pin(path).map_err(|source| DataplaneError::Pin { path: path.to_path_buf(), source })?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(link_error)?;
        Ok(program.attach_to_link(link)?)
    }

    /// Attaches the `trust`'s program to `interface`, trying the kernel modes `mode` chooses for
    /// its driver in order; a link an earlier foobar pinned there is taken over instead.
    pub fn attach(&mut self, interface: &str, trust: Trust, mode: XdpMode) -> Result<&Attachment, DataplaneError> {
        let driver = link::driver(interface).ok();
        let choice = mode.choose(driver.as_deref());
        if mode == XdpMode::Native && driver.as_deref() == Some("veth") {
            warn!(
                interface,
                "native XDP on veth forwards only when the peer has NAPI (an XDP program or GRO on) \
                and senders put full checksums on the wire (`ethtool -K IFACE tx off`); `auto` takes generic here"
            );
        }
        if let Some(path) = self.pins.as_ref().map(|p| p.link(interface))
            && path.exists()
        {
            match self.adopt(trust, &path) {
                Ok(link) => {
                    let real = link::attached_mode(ifindex(interface)).ok().flatten();
                    let kernel_mode = real.unwrap_or(choice.attempts[0]);
                    let why = match real {
                        Some(_) => "taken over from the previous run (the kernel's report)".to_owned(),
                        None => "taken over from the previous run (the kernel did not say)".to_owned(),
                    };
                    info!(
                        interface,
                        program = trust.program(),
                        mode = kernel_mode_name(kernel_mode),
                        why,
                        "took over the pinned XDP link (program swapped in place)"
                    );
                    return Ok(self.attached(interface, trust, kernel_mode, why, true, link));
                }
                Err(e) => {
                    warn!(interface, error = %e, "cannot take over the pinned XDP link; attaching afresh");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let program = program_mut(&mut self.ebpf, trust)?;
        let mut failed: Vec<String> = Vec::new();
        let mut last_error = None;
        for &kernel_mode in choice.attempts {
            match program.attach(interface, kernel_mode) {
                Ok(link) => {
                    let why = match failed.first() {
                        Some(native) => format!("{}; {native}", choice.why),
                        None => choice.why.to_owned(),
                    };
                    info!(
                        interface,
                        program = trust.program(),
                        mode = kernel_mode_name(kernel_mode),
                        driver = driver.as_deref().unwrap_or("?"),
                        why,
                        "XDP attached"
                    );
                    let link = match self.pins.as_ref().map(|p| p.link(interface)) {
                        Some(path) => self.pin(trust, link, &path)?,
                        None => link,
                    };
                    return Ok(self.attached(interface, trust, kernel_mode, why, false, link));
                }
                Err(e) => {
                    if mode == XdpMode::Auto {
                        warn!(interface, mode = kernel_mode_name(kernel_mode), error = %e,
                            "XDP attach failed; trying the next mode");
                    }
                    failed.push(format!("{} refused: {e}", kernel_mode_name(kernel_mode)));
                    last_error = Some(e);
                }
            }
        }
        Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            source: last_error.ok_or(DataplaneError::NoAttachMode)?,
        })
    }

    fn attached(
        &mut self,
        interface: &str,
        trust: Trust,
        mode: aya::programs::XdpMode,
        why: String,
        adopted: bool,
        link: XdpLinkId,
    ) -> &Attachment {
        self.attached.push(Attachment { interface: interface.to_owned(), trust, mode, why, adopted, link });
        let last = self.attached.len() - 1;
        &self.attached[last]
    }

    /// Detaches the program from every interface it was attached to.
    pub fn detach_all(&mut self) -> Result<(), DataplaneError> {
        for a in std::mem::take(&mut self.attached) {
            if let Some(pins) = &self.pins {
                let _ = std::fs::remove_file(pins.link(&a.interface));
            }
            program_mut(&mut self.ebpf, a.trust)?.detach(a.link)?;
            info!(interface = a.interface, "XDP detached");
        }
        Ok(())
    }

    /// Takes the reader of the kernel's log messages (the daemon drains it as they arrive).
    pub fn take_kernel_log(&mut self) -> Option<KernelLog> {
        self.logger.take()
    }

    /// Interfaces the program is attached to.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// Where the stateful maps and links are pinned (`None` for a private data plane).
    pub fn pins(&self) -> Option<&Pins> {
        self.pins.as_ref()
    }

    /// Instructions the kernel's verifier walked to accept each program the data plane loads,
    /// by name: the two [`Trust`] programs, the SYN proxy's steps and the DNS step, each verified on its own
    /// (`None` before Linux 5.16, which does not say). Near [`VERIFIER_LIMIT`], any change to a
    /// program may get it refused: the verifier walks every path, so the cost grows with
    /// branches, not size.
    pub fn verifier_costs(&self) -> Result<Vec<(&'static str, Option<u32>)>, DataplaneError> {
        let names =
            [XDP_TRUSTED_PROGRAM, XDP_UNTRUSTED_PROGRAM].into_iter().chain(XDP_PROXY_PROGRAMS).chain([XDP_DNS_PROGRAM]);
        names
            .map(|name| {
                let program: &Xdp = self.ebpf.program(name).ok_or(DataplaneError::MissingProgram(name))?.try_into()?;
                Ok((name, program.info()?.verified_instruction_count()))
            })
            .collect()
    }

    /// The XDP program serving `trust`, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn program(&self, trust: Trust) -> Result<&Xdp, DataplaneError> {
        let name = trust.program();
        let program = self.ebpf.program(name).ok_or(DataplaneError::MissingProgram(name))?;
        Ok(program.try_into()?)
    }

    /// Loads (once) and returns the do-nothing program benchmarks use as their floor.
    pub fn nop_program(&mut self) -> Result<&Xdp, DataplaneError> {
        let name = foobar_common::XDP_FLOOR_PROGRAM;
        let program: &mut Xdp = self.ebpf.program_mut(name).ok_or(DataplaneError::MissingProgram(name))?.try_into()?;
        if program.fd().is_err() {
            load_program(program)?;
        }
        let program = self.ebpf.program(name).ok_or(DataplaneError::MissingProgram(name))?;
        Ok(program.try_into()?)
    }

    /// Records a flow in the connection table, as if its first packet had been balanced
    /// (for adopting flows and for benchmarks that need a full table).
    pub fn insert_flow(
        &mut self,
        key: foobar_common::lb::FlowKey,
        flow: foobar_common::lb::Flow,
    ) -> Result<(), DataplaneError> {
        let mut map: aya::maps::HashMap<&mut aya::maps::MapData, foobar_common::lb::FlowKey, foobar_common::lb::Flow> =
            aya::maps::HashMap::try_from(self.map_mut(foobar_common::lb::CONNTRACK_MAP)?)?;
        map.insert(key, flow, 0)?;
        self.stale_flow_copies()
    }

    /// A handle of its own on map `name` (a hash map or an array), for a thread that reads
    /// it off the event loop.
    pub(crate) fn map_handle(&self, name: &'static str) -> Result<aya::maps::MapData, DataplaneError> {
        use aya::maps::Map;
        let (Map::HashMap(data) | Map::LruHashMap(data) | Map::Array(data) | Map::PerCpuArray(data)) =
            self.map(name)?
        else {
            return Err(DataplaneError::MissingMap(name));
        };
        let fd = std::os::fd::AsFd::as_fd(data.fd()).try_clone_to_owned().map_err(DataplaneError::MapHandle)?;
        Ok(aya::maps::MapData::from_fd(fd)?)
    }

    pub(crate) fn map(&self, name: &'static str) -> Result<&aya::maps::Map, DataplaneError> {
        self.ebpf.map(name).ok_or(DataplaneError::MissingMap(name))
    }

    pub(crate) fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, DataplaneError> {
        self.ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))
    }

    /// Timeouts and the NAT port range the load balancer works with (its `cpus`,
    /// `link_mtu_floor` and `hops_by_source` are this machine's, whatever `settings` says).
    pub fn set_lb_settings(&mut self, settings: LbSettings) -> Result<(), DataplaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))? as u32;
        let n = Surroundings::read()?;
        let settings =
            LbSettings { cpus, link_mtu_floor: n.link_mtu_floor, hops_by_source: n.hops_by_source(), ..settings };
        self.lb_settings_map()?.set(0, settings, 0)?;
        // Cached flows were timed by the old settings.
        self.stale_flow_copies()
    }

    /// Tells the data plane about its namespace again, where it changed since it was last told
    /// (an operator set a link's MTU or added a routing rule, an interface came or went).
    pub fn refresh_surroundings(&mut self) -> Result<Surroundings, DataplaneError> {
        let n = Surroundings::read()?;
        let mut map = self.lb_settings_map()?;
        let settings = map.get(&0, 0)?;
        let now = LbSettings { link_mtu_floor: n.link_mtu_floor, hops_by_source: n.hops_by_source(), ..settings };
        if now != settings {
            map.set(0, now, 0)?;
        }
        Ok(n)
    }

    fn lb_settings_map(&mut self) -> Result<aya::maps::Array<&mut aya::maps::MapData, LbSettings>, DataplaneError> {
        Ok(aya::maps::Array::try_from(self.map_mut(foobar_common::lb::SETTINGS_MAP)?)?)
    }

    /// Gives a fresh data plane its secrets: a random SYN cookie key, and a random start for
    /// the NAT port cursor (so a restarted node does not hand out the same ports in the same
    /// order). Pinned ones, already set, are kept: cookies in flight still check.
    fn seed(&mut self) -> Result<(), DataplaneError> {
        use foobar_common::lb::{NAT_CURSOR_MAP, SYN_KEY_MAP};
        let mut key: aya::maps::Array<&mut aya::maps::MapData, [u64; 2]> =
            aya::maps::Array::try_from(self.map_mut(SYN_KEY_MAP)?)?;
        if key.get(&0, 0)? == [0, 0] {
            key.set(0, [random()?, random()?], 0)?;
        }
        let mut cursor: aya::maps::Array<&mut aya::maps::MapData, u64> =
            aya::maps::Array::try_from(self.map_mut(NAT_CURSOR_MAP)?)?;
        if cursor.get(&0, 0)? == 0 {
            cursor.set(0, random()? >> 32, 0)?;
        }
        Ok(())
    }

    /// Sets the SYN cookies' key: for fixtures that compute the cookies they expect (a data
    /// plane makes a random one).
    pub fn set_syn_key(&mut self, key: [u64; 2]) -> Result<(), DataplaneError> {
        let mut map: aya::maps::Array<&mut aya::maps::MapData, [u64; 2]> =
            aya::maps::Array::try_from(self.map_mut(foobar_common::lb::SYN_KEY_MAP)?)?;
        Ok(map.set(0, key, 0)?)
    }

    /// Restarts the NAT port walk at the range's `n`th port: for fixtures and benchmarks
    /// that expect exact ports (a data plane starts at a random one).
    pub fn set_nat_cursor(&mut self, n: u64) -> Result<(), DataplaneError> {
        let mut cursor: aya::maps::Array<&mut aya::maps::MapData, u64> =
            aya::maps::Array::try_from(self.map_mut(foobar_common::lb::NAT_CURSOR_MAP)?)?;
        Ok(cursor.set(0, n, 0)?)
    }

    /// Current value of every counter, summed over CPUs.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        stats::read(self.map(foobar_common::STATS_MAP)?, self.map(foobar_common::counters::FAST_STATS_MAP)?)
    }
}

/// 64 random bits from the kernel.
fn random() -> Result<u64, DataplaneError> {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(DataplaneError::Random(std::io::Error::last_os_error()));
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// Gives every table `capacity` sizes its entries (pinned maps that exist keep theirs).
fn size_tables(loader: &mut EbpfLoader<'_>, capacity: &Capacity) {
    for (name, entries, _) in capacity.tables() {
        loader.map_max_entries(name, entries);
    }
}

/// Loads the programs reached by tail call, each into its slot of the table the two main
/// programs call it through: the SYN proxy's steps and the DNS answer step.
fn load_steps(ebpf: &mut Ebpf) -> Result<(), DataplaneError> {
    let tables: [(&'static str, &[&'static str]); 2] =
        [(PROXY_STEPS_MAP, &XDP_PROXY_PROGRAMS), (DNS_STEP_MAP, &[XDP_DNS_PROGRAM])];
    for (table, names) in tables {
        let mut fds = Vec::with_capacity(names.len());
        for &name in names {
            let program: &mut Xdp = ebpf.program_mut(name).ok_or(DataplaneError::MissingProgram(name))?.try_into()?;
            load_program(program)?;
            fds.push(program.fd()?.try_clone().map_err(aya::programs::ProgramError::from)?);
        }
        let map = ebpf.map_mut(table).ok_or(DataplaneError::MissingMap(table))?;
        let mut steps = aya::maps::ProgramArray::try_from(map)?;
        for (slot, fd) in fds.iter().enumerate() {
            steps.set(slot as u32, fd, 0)?;
        }
    }
    Ok(())
}

fn program_mut(ebpf: &mut Ebpf, trust: Trust) -> Result<&mut Xdp, DataplaneError> {
    let name = trust.program();
    let program = ebpf.program_mut(name).ok_or(DataplaneError::MissingProgram(name))?;
    Ok(program.try_into()?)
}

/// Loads an XDP program, trying again when the kernel says EAGAIN: the verifier gives up with
/// that whenever a signal arrives for the loading thread (a child process exiting, say), as
/// libbpf knows and retries too.
fn load_program(program: &mut Xdp) -> Result<(), aya::programs::ProgramError> {
    let mut tries = 0;
    loop {
        match program.load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.kind() == std::io::ErrorKind::WouldBlock && tries < 5 =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}
