//! Everything that can go wrong between the daemon and the kernel's BPF subsystem.

use std::path::PathBuf;

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
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("pin directory {}: {source}", path.display())]
    PinDir { path: PathBuf, source: std::io::Error },
    #[error("pinning the XDP link at {}: {source}", path.display())]
    Pin { path: PathBuf, source: aya::pin::PinError },
    #[error("the XDP link pinned at {}: {source}", path.display())]
    Link { path: PathBuf, source: aya::programs::links::LinkError },
    #[error("no XDP attach mode to try")]
    NoAttachMode,
    #[error(
        "foobar is already running with pin directory {} ({}): stop it first, or give this one \
         another daemon.pin_dir",
        pin_dir.display(),
        pid.map_or("pid unknown".to_owned(), |p| format!("pid {p}"))
    )]
    AlreadyRunning { pin_dir: PathBuf, pid: Option<u32> },
}

/// A service change the data plane cannot make, with what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("at most {0} services")]
    TooManyServices(u32),
    #[error("at most {0} backends in all")]
    TooManyBackends(u32),
    #[error("no route from this node to backend {name} ({addr}): {source}")]
    NoRoute { name: String, addr: std::net::IpAddr, source: std::io::Error },
    #[error("no service named `{0}`")]
    NoService(String),
    #[error("service `{service}` has no backend `{backend}`")]
    NoBackend { service: String, backend: String },
}
