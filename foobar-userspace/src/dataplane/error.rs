//! Everything that can go wrong between the daemon and the kernel's BPF subsystem.

/// A data plane failure, worded for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "this foobar binary was built without its eBPF object: run `cargo xtask build-ebpf` \
         (after `cargo xtask setup` on a new machine), then rebuild foobar"
    )]
    NotBuiltIn,
    #[error("loading the eBPF object failed (the verifier log, if any, follows): {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no program named {0}")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map named {0}")]
    MissingMap(&'static str),
    #[error("BPF program operation failed: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("BPF map operation failed: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("attaching XDP to interface {interface} failed: {source}")]
    Attach {
        interface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("firewall rules rejected: {0}")]
    Rules(String),
    #[error("{0}")]
    Service(String),
    #[error("pinning: {0}")]
    Pin(String),
    #[error("no XDP attach mode to try")]
    NoAttachMode,
}
