//! The XDP data plane as the daemon sees it: one loaded eBPF object, the interfaces its
//! program is attached to, and typed access to its maps.
//!
//! - `object`: the bytes of the eBPF object embedded at build time.
//! - `stats`: summing the per-CPU counters.
//! - `firewall` + `rules`: deny list, allow rules and settings, changed in place.
//! - `services` + `ring`: load-balanced services, their backends and scheduling rings.

mod error;
pub mod firewall;
pub mod object;
pub mod ring;
pub mod rules;
pub mod services;
mod stats;

use aya::{
    Ebpf,
    programs::{Xdp, xdp::XdpLinkId},
};
use foobar_common::{XDP_FIREWALL_PROGRAM, XDP_PROGRAM, lb::LbSettings};
use tracing::{info, warn};

pub use self::{error::DataplaneError, stats::CounterSnapshot};
use crate::xdp_mode::{XdpMode, kernel_mode_name};

/// A loaded data plane. Dropping it detaches the program from every interface.
pub struct Dataplane {
    ebpf: Ebpf,
    attached: Vec<Attachment>,
}

/// Which program an interface runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Parse and balance only.
    Trusted,
    /// The firewall first (`daemon.untrusted`).
    Untrusted,
}

impl Role {
    /// Name of the XDP program serving this role.
    pub fn program(self) -> &'static str {
        match self {
            Role::Trusted => XDP_PROGRAM,
            Role::Untrusted => XDP_FIREWALL_PROGRAM,
        }
    }
}

/// One interface a program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub role: Role,
    pub mode: aya::programs::XdpMode,
    link: XdpLinkId,
}

impl Dataplane {
    /// Loads the embedded object into the kernel (the verifier runs here).
    pub fn load() -> Result<Self, DataplaneError> {
        let mut ebpf = Ebpf::load(object::bytes()?)?;
        for role in [Role::Trusted, Role::Untrusted] {
            program_mut(&mut ebpf, role)?.load()?;
        }
        let mut dp = Dataplane { ebpf, attached: Vec::new() };
        dp.set_lb_settings(LbSettings::DEFAULT)?;
        Ok(dp)
    }

    /// Attaches the `role`'s program to `interface`, trying the kernel modes `mode` allows in order.
    pub fn attach(&mut self, interface: &str, role: Role, mode: XdpMode) -> Result<&Attachment, DataplaneError> {
        let program = program_mut(&mut self.ebpf, role)?;
        let mut last_error = None;
        for &kernel_mode in mode.attempts() {
            match program.attach(interface, kernel_mode) {
                Ok(link) => {
                    info!(interface, program = role.program(), mode = kernel_mode_name(kernel_mode), "XDP attached");
                    self.attached.push(Attachment { interface: interface.to_owned(), role, mode: kernel_mode, link });
                    let last = self.attached.len() - 1;
                    return Ok(&self.attached[last]);
                }
                Err(e) => {
                    if mode == XdpMode::Auto {
                        warn!(interface, mode = kernel_mode_name(kernel_mode), error = %e,
                            "XDP attach failed; trying the next mode");
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            source: last_error.ok_or(DataplaneError::NoAttachMode)?,
        })
    }

    /// Detaches the program from every interface it was attached to.
    pub fn detach_all(&mut self) -> Result<(), DataplaneError> {
        for a in std::mem::take(&mut self.attached) {
            program_mut(&mut self.ebpf, a.role)?.detach(a.link)?;
            info!(interface = a.interface, "XDP detached");
        }
        Ok(())
    }

    /// Interfaces the program is attached to.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// The XDP program serving `role`, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn program(&self, role: Role) -> Result<&Xdp, DataplaneError> {
        let name = role.program();
        let program = self.ebpf.program(name).ok_or(DataplaneError::MissingProgram(name))?;
        Ok(program.try_into()?)
    }

    /// Loads (once) and returns the do-nothing program benchmarks use as their floor.
    pub fn nop_program(&mut self) -> Result<&Xdp, DataplaneError> {
        let name = foobar_common::XDP_NOP_PROGRAM;
        let program: &mut Xdp = self.ebpf.program_mut(name).ok_or(DataplaneError::MissingProgram(name))?.try_into()?;
        if program.fd().is_err() {
            program.load()?;
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
        Ok(())
    }

    pub(crate) fn map(&self, name: &'static str) -> Result<&aya::maps::Map, DataplaneError> {
        self.ebpf.map(name).ok_or(DataplaneError::MissingMap(name))
    }

    pub(crate) fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, DataplaneError> {
        self.ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))
    }

    /// Timeouts and the NAT port range the load balancer works with.
    pub fn set_lb_settings(&mut self, settings: LbSettings) -> Result<(), DataplaneError> {
        let mut map: aya::maps::Array<&mut aya::maps::MapData, LbSettings> =
            aya::maps::Array::try_from(self.map_mut(foobar_common::lb::SETTINGS_MAP)?)?;
        map.set(0, settings, 0)?;
        Ok(())
    }

    /// Current value of every counter, summed over CPUs.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        stats::read(self.map(foobar_common::STATS_MAP)?)
    }
}

fn program_mut(ebpf: &mut Ebpf, role: Role) -> Result<&mut Xdp, DataplaneError> {
    let name = role.program();
    let program = ebpf.program_mut(name).ok_or(DataplaneError::MissingProgram(name))?;
    Ok(program.try_into()?)
}
