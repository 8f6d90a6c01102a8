//! The load balancer's maps and pure decisions.
//!
//! A service is found by (VIP, port, protocol). Its backends for new flows sit in a ring
//! (a slice of one big array) that userspace rebuilds from health: the up backends for
//! round-robin, each repeated by weight for weighted round-robin, or a Maglev table. Each
//! service owns two ring halves; userspace writes the idle half, then switches the service
//! entry to it in one map update, so a backend-set change is atomic for the kernel.

use bytemuck::{Pod, Zeroable};

use crate::parse::Parsed;

pub const SERVICES_MAP: &str = "LB_SERVICES";
pub const RINGS_MAP: &str = "LB_RINGS";
pub const CURSORS_MAP: &str = "LB_CURSORS";
pub const BACKENDS_MAP: &str = "LB_BACKENDS";
pub const CONNTRACK_MAP: &str = "LB_CONNTRACK";
pub const NAT_MAP: &str = "LB_NAT";
/// DNAT bindings: a DNAT flow's replies as the backend sends them (backend → client) → the
/// flow they translate back to (a map of its own, so pins of builds before it stay adoptable).
pub const DNAT_MAP: &str = "LB_DNAT";
pub const SETTINGS_MAP: &str = "LB_SETTINGS";
pub const SERVICE_STATS_MAP: &str = "LB_SERVICE_STATS";
pub const BACKEND_STATS_MAP: &str = "LB_BACKEND_STATS";
/// Per backend (per CPU, `u64`): handshakes it left unanswered until the client retried (a
/// map of its own, so pins of builds before it stay adoptable).
pub const BACKEND_TIMEOUTS_MAP: &str = "LB_BACKEND_TIMEOUTS";
pub const VIP_FILTER_MAP: &str = "LB_VIP_FILTER";
pub const FLOW_EPOCH_MAP: &str = "LB_FLOW_EPOCH";
/// The cluster's NAT addresses by node slot ([`Flow::nat_source`]): a flow a peer synced
/// reaches its backend from the peer's address, which this node takes over when the peer dies.
pub const NAT_PEERS_MAP: &str = "LB_NAT_PEERS";
/// Node slots [`NAT_PEERS_MAP`] holds; slot 0 is this node's own (the backend's `snat`).
pub const NAT_PEER_SLOTS: u32 = 32;

/// The sizes the object declares its tables with. The daemon sets each at load time from the
/// config's `[capacity]` (whose defaults these are), so none is a limit of the build.
pub const DEFAULT_SERVICES: u32 = 512;
/// Service entries (VIP, port, protocol) per service the service table has room for.
pub const SERVICE_KEYS_PER_SERVICE: u32 = 8;
pub const DEFAULT_BACKENDS: u32 = 4096;
pub const DEFAULT_FLOWS: u32 = 1 << 20;
pub const DEFAULT_NAT_BINDINGS: u32 = 1 << 20;
/// Slots of the one array every service's rings are cut from (32 MiB).
pub const DEFAULT_RING_SLOTS: u32 = 1 << 23;
/// Slots of a Maglev table, one ring half of a Maglev service (prime, as Maglev needs).
pub const RING_SIZE: u32 = 65_537;
/// Slots of the fast path's per-CPU flow cache (a power of two): 1024 × 72 bytes per CPU,
/// small enough to stay in a CPU's own cache when it misses.
pub const FLOW_CACHE_SLOTS: u32 = 1 << 10;
/// The daemon's counter in the flow-cache epoch map (the data plane's is slot 0).
pub const FLOW_EPOCH_DAEMON: u32 = 1;

pub const MODE_NAT: u32 = 0;
pub const MODE_DSR: u32 = 1;
/// Only the destination is rewritten: the backend sees the client's own address and sends its
/// replies back through the node (its gateway), where they are translated back (IPVS's VS/NAT).
pub const MODE_DNAT: u32 = 2;
/// New flows take the next ring slot (round-robin; weighted when the ring repeats backends).
pub const PICK_CURSOR: u32 = 0;
/// New flows take the ring slot of their flow hash (Maglev).
pub const PICK_HASH: u32 = 1;
/// New flows take the ring slot of their client address's hash (Maglev, `affinity = "source"`):
/// a client's connections share a backend, and keep it when other backends come and go.
pub const PICK_SOURCE: u32 = 2;
/// Hashing services: by the client's network (IPv4 /24, IPv6 /64), for clients whose NAT pool
/// gives each connection another address of its network (`affinity = "network"`).
pub const PICK_NETWORK: u32 = 3;

pub const BACKEND_ABSENT: u32 = 0;
pub const BACKEND_UP: u32 = 1;
pub const BACKEND_DRAINING: u32 = 2;
pub const BACKEND_DOWN: u32 = 3;
/// Down, and its service resets its flows (`on_down = "reset"`): each packet of one gets a RST.
pub const BACKEND_DEAD: u32 = 4;

/// Flow flag: a FIN or RST was seen; the entry lives only `closing_ns` more.
pub const FLOW_CLOSING: u16 = 1;
/// Flow flag: not yet known to be real (a SYN seen and no ACK of the client's after it; a UDP
/// datagram no reply has answered yet): the entry lives only `opening_ns` while it is quiet.
pub const FLOW_OPENING: u16 = 2;
/// Flow flag: opened by the SYN proxy, so the backend's sequence numbers and timestamps differ
/// from what the client saw and are translated both ways (`seq_delta`, `ts_delta`).
pub const FLOW_PROXIED: u16 = 4;
/// Flow flag: the SYN proxy has sent the backend its SYN and waits for its SYN-ACK (also
/// timed by `opening_ns`).
pub const FLOW_HANDSHAKE: u16 = 8;
/// Flow flag (NAT bindings): the backend has sent the client data (a segment with PSH, or a
/// UDP reply). A backend's RST before that is a passive health failure.
pub const FLOW_ANSWERED: u16 = 16;

/// How stale a flow's timestamp may get before a packet renews it (a store per packet would
/// bounce the entry between CPUs for a clock nobody reads that finely); also how long the fast
/// path may use its copy of a flow without asking the table again.
pub const RENEW_NS: u64 = 1_000_000_000;

/// log2 of the VIP filter's slots.
pub const VIP_FILTER_BITS: u32 = 12;
/// Slots of the VIP filter: an array with a nonzero slot for every VIP address's
/// [`vip_slot`], so the kernel can tell on one array read that a packet's destination is not
/// a VIP (most traffic that is not balanced) before it pays for a connection-table lookup.
/// Other addresses may share a VIP's slot; they only pay that lookup.
pub const VIP_FILTER_SLOTS: u32 = 1 << VIP_FILTER_BITS;
/// The filter's slot past the VIPs': nonzero while DNAT bindings may exist (a `dnat` service,
/// or bindings left in the table), so that other replies skip the DNAT table's lookup.
pub const DNAT_IN_USE_SLOT: u32 = VIP_FILTER_SLOTS;

/// The VIP-filter slot of an address (raw words, as in [`ServiceKey::addr`]).
#[inline(always)]
pub fn vip_slot(addr: &[u32; 4]) -> u32 {
    let folded = addr[0] ^ addr[1].rotate_left(8) ^ addr[2].rotate_left(16) ^ addr[3].rotate_left(24);
    // Fibonacci hashing: the top bits of the product depend on every bit of the address.
    folded.wrapping_mul(0x9e37_79b9) >> (32 - VIP_FILTER_BITS)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ServiceKey {
    pub addr: [u32; 4],
    /// Host byte order.
    pub port: u16,
    pub protocol: u8,
    pub family: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ServiceInfo {
    /// Index of the service's counters and cursor.
    pub id: u32,
    pub mode: u32,
    pub pick: u32,
    /// Index in the ring array where the live ring half starts.
    pub ring_offset: u32,
    /// Slots in use; 0 means no backend is available and new flows are refused.
    pub ring_len: u32,
    /// When new TCP flows are answered by the SYN proxy: [`PROXY_OFF`], [`PROXY_ALWAYS`] or
    /// [`PROXY_UNDER_FLOOD`] (DSR services: under flood, Maglev ones keep no state instead).
    pub syn_proxy: u32,
}

pub const PROXY_OFF: u32 = 0;
pub const PROXY_ALWAYS: u32 = 1;
pub const PROXY_UNDER_FLOOD: u32 = 2;

/// Where a backend lives. Index = backend id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Backend {
    pub addr: [u32; 4],
    /// The node's own address towards this backend: NAT's source address.
    pub snat: [u32; 4],
    pub family: u32,
    pub state: u32,
}

/// A flow as the client sent it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

impl FlowKey {
    /// The flow from `src:sport` to `dst:dport` (the one place its padding is filled in).
    #[inline(always)]
    pub const fn new(src: [u32; 4], sport: u16, dst: [u32; 4], dport: u16, protocol: u8, family: u8) -> FlowKey {
        FlowKey { src, dst, sport, dport, protocol, family, _pad: [0; 2] }
    }

    /// The flow `p` belongs to, as its sender sent it.
    #[inline(always)]
    pub fn of(p: &Parsed, family: u8) -> FlowKey {
        FlowKey::new(p.src, p.src_port, p.dst, p.dst_port, p.protocol, family)
    }
}

/// Where to send a frame: out of `ifindex`, to `dmac`, from `smac`. Flows remember theirs so
/// that only their first packet pays for a route lookup; `ifindex` 0 means "not known yet".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NextHop {
    pub ifindex: u32,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Flow {
    pub backend: u32,
    pub service: u32,
    /// The source port the flow reaches its backend from (host order): the one NAT gave it, the
    /// client's own in DNAT mode; 0 in DSR mode.
    pub nat_port: u16,
    pub flags: u16,
    /// The service's forwarding mode when the flow began ([`MODE_NAT`], [`MODE_DSR`] or
    /// [`MODE_DNAT`]): its
    /// later packets are forwarded from the flow alone, without looking the service up.
    pub mode: u32,
    pub last_seen_ns: u64,
    /// Next hop towards the backend, found by the flow's first packet.
    pub hop: NextHop,
    /// The SYN proxy's translation (see [`Proxied`]).
    pub proxied: Proxied,
    /// The client's sequence number and acknowledgement (the backend's sequence number as the
    /// client sees it) as last seen, renewed with `last_seen_ns`: what RSTs, FINs and ICMP
    /// errors are checked against. During a SYN-proxied flow's backend handshake `client_seq`
    /// is the client's ISN, for saying the proxy's SYN again.
    pub client_seq: u32,
    pub client_ack: u32,
    /// Whose NAT address a NAT flow reaches its backend from: 0, this node's; else the peer
    /// slot (in [`NAT_PEERS_MAP`]) of the node that began the flow and synced it here.
    pub nat_source: u32,
}

/// How far (either way, in bytes) a RST's or FIN's sequence number, or an ICMP error's quoted
/// one, may be from what the flow last saw and still be taken as the flow's: wider than any
/// window TCP moves through between two renewals, and a 1-in-256 guess for a blind attacker.
pub const SEQ_WINDOW: u32 = 1 << 24;

/// Whether sequence number `seq` is within [`SEQ_WINDOW`] of `seen`, modulo 2^32.
#[inline(always)]
pub fn near(seq: u32, seen: u32) -> bool {
    seq.wrapping_sub(seen).wrapping_add(SEQ_WINDOW) < 2 * SEQ_WINDOW
}

/// How a SYN-proxied flow's segments are translated between the client, which finished its
/// handshake with the proxy, and the backend, which the proxy opened its own with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Proxied {
    /// The backend's ISN less the cookie: added to the client's acknowledgement numbers (and
    /// SACK edges), taken from the backend's sequence numbers. During the backend handshake:
    /// the cookie.
    pub seq_delta: u32,
    /// The backend's clock less the proxy's: added to the client's timestamp echoes, taken
    /// from the backend's timestamp values. During the backend handshake: the timestamp the
    /// SYN-ACK sent the client (0: the client has no timestamps).
    pub ts_delta: u32,
    /// The client's window as its handshake ACK advertised it (for the proxy's ACK to the backend).
    pub client_window: u16,
    /// Bits to shift the backend's windows left by before the client reads them (negative:
    /// right): the backend's window scale less the one the proxy gave the client.
    pub to_client_shift: i8,
    /// Bits to shift the client's windows left by before the backend reads them: the client's
    /// window scale when the backend took none.
    pub to_backend_shift: u8,
}

/// A NAT reply as the backend sends it: from (backend, port) to (snat, nat_port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct NatKey {
    pub backend: [u32; 4],
    pub backend_port: u16,
    pub nat_port: u16,
    pub protocol: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

impl NatKey {
    /// Replies from `backend:backend_port` to the NAT address's `nat_port`.
    #[inline(always)]
    pub const fn new(backend: [u32; 4], backend_port: u16, nat_port: u16, protocol: u8, family: u8) -> NatKey {
        NatKey { backend, backend_port, nat_port, protocol, family, _pad: [0; 2] }
    }
}

/// Where a NAT reply goes back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NatTarget {
    pub client: [u32; 4],
    pub vip: [u32; 4],
    pub client_port: u16,
    pub vip_port: u16,
    pub service: u32,
    pub backend: u32,
    /// The flow's [`FLOW_OPENING`], [`FLOW_PROXIED`] and [`FLOW_HANDSHAKE`] as replies need them
    /// (the low half), and [`BINDING_DNAT`] for a DNAT flow's binding.
    pub flags: u32,
    /// Next hop back to the client: where its first frame came from.
    pub hop: NextHop,
    /// The SYN proxy's translation, for replies (as in the flow).
    pub proxied: Proxied,
}

/// [`NatTarget::flags`]: the binding is in the DNAT table, keyed by the reply's own tuple.
pub const BINDING_DNAT: u32 = 1 << 16;
/// [`NatTarget::flags`]' top byte: the binding's peer slot (as [`Flow::nat_source`]), whose NAT
/// address its replies come to.
pub const BINDING_PEER_SHIFT: u32 = 24;

impl NatTarget {
    /// The peer slot of the node whose NAT address this binding's replies come to (0: this node).
    #[inline(always)]
    pub const fn peer(&self) -> u32 {
        self.flags >> BINDING_PEER_SHIFT
    }

    /// The client's flow this binding belongs to.
    #[inline(always)]
    pub const fn client_flow(&self, protocol: u8, family: u8) -> FlowKey {
        FlowKey::new(self.client, self.client_port, self.vip, self.vip_port, protocol, family)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct LbSettings {
    /// First NAT source port and how many follow it.
    pub nat_port_min: u32,
    pub nat_port_count: u32,
    pub tcp_idle_ns: u64,
    pub udp_idle_ns: u64,
    /// How long a flow outlives its FIN or RST (late ACKs and retransmits still find it).
    pub closing_ns: u64,
    /// How long a closed flow must have been quiet before its NAT port goes to a new flow.
    /// Shorter than `closing_ns`, or the port range, not the node, caps new flows per second
    /// (22,528 ports per backend held 10 s each: 2,253/s).
    pub nat_reuse_ns: u64,
    /// How long a flow not yet known to be real lives while quiet (see [`FLOW_OPENING`]): a SYN
    /// flood's entries and NAT ports go in seconds, not at the idle timeout.
    pub opening_ns: u64,
    /// New flows per second of one service above which `under-flood` services answer SYNs
    /// with cookies (and DSR Maglev services stop keeping state).
    pub flood_new_flows: u32,
    /// CPUs the data plane runs on: each counts its own share of the rate.
    pub cpus: u32,
    /// The smallest MTU of the namespace's interfaces: a frame that fits it fits any egress
    /// link and skips the per-packet MTU check (0: every frame is checked).
    pub link_mtu_floor: u32,
    /// 1 while IPv4 routing rules select by source, so a next hop found for one client's flow
    /// may not suit another's: the next-hop cache then keys on the source too (IPv6 always does).
    pub hops_by_source: u32,
}

impl LbSettings {
    pub const DEFAULT: LbSettings = LbSettings {
        nat_port_min: 10_240,
        nat_port_count: 22_528,
        tcp_idle_ns: 900_000_000_000,
        udp_idle_ns: 30_000_000_000,
        closing_ns: 10_000_000_000,
        nat_reuse_ns: 2_000_000_000,
        opening_ns: 5_000_000_000,
        flood_new_flows: 10_000,
        cpus: 1,
        link_mtu_floor: 0,
        hops_by_source: 1,
    };
}

/// What a SYN-proxy step program is handed by the program that found the packet (one per-CPU
/// slot, [`HANDOFF_MAP`]): the packet as parsed, and the records looked up for it. Pinned with
/// the step table, so a kept data plane's programs and the next daemon's steps share it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Handoff {
    /// The step's slot in [`crate::PROXY_STEPS_MAP`].
    pub step: u32,
    pub family: u8,
    pub parsed: crate::parse::Parsed,
    /// The service of a cookie's ACK, and the tuple's closing flow it may replace.
    pub service: ServiceInfo,
    pub previous: Option<Flow>,
    /// The NAT binding a backend's handshake answer is for.
    pub target: NatTarget,
}

pub const HANDOFF_MAP: &str = "LB_HANDOFF";

/// One CPU's count of a service's new flows in the current window, and until when the service
/// is under flood as this CPU saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FloodWindow {
    pub window_start_ns: u64,
    pub count: u64,
    pub until_ns: u64,
}

pub const FLOOD_MAP: &str = "LB_FLOOD";
/// The SYN cookies' 128-bit key (one slot), random per data plane.
pub const SYN_KEY_MAP: &str = "LB_SYN_KEY";
/// The NAT port cursor (one slot), started at a random port.
pub const NAT_CURSOR_MAP: &str = "LB_NAT_CURSOR";

/// Packets, bytes and new flows of a service or backend (per CPU in the map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TrafficStats {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    /// Passive health (backends only): RSTs answering a connection's SYN,
    pub refused: u64,
    /// RSTs on a connection before the backend sent anything,
    pub reset_unanswered: u64,
    /// and ICMP unreachables (but fragmentation needed) about its NAT flows.
    pub unreachable: u64,
}

impl TrafficStats {
    /// Passive health failures of every kind.
    pub fn passive_failures(&self) -> u64 {
        self.refused + self.reset_unanswered + self.unreachable
    }
}

/// The kinds of passive health failure, as [`TrafficStats`] counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passive {
    Refused,
    ResetUnanswered,
    Unreachable,
}

/// A hash of the flow's five-tuple that every node computes alike (Maglev needs agreement).
#[inline(always)]
pub fn flow_hash(k: &FlowKey) -> u32 {
    mix([
        k.src[0],
        k.src[1],
        k.src[2],
        k.src[3],
        k.dst[0],
        k.dst[1],
        k.dst[2],
        k.dst[3],
        (u32::from(k.sport) << 16) | u32::from(k.dport),
        u32::from(k.protocol),
    ])
}

/// A hash of the client's address alone, alike on every node (source affinity).
#[inline(always)]
pub fn source_hash(k: &FlowKey) -> u32 {
    mix([k.src[0], k.src[1], k.src[2], k.src[3]])
}

/// A hash of the client's network alone: its IPv4 /24 or IPv6 /64.
#[inline(always)]
pub fn network_hash(k: &FlowKey) -> u32 {
    // The words hold the address bytes in network order: the /24 is the first three bytes.
    let v4 = u32::from_ne_bytes([0xff, 0xff, 0xff, 0]);
    if k.family == crate::addr::FAMILY_V4 { mix([k.src[0] & v4, 0, 0, 0]) } else { mix([k.src[0], k.src[1], 0, 0]) }
}

/// The hash a hashing service (`pick`) places a flow by: its five-tuple, its source, or its
/// source's network.
#[inline(always)]
pub fn pick_hash(pick: u32, k: &FlowKey) -> u32 {
    match pick {
        PICK_SOURCE => source_hash(k),
        PICK_NETWORK => network_hash(k),
        _ => flow_hash(k),
    }
}

#[inline(always)]
fn mix<const N: usize>(words: [u32; N]) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    for w in words {
        h ^= w;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
    }
    h ^ (h >> 16)
}

/// Whether a flow entry no longer binds its packets to a backend.
#[inline(always)]
pub fn flow_expired(flow: &Flow, now: u64, protocol: u8, s: &LbSettings) -> bool {
    now.saturating_sub(flow.last_seen_ns) > flow_timeout(flow, protocol, s)
}

/// How long `flow` may stay quiet before it expires: closing, opening, TCP or UDP.
#[inline(always)]
pub fn flow_timeout(flow: &Flow, protocol: u8, s: &LbSettings) -> u64 {
    if flow.flags & FLOW_CLOSING != 0 {
        s.closing_ns
    } else if flow.flags & (FLOW_OPENING | FLOW_HANDSHAKE) != 0 {
        s.opening_ns
    } else if protocol == crate::parse::IPPROTO_TCP {
        s.tcp_idle_ns
    } else {
        s.udp_idle_ns
    }
}

/// Whether `flow` no longer needs its NAT port: it expired, or it closed and has been quiet
/// for `nat_reuse_ns` (a late packet after that is rarer than running out of ports).
#[inline(always)]
pub fn nat_port_free(flow: &Flow, now: u64, protocol: u8, s: &LbSettings) -> bool {
    flow_expired(flow, now, protocol, s)
        || (flow.flags & FLOW_CLOSING != 0 && now.saturating_sub(flow.last_seen_ns) > s.nat_reuse_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_hash_ignores_everything_but_the_client_address() {
        let k = FlowKey {
            src: [7, 0, 0, 0],
            dst: [9, 0, 0, 0],
            sport: 1,
            dport: 80,
            protocol: 6,
            family: 4,
            ..FlowKey::default()
        };
        let other_port = FlowKey { sport: 2, dport: 443, ..k };
        assert_eq!(source_hash(&k), source_hash(&other_port));
        assert_ne!(flow_hash(&k), flow_hash(&other_port));
        assert_ne!(source_hash(&k), source_hash(&FlowKey { src: [8, 0, 0, 0], ..k }));
        assert_eq!(pick_hash(PICK_SOURCE, &k), source_hash(&k));
        let a = |b: [u8; 4]| FlowKey { src: [u32::from_ne_bytes(b), 0, 0, 0], ..k };
        let (one, two, elsewhere) = (a([192, 0, 2, 100]), a([192, 0, 2, 101]), a([192, 0, 3, 100]));
        assert_eq!(network_hash(&one), network_hash(&two), "one /24");
        assert_ne!(network_hash(&one), network_hash(&elsewhere));
        assert_eq!(pick_hash(PICK_NETWORK, &one), network_hash(&two));
        let v6 = |last: u32, third: u32| FlowKey { src: [0x2001_0db8, 7, third, last], family: 6, ..k };
        assert_eq!(network_hash(&v6(1, 5)), network_hash(&v6(2, 9)), "one /64");
        assert_ne!(network_hash(&v6(1, 5)), network_hash(&FlowKey { src: [0x2001_0db8, 8, 5, 1], ..v6(1, 5) }));
        assert_eq!(pick_hash(PICK_HASH, &k), flow_hash(&k));
    }

    #[test]
    fn flow_hash_spreads_and_is_stable() {
        let mut k = FlowKey { protocol: 6, family: 4, dport: 80, ..FlowKey::default() };
        let mut buckets = [0u32; 16];
        for port in 0..16_000u16 {
            k.sport = port;
            buckets[(flow_hash(&k) % 16) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (800..1200).contains(&b)), "{buckets:?}");
        k.sport = 1;
        assert_eq!(flow_hash(&k), flow_hash(&k.clone()));
    }

    #[test]
    fn vip_slots_stay_in_range_and_spread_neighbours() {
        let mut seen = std::collections::HashSet::new();
        for last in 0..=255u32 {
            let v4 = [u32::from_ne_bytes([192, 0, 2, last as u8]), 0, 0, 0];
            let slot = vip_slot(&v4);
            assert!(slot < VIP_FILTER_SLOTS);
            seen.insert(slot);
        }
        assert!(seen.len() > 200, "256 neighbouring addresses share too few slots: {}", seen.len());
        let v6 = [0x2001_0db8u32.to_be(), 0, 0, 10u32.to_be()];
        assert!(vip_slot(&v6) < VIP_FILTER_SLOTS);
    }

    #[test]
    fn closing_flows_expire_sooner() {
        let s = LbSettings::DEFAULT;
        let mut f = Flow { last_seen_ns: 1_000, ..Flow::default() };
        assert!(!flow_expired(&f, 1_000 + s.closing_ns + 1, 6, &s));
        f.flags = FLOW_CLOSING;
        assert!(flow_expired(&f, 1_000 + s.closing_ns + 1, 6, &s));
    }

    #[test]
    fn flows_not_known_real_go_in_seconds() {
        let s = LbSettings::DEFAULT;
        let f = Flow { last_seen_ns: 1_000, flags: FLOW_OPENING, ..Flow::default() };
        let later = 1_000 + s.opening_ns + 1;
        assert!(flow_expired(&f, later, 6, &s) && nat_port_free(&f, later, 6, &s));
        let handshake = Flow { flags: FLOW_PROXIED | FLOW_HANDSHAKE, ..f };
        assert!(flow_expired(&handshake, later, 6, &s));
        let open = Flow { flags: FLOW_PROXIED, ..f };
        assert!(!flow_expired(&open, later, 6, &s), "an established proxied flow lives the idle timeout");
    }

    #[test]
    fn nat_ports_come_back_soon_after_a_close() {
        let s = LbSettings::DEFAULT;
        let open = Flow { last_seen_ns: 1_000, ..Flow::default() };
        let later = 1_000 + s.nat_reuse_ns + 1;
        assert!(!nat_port_free(&open, later, 6, &s), "an open flow keeps its port while not idle");
        let closed = Flow { flags: FLOW_CLOSING, ..open };
        assert!(!nat_port_free(&closed, 1_000 + s.nat_reuse_ns, 6, &s), "not before nat_reuse_ns");
        assert!(nat_port_free(&closed, later, 6, &s));
        assert!(!flow_expired(&closed, later, 6, &s), "the flow itself lives on for late packets");
        assert!(nat_port_free(&open, 1_000 + s.tcp_idle_ns + 1, 6, &s), "an idle flow's port is free");
    }
}
