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
    #[error("cannot count this machine's CPUs: {0}")]
    Cpus(std::io::Error),
    #[error("cannot read this namespace's link MTUs: {0}")]
    LinkMtu(std::io::Error),
    #[error("the kernel gave no random bytes for the SYN cookie key: {0}")]
    Random(std::io::Error),
    #[error("cannot start counting flows: {0}")]
    Census(std::io::Error),
    #[error("cannot open a second handle on a map for a thread of its own: {0}")]
    MapHandle(std::io::Error),
    #[error(
        "foobar is already running with pin directory {} ({}): stop it first, or give this one \
         another daemon.pin_dir",
        pin_dir.display(),
        pid.map_or("pid unknown".to_owned(), |p| format!("pid {p}"))
    )]
    AlreadyRunning { pin_dir: PathBuf, pid: Option<u32> },
    #[error(
        "{map} pinned at {} holds {pinned} entries, but {key} asks for {wanted}: set {key} back to {pinned}, \
         or run `foobar cleanup` (it detaches XDP and forgets every tracked flow and NAT binding: open \
         connections through this node are reset) and start again",
        path.display()
    )]
    PinnedCapacity { map: &'static str, path: PathBuf, key: &'static str, pinned: u32, wanted: u32 },
    #[error(
        "{map} pinned at {} was made by a foobar with another map layout ({found}; this build makes \
         {wanted}): nothing was adopted. Run that build's foobar again, or `foobar cleanup` (it detaches XDP \
         and forgets every tracked flow and NAT binding: open connections through this node are reset) and start again",
        path.display()
    )]
    PinnedLayout { map: &'static str, path: PathBuf, found: String, wanted: String },
    #[error(
        "the pins in {} have layout version {pinned}, this build reads version {wanted}: nothing was adopted. \
         Run that build's foobar again, or `foobar cleanup` (it detaches XDP and forgets every tracked flow and \
         NAT binding: open connections through this node are reset) and start again",
        path.display()
    )]
    PinnedVersion { path: PathBuf, pinned: u64, wanted: u64 },
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
    #[error(
        "no room in the ring array for service {service}: it needs {needed} slots of the {capacity} capacity.ring_slots has (a Maglev service takes 131074)"
    )]
    RingSlots { service: String, needed: u32, capacity: u32 },
    #[error("no service named `{0}`")]
    NoService(String),
    #[error("service `{service}` has no backend `{backend}`")]
    NoBackend { service: String, backend: String },
}
