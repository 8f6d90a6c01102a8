//! The XDP data plane as the daemon sees it: one loaded eBPF object, the interfaces its
//! program is attached to, and typed access to its maps.
//!
//! - `object`: the bytes of the eBPF object embedded at build time.
//! - `stats`: summing the per-CPU counters.

mod error;
pub mod object;
mod stats;

use aya::{
    Ebpf,
    programs::{Xdp, xdp::XdpLinkId},
};
use foobar_common::XDP_PROGRAM;
use tracing::{info, warn};

pub use self::{error::DataplaneError, stats::CounterSnapshot};
use crate::xdp_mode::{XdpMode, kernel_mode_name};

/// A loaded data plane. Dropping it detaches the program from every interface.
pub struct Dataplane {
    ebpf: Ebpf,
    attached: Vec<Attachment>,
}

/// One interface the program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub mode: aya::programs::XdpMode,
    link: XdpLinkId,
}

impl Dataplane {
    /// Loads the embedded object into the kernel (the verifier runs here).
    pub fn load() -> Result<Self, DataplaneError> {
        let mut ebpf = Ebpf::load(object::bytes()?)?;
        let program: &mut Xdp = program_mut(&mut ebpf)?;
        program.load()?;
        Ok(Dataplane {
            ebpf,
            attached: Vec::new(),
        })
    }

    /// Attaches the program to `interface`, trying the kernel modes `mode` allows in order.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: XdpMode,
    ) -> Result<&Attachment, DataplaneError> {
        let program = program_mut(&mut self.ebpf)?;
        let mut last_error = None;
        for &kernel_mode in mode.attempts() {
            match program.attach(interface, kernel_mode) {
                Ok(link) => {
                    info!(
                        interface,
                        mode = kernel_mode_name(kernel_mode),
                        "XDP attached"
                    );
                    self.attached.push(Attachment {
                        interface: interface.to_owned(),
                        mode: kernel_mode,
                        link,
                    });
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
        let program = program_mut(&mut self.ebpf)?;
        for a in self.attached.drain(..) {
            program.detach(a.link)?;
            info!(interface = a.interface, "XDP detached");
        }
        Ok(())
    }

    /// Interfaces the program is attached to.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// The XDP program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn program(&self) -> Result<&Xdp, DataplaneError> {
        let program = self
            .ebpf
            .program(XDP_PROGRAM)
            .ok_or(DataplaneError::MissingProgram(XDP_PROGRAM))?;
        Ok(program.try_into()?)
    }

    /// Current value of every counter, summed over CPUs.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        stats::read(&self.ebpf)
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, DataplaneError> {
    let program = ebpf
        .program_mut(XDP_PROGRAM)
        .ok_or(DataplaneError::MissingProgram(XDP_PROGRAM))?;
    Ok(program.try_into()?)
}
