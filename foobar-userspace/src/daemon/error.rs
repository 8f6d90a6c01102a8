//! What can go wrong in the daemon, by kind; turned into text once, at the edge (the command
//! line's message, or the control socket's error answer).

use std::path::PathBuf;

use crate::{
    config::ConfigError, dataplane::DataplaneError, dns::DnsError, net::CidrError, replication::SettingsError,
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
    Dns(#[from] DnsError),
    #[error(transparent)]
    Replication(#[from] SettingsError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    FdLimit(#[from] super::fd_limit::FdLimitError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

/// Why a reload was refused; the running config is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this daemon was not started from a config file")]
    NoSource,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{file}: {what} changed, which needs a restart (`systemctl restart foobar` or stop and `foobar run` again); \
         nothing was changed"
    )]
    NeedsRestart { file: PathBuf, what: &'static str },
    #[error(transparent)]
    Replication(#[from] SettingsError),
    #[error(
        "no route from this node to backend {backend} ({addr}) of service {service}: {source}; nothing was changed"
    )]
    NoRoute { service: String, backend: String, addr: std::net::IpAddr, source: std::io::Error },
    #[error(
        "the deny list would hold {entries} prefixes of one family (the config's and the operator's), \
         capacity.deny_entries is {capacity}; nothing was changed"
    )]
    DenyCapacity { entries: usize, capacity: u32 },
    #[error("{0}; every step of the reload was undone, the running config is unchanged")]
    Dataplane(#[from] DataplaneError),
    #[error("reloaded, but not kept across restarts: {0}")]
    NotKept(#[from] super::state::StateError),
}

/// Why a control request failed, worded as the answer `foobar` prints.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Reload(#[from] ReloadError),
    #[error("{0}; type an address or prefix, e.g. `foobar firewall block 203.0.113.7/32`")]
    BadCidr(#[from] CidrError),
    #[error("{0} is not on the deny list (see `foobar firewall list`)")]
    NotBlocked(crate::net::Cidr),
    #[error("{0} is on the config's deny list: remove it from firewall.deny_sources and `foobar reload`")]
    DeniedByConfig(crate::net::Cidr),
    #[error("done, but not kept across restarts: {0}")]
    NotKept(#[from] super::state::StateError),
    /// A request the event loop hands on rather than answers (see `Daemon::serve`).
    #[error("{0}")]
    Elsewhere(&'static str),
}
