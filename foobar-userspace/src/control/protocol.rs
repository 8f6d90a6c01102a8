//! Requests and responses on the control socket.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendAction {
    /// Keep existing flows, send new ones elsewhere.
    Drain,
    /// Back to normal: new flows again while healthy.
    Enable,
    /// No new flows whatever its health (existing flows keep their backend).
    Disable,
}

/// What `foobar node` does to this node's announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// Withdraw every announced VIP (the router sends their traffic to the other nodes);
    /// flows already here keep being forwarded.
    Drain,
    /// Announce again what this node can serve.
    Enable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    Backend {
        service: String,
        backend: String,
        action: BackendAction,
    },
    FirewallBlock {
        cidr: String,
    },
    FirewallUnblock {
        cidr: String,
    },
    FirewallList,
    /// Drain or enable this node in its cluster (its route announcements).
    Node {
        action: NodeAction,
    },
    /// Re-read the config file: validated first, applied as a difference, or nothing changes.
    Reload,
    /// Make the named database server the primary, by a planned switchover.
    DbSwitchover {
        to: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(Box<StatusReport>),
    Done { message: String },
    Firewall { denied: Vec<DenyEntry> },
    Error { message: String },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Where XDP runs: each interface with its trust, mode and why that mode.
    #[serde(default)]
    pub interfaces: Vec<InterfaceStatus>,
    /// The pin directory, and whether its pins outlive this daemon (false: a private bpffs).
    #[serde(default)]
    pub pins: Option<PinsStatus>,
    pub services: Vec<ServiceStatus>,
    pub firewall_rules: Vec<RuleStatus>,
    /// Deny-list prefixes from the config (how many), and those the operator blocked.
    #[serde(default)]
    pub denied_by_config: usize,
    #[serde(default)]
    pub blocked_by_operator: Vec<String>,
    /// Every non-zero data-plane counter, by name.
    pub counters: Vec<(String, u64)>,
    pub dns: Option<DnsStatus>,
    pub replication: Option<ReplicationStatus>,
    /// When the active-flow counts were taken (they are counted off the event loop).
    #[serde(default)]
    pub flow_census: Option<CensusStatus>,
    /// This node: drained or not, and the digest of the config it runs (equal on nodes that
    /// run the same file).
    #[serde(default)]
    pub node: NodeStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `daemon.node_name` (the host name unless set).
    #[serde(default)]
    pub name: String,
    pub drained: bool,
    /// SHA-256 of the config file's text, in hex.
    pub config_sha256: String,
    /// The NAT flow sync with the cluster's peers (`[cluster]`).
    #[serde(default)]
    pub sync: Option<SyncStatus>,
}

/// What the NAT flow sync has done since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub peers: Vec<PeerStatus>,
    pub flows_sent: u64,
    pub flows_adopted: u64,
    /// NAT bindings held for peers' flows.
    pub bindings_held: u64,
    /// Datagrams refused (malformed, badly signed, replayed, from a stranger).
    pub refused: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    /// Milliseconds since a datagram from it was last taken in; `None`: never.
    pub heard_ms_ago: Option<u64>,
}

/// A service's route announcement: what this node wants of its route (a BIRD protocol, or a
/// name for `announce.command`) and why, and what the routing daemon last confirmed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    pub protocol: String,
    pub wanted: bool,
    pub why: String,
    /// What the routing daemon confirmed last (`None`: nothing confirmed yet).
    pub announced: Option<bool>,
    pub error: Option<String>,
}

/// The age of the active-flow counts, and how long counting took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CensusStatus {
    pub age_s: f64,
    pub took_ms: f64,
}

/// One deny-list prefix and who put it there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyEntry {
    pub cidr: String,
    /// config | operator | config, operator
    pub origin: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// trusted | untrusted
    pub trust: String,
    /// native | generic (as the kernel reports it)
    pub mode: String,
    pub why: String,
    /// Whether the link was taken over from the previous run.
    pub adopted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinsStatus {
    pub dir: String,
    /// Whether restarts keep the data plane (false when the pins are in a private bpffs).
    pub kept_across_restarts: bool,
}

/// What the replication monitor last saw, and what DNS answers from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// The primary first, then the replicas in config order.
    pub servers: Vec<DbServerStatus>,
    /// Addresses `replication = "primary"` records answer.
    pub write: Vec<String>,
    /// Addresses `replication = "replicas"` records answer.
    pub read: Vec<String>,
    /// Seconds since the monitor's last round ended (none yet: `None`); well over its
    /// interval plus timeout means the answers above are stale.
    #[serde(default)]
    pub last_round_age_s: Option<f64>,
    /// The current primary's name (after a failover or switchover, not the configured one).
    #[serde(default)]
    pub primary: String,
    #[serde(default)]
    pub auto_failover: bool,
    /// While the primary is down: why no failover happens (yet).
    #[serde(default)]
    pub failover: Option<String>,
    /// The failover is refused (not just waiting for more failed checks).
    #[serde(default)]
    pub failover_refused: bool,
    #[serde(default)]
    pub failovers: u64,
    #[serde(default)]
    pub switchovers: u64,
    /// The last move of the primary, told as a sentence.
    #[serde(default)]
    pub last_change: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbServerStatus {
    pub name: String,
    pub address: String,
    /// primary | replica
    pub role: String,
    /// Primary: unknown | up | read-only | unreachable.
    /// Replica: unknown | healthy | lagging | broken | unreachable.
    pub state: String,
    /// Why it is in that state, e.g. "SQL thread stopped" or "lag 6.1s > max_lag 5s".
    pub reason: String,
    /// A replica replicating from elsewhere, or a primary that is itself a replica.
    pub topology: Option<String>,
    pub server_id: Option<u32>,
    pub read_only: Option<bool>,
    /// Replicas: Yes | No | Connecting, as the server reports them.
    pub io_thread: Option<String>,
    pub sql_thread: Option<String>,
    /// The last IO or SQL thread error, with its number.
    pub last_error: Option<String>,
    /// Lag measured from the heartbeat row (seconds).
    pub heartbeat_lag: Option<f64>,
    /// Why the monitor leaves this server out of replication for a person to look at
    /// (errant transactions, a failed rejoin).
    #[serde(default)]
    pub flagged: Option<String>,
    /// Why writing (primary) or reading (replica) the heartbeat row fails, and what to fix;
    /// the server's state does not depend on it.
    #[serde(default)]
    pub heartbeat_error: Option<String>,
    pub seconds_behind_master: Option<u64>,
    /// GTID position: written (primary) or applied (replica).
    pub gtid: Option<String>,
    /// Checks that failed since the daemon started.
    pub check_errors: u64,
    /// How long the last check took.
    pub check_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsStatus {
    pub zone: String,
    pub serial: u32,
    pub listen: Vec<String>,
    /// Services whose records are answered right now.
    pub answering: Vec<String>,
    /// Queries received, by XDP and the userspace server together.
    pub queries: u64,
    pub rate_limited: u64,
    /// Of `rate_limited`, those answered empty with TC so resolvers retry over TCP.
    #[serde(default)]
    pub slipped: u64,
    /// Of `queries`, those answered in XDP from the rendered zone.
    #[serde(default)]
    pub answered_in_xdp: u64,
    /// Of `queries`, those the userspace server answered from the rendered zone.
    #[serde(default)]
    pub answered_rendered: u64,
    /// DNS-over-TCP connections open now, the most allowed, and those closed on accept.
    #[serde(default)]
    pub tcp_open: u64,
    #[serde(default)]
    pub tcp_limit: u64,
    #[serde(default)]
    pub tcp_refused: u64,
    /// Responses of the userspace server by response code.
    pub responses: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub vip: String,
    pub ports: Vec<u16>,
    pub protocol: String,
    pub mode: String,
    pub scheduler: String,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub new_flows_per_sec: f64,
    pub bytes_per_sec: f64,
    /// Tracked flows still live.
    pub active_flows: u64,
    /// Why new flows are refused, when they are.
    pub note: Option<String>,
    /// When SYNs are answered with cookies: always | under-flood | off.
    #[serde(default)]
    pub syn_proxy: String,
    /// Whether new flows come faster than `flood_new_flows` right now (on any CPU).
    #[serde(default)]
    pub under_flood: bool,
    /// What a spoofed flood could still do to this service, when something can.
    #[serde(default)]
    pub exposed: Option<String>,
    /// Its route announcement, with `announce = "<protocol>"`.
    #[serde(default)]
    pub announce: Option<AnnounceStatus>,
    pub backends: Vec<BackendStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub name: String,
    pub address: String,
    pub weight: u32,
    pub backup: bool,
    /// up | down | draining | disabled
    pub state: String,
    /// Whether new flows go to it right now.
    pub active: bool,
    pub health: Option<HealthStatus>,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    /// Tracked flows still live.
    pub active_flows: u64,
    /// Passive health: RSTs answering a connection's SYN, and RSTs before the backend sent
    /// anything (NAT services).
    #[serde(default)]
    pub passive_refused: u64,
    #[serde(default)]
    pub passive_resets: u64,
    #[serde(default)]
    pub passive_unreachable: u64,
    /// Handshakes it left unanswered until a SYN was said again (the client's or the proxy's).
    #[serde(default)]
    pub passive_timeouts: u64,
    /// The last time passive health took it out, and why.
    #[serde(default)]
    pub passive_note: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub healthy: bool,
    /// The last check's outcome, e.g. "HTTP 200" or "connect: connection refused".
    pub last: String,
    pub latency_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub rule: String,
    pub hits: u64,
}
