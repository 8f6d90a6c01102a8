//! The config file's shape, one struct per table, exactly as `examples/lab.toml` spells it.
//!
//! Every struct denies unknown keys. Values that a later check must point back at carry
//! their position (`Spanned`) so the error can name the line.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use serde::Deserialize;
use toml::Spanned;

use super::{
    error::Origin,
    values::{Cidr, Span},
};
use crate::xdp_mode::XdpMode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub daemon: Daemon,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    pub dns: Option<Dns>,
    pub replication: Option<Replication>,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub conntrack: Conntrack,
    /// The routing daemon that announces this node's VIPs.
    pub announce: Option<Announce>,
    /// The foobar nodes that share their NAT flows, so that a dead node's flows go on.
    pub cluster: Option<Cluster>,
    /// The file and text this config was parsed from.
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Interfaces XDP attaches to.
    pub interfaces: Vec<Spanned<String>>,
    /// The subset of `interfaces` the firewall applies on.
    #[serde(default)]
    pub untrusted: Vec<Spanned<String>>,
    #[serde(default)]
    pub xdp_mode: XdpMode,
    #[serde(default = "defaults::pin_dir")]
    pub pin_dir: PathBuf,
    /// On exit, detach XDP and remove the pinned maps (default: keep forwarding with the last
    /// config until the next `foobar run` takes over).
    #[serde(default)]
    pub detach_on_exit: bool,
    #[serde(default = "defaults::control_socket")]
    pub control_socket: PathBuf,
    /// Where the operator's run-time changes (blocks, drains, disables) and the data plane's
    /// ids are kept across restarts.
    #[serde(default = "defaults::state_file")]
    pub state_file: PathBuf,
    #[serde(default = "defaults::metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Where missing VIPs and DNS addresses are added: unset, the first untrusted interface;
    /// `"lo"` for cluster and DSR nodes (no ARP for the VIP on the wire); `"none"` when
    /// keepalived or the operator owns the addresses.
    pub vip_interface: Option<Spanned<String>>,
    /// This node's name among several (its heartbeat row, `status`): the host name unless set.
    pub node_name: Option<Spanned<String>>,
}

impl Daemon {
    /// `node_name`, or the host's name.
    pub fn node(&self) -> String {
        match &self.node_name {
            Some(n) => n.get_ref().clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map_or_else(|_| String::new(), |h| h.trim().to_owned()),
        }
    }
}

/// Whether `name` can name a node: up to 64 letters, digits and `_ . -` (it is written into SQL
/// and metrics labels as it is).
pub fn node_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// How big the data plane's tables are (their memory is taken at start).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// `[[service]]` entries, each with up to eight ports.
    #[serde(default = "defaults::services")]
    pub services: Spanned<u32>,
    /// Backend entries over all services.
    #[serde(default = "defaults::backends")]
    pub backends: Spanned<u32>,
    /// Tracked flows.
    #[serde(default = "defaults::flows")]
    pub flows: Spanned<u32>,
    /// NAT bindings (one per NAT flow).
    #[serde(default = "defaults::nat_bindings")]
    pub nat_bindings: Spanned<u32>,
    /// Deny-list prefixes, for IPv4 and for IPv6 each (config and `foobar firewall block` together).
    #[serde(default = "defaults::deny_entries")]
    pub deny_entries: Spanned<u32>,
    /// Scheduling-ring slots over all services: a Maglev service takes 131,074, a round-robin
    /// one twice its backends.
    #[serde(default = "defaults::ring_slots")]
    pub ring_slots: Spanned<u32>,
}

/// How long the connection table keeps flows, and the NAT source ports (IPVS's `--set tcp
/// tcpfin udp`, HAProxy's timeouts). Changed by a reload for every flow at once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conntrack {
    /// An established TCP flow idle this long is forgotten.
    #[serde(default = "defaults::tcp_idle")]
    pub tcp_idle: Spanned<Span>,
    /// A UDP flow idle this long is forgotten.
    #[serde(default = "defaults::udp_idle")]
    pub udp_idle: Spanned<Span>,
    /// How long a flow outlives its FIN or RST (late ACKs and retransmits still find it).
    #[serde(default = "defaults::closing")]
    pub closing: Spanned<Span>,
    /// How long a flow not yet known to be real (a SYN, a first datagram) lives while quiet;
    /// never longer than `tcp_idle`.
    #[serde(default = "defaults::opening")]
    pub opening: Spanned<Span>,
    /// NAT's source ports towards the backends, first and last: keep them out of the node's
    /// own ephemeral range (`net.ipv4.ip_local_port_range`).
    #[serde(default = "defaults::nat_ports")]
    pub nat_ports: Spanned<[u16; 2]>,
    /// New flows per second of one service above which `under-flood` services answer SYNs
    /// with cookies (and DSR Maglev services stop keeping state).
    #[serde(default = "defaults::flood_new_flows")]
    pub flood_new_flows: Spanned<u32>,
}

impl Default for Conntrack {
    fn default() -> Conntrack {
        Conntrack {
            tcp_idle: defaults::tcp_idle(),
            udp_idle: defaults::udp_idle(),
            closing: defaults::closing(),
            opening: defaults::opening(),
            nat_ports: defaults::nat_ports(),
            flood_new_flows: defaults::flood_new_flows(),
        }
    }
}

impl Conntrack {
    /// The settings the data plane works with.
    pub fn settings(&self) -> foobar_common::lb::LbSettings {
        let ns = |s: &Spanned<Span>| u64::try_from(s.get_ref().0.as_nanos()).unwrap_or(u64::MAX);
        let [first, last] = *self.nat_ports.get_ref();
        foobar_common::lb::LbSettings {
            tcp_idle_ns: ns(&self.tcp_idle),
            udp_idle_ns: ns(&self.udp_idle),
            closing_ns: ns(&self.closing),
            opening_ns: ns(&self.opening).min(ns(&self.tcp_idle)),
            nat_port_min: u32::from(first),
            nat_port_count: u32::from(last.saturating_sub(first)) + 1,
            flood_new_flows: *self.flood_new_flows.get_ref(),
            ..foobar_common::lb::LbSettings::DEFAULT
        }
    }
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            services: defaults::services(),
            backends: defaults::backends(),
            flows: defaults::flows(),
            nat_bindings: defaults::nat_bindings(),
            deny_entries: defaults::deny_entries(),
            ring_slots: defaults::ring_slots(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Drop,
    Accept,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub default_policy: Policy,
    #[serde(default)]
    pub deny_sources: Vec<Cidr>,
    /// New TCP connections per second per source; 0 turns the limit off.
    #[serde(default)]
    pub syn_rate_per_source: u32,
    /// Bucket depth (SYNs a source may send at once); defaults to the rate.
    pub syn_burst: Option<u32>,
    /// New TCP connections per second from one IPv4 /24, its sources together; 0: no limit.
    #[serde(default)]
    pub syn_rate_per_net: u32,
    #[serde(default)]
    pub allow: Vec<AllowRule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    pub proto: Spanned<Proto>,
    pub to: Cidr,
    /// Destination ports; empty allows every port (and is the only choice for ICMP).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Optional source prefix.
    pub from: Option<Cidr>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    #[default]
    Nat,
    Dsr,
    /// Only the destination is rewritten, so backends see the client's address; they must
    /// route replies through the node (their gateway).
    Dnat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    Maglev,
    /// New flows to the backends with the fewest live flows for their weight (LVS's `wlc`),
    /// from the flow census: the ring is rebuilt at each count (about every second).
    LeastConnections,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Spanned<String>,
    pub vip: Spanned<IpAddr>,
    pub ports: Vec<u16>,
    pub proto: Proto,
    #[serde(default)]
    pub mode: ForwardMode,
    #[serde(default)]
    pub scheduler: Scheduler,
    /// When SYNs are answered with cookies before a flow is kept: NAT TCP services `always`
    /// by default, DSR ones `under-flood` (they cannot be proxied; Maglev ones keep no state
    /// under a flood instead).
    pub syn_proxy: Option<Spanned<SynProxy>>,
    /// What a backend's flows do when it goes down or is disabled: `reset` (each client's
    /// next packet gets a RST from XDP, so it reconnects to a live backend) or `keep`.
    #[serde(default)]
    pub on_down: OnDown,
    /// `"source"`: a client's connections all go to one backend, picked from the Maglev ring
    /// by its address (needs `scheduler = "maglev"`); `"network"`: by its IPv4 /24 or IPv6
    /// /64; `"none"`, the default: by connection.
    pub affinity: Option<Spanned<Affinity>>,
    pub health: Option<Health>,
    /// The BIRD protocol (exporting the VIP's route) enabled while this node can serve the
    /// service, and disabled otherwise.
    pub announce: Option<Spanned<String>>,
    #[serde(default, rename = "backend")]
    pub backends: Vec<Backend>,
}

/// The routing daemon that carries the VIP routes foobar gates: BIRD 2 over its control
/// socket, or any other through a command.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// BIRD's control socket (`bird -s`).
    pub bird_socket: Option<Spanned<PathBuf>>,
    /// Instead of BIRD (ExaBGP, GoBGP, FRR): a program and its arguments, run without a shell
    /// with `announce NAME` or `withdraw NAME` added.
    pub command: Option<Spanned<Vec<String>>>,
}

/// The cluster's nodes, the same list on every node: each replicates its NAT flows to the
/// others (IPVS's sync daemon), which take over its NAT address when it dies.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The shared secret the flow messages are signed with (HMAC-SHA256), at least 32 bytes.
    pub sync_key_file: Spanned<PathBuf>,
    /// How often a node sends the NAT flows that moved since it last did.
    #[serde(default = "defaults::sync_interval")]
    pub sync_interval: Spanned<Span>,
    /// The BIRD protocol (or `announce.command` name) that carries this node's own NAT
    /// address: enabled only once its peers have sent it their flows, so that a node that
    /// starts again gets no replies before it can translate them.
    pub announce: Option<Spanned<String>>,
    #[serde(rename = "node")]
    pub nodes: Vec<ClusterNode>,
}

/// One node of the cluster (this one is the entry named `daemon.node_name`).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    pub name: Spanned<String>,
    /// Where it listens for its peers' flows, on the private network (UDP).
    pub sync: Spanned<SocketAddr>,
    /// Its own NAT source address, routed to it (announced by its BIRD, and by every peer
    /// with a longer path, so the survivors get the replies of its flows when it dies).
    pub nat_address: Spanned<IpAddr>,
    /// Its NAT source ports, first and last: disjoint from every other node's, so a peer's
    /// bindings never collide with this node's own.
    pub nat_ports: Spanned<[u16; 2]>,
}

impl Cluster {
    /// The entry of node `name` and its slot (1 for the first node: slot 0 means "this node"
    /// in the data plane).
    pub fn node(&self, name: &str) -> Option<(u32, &ClusterNode)> {
        self.nodes.iter().enumerate().find(|(_, n)| n.name.get_ref() == name).map(|(i, n)| (i as u32 + 1, n))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    None,
    Source,
    /// The client's IPv4 /24 or IPv6 /64.
    Network,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDown {
    #[default]
    Reset,
    Keep,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynProxy {
    Always,
    UnderFlood,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    Tcp,
    Http,
    /// HTTP over TLS; the certificate is not verified (see `health::tls`).
    Https,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub kind: HealthKind,
    /// The port checked on each backend; by default the service's first.
    pub port: Option<u16>,
    #[serde(default = "defaults::http_path")]
    pub path: String,
    /// The Host header (and TLS server name) sent; by default the backend's address.
    pub host: Option<String>,
    /// Statuses that pass: a code (200), a class ("2xx") or a range ("200-399").
    #[serde(default = "defaults::expect_status")]
    pub expect_status: crate::health::Statuses,
    /// Substring the response body must contain (http only).
    pub expect_body: Option<String>,
    #[serde(default = "defaults::interval")]
    pub interval: Span,
    #[serde(default = "defaults::timeout")]
    pub timeout: Spanned<Span>,
    #[serde(default = "defaults::rise")]
    pub rise: u32,
    #[serde(default = "defaults::fall")]
    pub fall: u32,
    /// Passive health: a backend whose connections see this many failures in one second
    /// (RSTs to SYNs, RSTs before it answered anything, ICMP unreachables, handshakes
    /// unanswered until a SYN was said again; in `dsr` only the last) is taken out at once,
    /// for `ejection_time` and until `rise` checks pass again; 0, the default, leaves it to
    /// the checks.
    #[serde(default)]
    pub error_limit: u32,
    /// How long passive health's first ejection lasts; each one that follows soon after lasts
    /// twice the last (up to 16 times), and each `ejection_time` back in rotation undoes one.
    #[serde(default = "defaults::ejection_time")]
    pub ejection_time: Span,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: Spanned<String>,
    pub address: IpAddr,
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// Used only while no non-backup backend of the service is up (active-passive).
    #[serde(default)]
    pub backup: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    pub listen: Vec<SocketAddr>,
    pub zone: Spanned<String>,
    #[serde(default = "defaults::dns_ttl")]
    pub ttl: u32,
    /// UDP responses per second per source /24 (IPv4) or /56 (IPv6) and kind of answer; 0
    /// turns the limit off.
    #[serde(default = "defaults::dns_rate")]
    pub responses_per_second: u32,
    /// Every `slip`-th answer over the limit goes out empty and truncated, so a real resolver
    /// in a flooded prefix retries over TCP; 0 drops them all.
    #[serde(default = "defaults::dns_slip")]
    pub slip: u32,
    /// DNS-over-TCP connections open at once, over all listen addresses; more are closed.
    #[serde(default = "defaults::dns_tcp_connections")]
    pub tcp_connections: u32,
    /// How long a TCP connection may wait for its next query (and a reply for its peer).
    #[serde(default = "defaults::dns_tcp_idle_timeout")]
    pub tcp_idle_timeout: Span,
    /// Whether zone transfers (AXFR, over TCP) are answered; refused by default.
    #[serde(default)]
    pub allow_axfr: bool,
    /// The SOA serial, as in a zone file: raise it with each edit when secondaries transfer
    /// the zone. Unset, a digest of the zone as configured.
    pub serial: Option<u32>,
    #[serde(default, rename = "record")]
    pub records: Vec<Record>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum RecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "MX")]
    Mx,
    #[serde(rename = "TXT")]
    Txt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationTarget {
    Primary,
    Replicas,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// Static data: an address, a target name, `"10 mail"` for MX, text for TXT.
    pub value: Option<String>,
    /// Answer the service's VIP while it has a healthy backend.
    pub service: Option<Spanned<String>>,
    /// Answer from the replication monitor's view.
    pub replication: Option<ReplicationTarget>,
    pub ttl: Option<u32>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbServer {
    pub name: String,
    pub address: SocketAddr,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    pub primary: Spanned<DbServer>,
    #[serde(default)]
    pub replicas: Vec<DbServer>,
    pub user: String,
    pub password_file: PathBuf,
    #[serde(default = "defaults::repl_interval")]
    pub interval: Span,
    #[serde(default = "defaults::max_lag")]
    pub max_lag: Span,
    /// Bounds each connection attempt and each query, so a hung server costs at most this.
    #[serde(default = "defaults::repl_timeout")]
    pub timeout: Spanned<Span>,
    #[serde(default = "defaults::yes")]
    pub heartbeat: bool,
    /// `database.table` the heartbeat row lives in (created on the primary when missing).
    #[serde(default = "defaults::heartbeat_table")]
    pub heartbeat_table: Spanned<String>,
    /// TLS to every database server; plain TCP without this table.
    pub tls: Option<DbTls>,
    /// Promote a replica when the primary has failed `failover_after` checks in a row and
    /// every reachable replica lost it too.
    #[serde(default = "defaults::no")]
    pub auto_failover: Spanned<bool>,
    #[serde(default = "defaults::failover_after")]
    pub failover_after: Spanned<u32>,
    /// Point a returning old primary at the new one when its GTID history allows.
    #[serde(default)]
    pub auto_rejoin: bool,
    /// The user replicas log in to a new primary as (switchover and failover run
    /// CHANGE MASTER with it), and the file holding its password.
    pub replication_user: Option<String>,
    pub replication_password_file: Option<PathBuf>,
    /// How long a replica may take to apply what it must before it is promoted.
    #[serde(default = "defaults::catch_up_timeout")]
    pub catch_up_timeout: Span,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTls {
    /// PEM file of the CA that signed the servers' certificates; unset: the public roots.
    pub ca_file: Option<PathBuf>,
    /// Whether a certificate must name the server's address (MySQL's VERIFY_IDENTITY);
    /// false checks the chain only (VERIFY_CA).
    #[serde(default = "defaults::yes")]
    pub check_name: bool,
}

mod defaults {
    use std::{net::SocketAddr, path::PathBuf, time::Duration};

    use toml::Spanned;

    use super::Span;

    /// Position 0..0 marks a value as defaulted (errors then point at the table).
    fn unset(n: u32) -> Spanned<u32> {
        Spanned::new(0..0, n)
    }
    pub fn services() -> Spanned<u32> {
        unset(foobar_common::lb::DEFAULT_SERVICES)
    }
    pub fn backends() -> Spanned<u32> {
        unset(foobar_common::lb::DEFAULT_BACKENDS)
    }
    pub fn flows() -> Spanned<u32> {
        unset(foobar_common::lb::DEFAULT_FLOWS)
    }
    pub fn nat_bindings() -> Spanned<u32> {
        unset(foobar_common::lb::DEFAULT_NAT_BINDINGS)
    }
    pub fn deny_entries() -> Spanned<u32> {
        unset(foobar_common::firewall::DEFAULT_DENY_ENTRIES)
    }
    pub fn ring_slots() -> Spanned<u32> {
        unset(foobar_common::lb::DEFAULT_RING_SLOTS)
    }

    pub fn pin_dir() -> PathBuf {
        PathBuf::from("/sys/fs/bpf/foobar")
    }
    pub fn control_socket() -> PathBuf {
        PathBuf::from("/run/foobar/control.sock")
    }
    pub fn state_file() -> PathBuf {
        PathBuf::from("/var/lib/foobar/state.json")
    }
    pub fn metrics_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9469))
    }
    pub fn http_path() -> String {
        "/".to_owned()
    }
    /// As HAProxy's HTTP checks: any success or redirect.
    pub fn expect_status() -> crate::health::Statuses {
        crate::health::Statuses { low: 200, high: 399 }
    }
    pub fn interval() -> Span {
        Span(Duration::from_secs(2))
    }
    /// Position 0..0 marks the value as defaulted (errors then point at the service).
    pub fn timeout() -> toml::Spanned<Span> {
        toml::Spanned::new(0..0, Span(Duration::from_secs(1)))
    }
    pub fn rise() -> u32 {
        2
    }
    pub fn fall() -> u32 {
        3
    }
    pub fn ejection_time() -> Span {
        Span(Duration::from_secs(10))
    }
    pub fn weight() -> u32 {
        1
    }
    pub fn dns_ttl() -> u32 {
        30
    }
    pub fn dns_rate() -> u32 {
        100
    }
    pub fn dns_slip() -> u32 {
        2
    }
    pub fn dns_tcp_connections() -> u32 {
        100
    }
    pub fn dns_tcp_idle_timeout() -> Span {
        Span(Duration::from_secs(5))
    }
    pub fn repl_interval() -> Span {
        Span(Duration::from_secs(1))
    }
    pub fn repl_timeout() -> toml::Spanned<Span> {
        toml::Spanned::new(0..0, Span(Duration::from_millis(500)))
    }
    pub fn heartbeat_table() -> toml::Spanned<String> {
        toml::Spanned::new(0..0, "foobar_monitor.heartbeat".to_owned())
    }
    fn span_of(ns: u64) -> toml::Spanned<Span> {
        toml::Spanned::new(0..0, Span(Duration::from_nanos(ns)))
    }
    pub fn tcp_idle() -> toml::Spanned<Span> {
        span_of(foobar_common::lb::LbSettings::DEFAULT.tcp_idle_ns)
    }
    pub fn udp_idle() -> toml::Spanned<Span> {
        span_of(foobar_common::lb::LbSettings::DEFAULT.udp_idle_ns)
    }
    pub fn closing() -> toml::Spanned<Span> {
        span_of(foobar_common::lb::LbSettings::DEFAULT.closing_ns)
    }
    pub fn opening() -> toml::Spanned<Span> {
        span_of(foobar_common::lb::LbSettings::DEFAULT.opening_ns)
    }
    pub fn sync_interval() -> Spanned<Span> {
        Spanned::new(0..0, Span(Duration::from_millis(500)))
    }

    pub fn nat_ports() -> toml::Spanned<[u16; 2]> {
        let d = foobar_common::lb::LbSettings::DEFAULT;
        let (first, last) = (d.nat_port_min, d.nat_port_min + d.nat_port_count - 1);
        toml::Spanned::new(0..0, [u16::try_from(first).unwrap_or(10_240), u16::try_from(last).unwrap_or(32_767)])
    }
    pub fn flood_new_flows() -> toml::Spanned<u32> {
        unset(foobar_common::lb::LbSettings::DEFAULT.flood_new_flows)
    }
    pub fn failover_after() -> toml::Spanned<u32> {
        toml::Spanned::new(0..0, 3)
    }
    pub fn catch_up_timeout() -> Span {
        Span(Duration::from_secs(5))
    }
    pub fn max_lag() -> Span {
        Span(Duration::from_secs(5))
    }
    pub fn yes() -> bool {
        true
    }
    pub fn no() -> toml::Spanned<bool> {
        toml::Spanned::new(0..0, false)
    }
}
