//! The NAT tables: which source port a new flow uses towards its backend, and the binding its
//! replies are translated back by (backend, backend port, NAT port → client, VIP); in DNAT
//! mode, the binding of the reply's own tuple (backend, backend port, client, client port).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap},
};
use foobar_common::{
    lb::{
        BINDING_DNAT, DEFAULT_FLOWS, DEFAULT_NAT_BINDINGS, FLOW_HANDSHAKE, FLOW_OPENING, Flow, FlowKey, LbSettings,
        MODE_DNAT, NAT_PEER_SLOTS, NatKey, NatTarget, Proxied, nat_port_free,
    },
    parse::Parsed,
};

use crate::{atomic, conntrack};

/// One shared cursor over the NAT port range (the daemon starts it at a random port).
#[map(name = "LB_NAT_CURSOR")]
static NAT_CURSOR: Array<u64> = Array::with_max_entries(1, 0);
/// Not an LRU: a binding is never evicted from under its live flow (replies would stop
/// being translated). Bindings whose flow is gone are taken back when their port is picked.
#[map(name = "LB_NAT")]
static NAT: HashMap<NatKey, NatTarget> = HashMap::with_max_entries(DEFAULT_NAT_BINDINGS, 0);
/// An LRU as large as the connection table (an LRU itself): DNAT's keys are the clients'
/// own tuples, so nothing like a port range bounds them, and a binding whose flow is gone is
/// evicted before any live one is.
#[map(name = "LB_DNAT")]
static DNAT: LruHashMap<FlowKey, NatTarget> = LruHashMap::with_max_entries(DEFAULT_FLOWS, 0);
/// The cluster's NAT addresses by peer slot (the daemon writes them from `[cluster]`).
#[map(name = "LB_NAT_PEERS")]
static NAT_PEERS: Array<[u32; 4]> = Array::with_max_entries(NAT_PEER_SLOTS, 0);
const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// The keys [`allocate_port`] works with, in the caller's per-CPU scratch (BPF's stack is
/// 512 bytes for the whole call chain).
pub struct Keys {
    binding: NatKey,
    holder: FlowKey,
    /// A DNAT flow's replies as the backend sends them.
    reply: FlowKey,
    /// The oldest half-open holder seen so far (port, last seen; 0: none). Kept here, not in
    /// a local: a local splits the verifier's states at every probe, and 16 probes explode.
    oldest_port: u16,
    oldest_seen: u64,
}

/// The binding replies from `backend:backend_port` to NAT port `nat_port` go back by.
#[inline(always)]
pub fn binding(key: &NatKey) -> Option<&'static NatTarget> {
    // SAFETY: map lookups return pointers valid for this program run.
    unsafe { NAT.get(key) }
}

/// The NAT address of the node in peer slot `slot`: where a flow it synced here is NATed from.
#[inline(always)]
pub fn peer_address(slot: u32) -> Option<&'static [u32; 4]> {
    NAT_PEERS.get(slot)
}

/// The DNAT binding of `reply`, a packet's tuple as a backend sent it to a DNAT flow's client.
#[inline(always)]
pub fn dnat_binding(reply: &FlowKey) -> Option<&'static NatTarget> {
    // SAFETY: map lookups return pointers valid for this program run.
    unsafe { DNAT.get(reply) }
}

/// Binds the replies of DNAT flow `key` towards `backend` (from it to the client's own address
/// and port) to `target`. The client's tuple is the only key there is, so another flow of the
/// client's from the same port to another VIP on the same backend port keeps it while that
/// flow is live and past its handshake: a half-open holder gives it up, so a spoofed SYN
/// cannot lock a real client out.
#[inline(always)]
pub fn bind_client(
    key: &FlowKey,
    backend: &[u32; 4],
    target: &NatTarget,
    keys: &mut Keys,
    s: &LbSettings,
    now: u64,
) -> bool {
    keys.reply = FlowKey::new(*backend, key.dport, key.src, key.sport, key.protocol, key.family);
    if DNAT.insert(&keys.reply, target, BPF_NOEXIST).is_ok() {
        return true;
    }
    let Some(bound) = dnat_binding(&keys.reply) else { return false };
    let own = bound.client == key.src && bound.client_port == key.sport && bound.vip == key.dst;
    if !own {
        keys.holder = bound.client_flow(key.protocol, key.family);
        let held = conntrack::get(&keys.holder).filter(|f| f.mode == MODE_DNAT && f.backend == bound.backend);
        if let Some(f) = held {
            if !nat_port_free(f, now, key.protocol, s) && f.flags & (FLOW_OPENING | FLOW_HANDSHAKE) == 0 {
                return false;
            }
            conntrack::forget(&keys.holder, f, now);
        }
    }
    DNAT.insert(&keys.reply, target, BPF_ANY).is_ok()
}

/// Ports tried for one new flow before the oldest half-open holder seen gives its port up.
const PROBES: usize = 16;

/// Picks a free NAT source port towards `backend` for the flow `key` and binds it to `target`.
///
/// Ports come from one shared cursor (an atomic add), so CPUs never try the same one at once,
/// and a flood of new flows walks the whole range. A port is free when nobody holds it,
/// when its holder's flow is gone, or when that flow ended (or closed and went quiet for
/// `nat_reuse_ns`, or never proved real within `opening_ns`). If every port tried is held,
/// the oldest holder among them that never finished its handshake gives its port up: a flood
/// of half-open flows cannot starve real ones. A holder that loses its port is forgotten, so
/// its late packets cannot reach the new flow's backend connection.
#[inline(always)]
pub fn allocate_port(
    key: &FlowKey,
    backend: &[u32; 4],
    target: &NatTarget,
    keys: &mut Keys,
    s: &LbSettings,
    now: u64,
) -> Option<u16> {
    let cursor = NAT_CURSOR.get_ptr_mut(0)?;
    if s.nat_port_count == 0 {
        return None;
    }
    keys.oldest_port = 0;
    for _ in 0..PROBES {
        // SAFETY: the cursor slot is a valid, aligned u64 in the map; every user adds atomically.
        let n = unsafe { atomic::fetch_add(cursor, 1) };
        let port = (u64::from(s.nat_port_min) + n % u64::from(s.nat_port_count)) as u16;
        keys.binding = NatKey::new(*backend, key.dport, port, key.protocol, key.family);
        if NAT.insert(&keys.binding, target, BPF_NOEXIST).is_ok() {
            return Some(port);
        }
        let Some(holder) = binding(&keys.binding) else { continue };
        keys.holder = holder.client_flow(key.protocol, key.family);
        let held = conntrack::get(&keys.holder).filter(|f| f.nat_port == port);
        if held.is_none_or(|f| nat_port_free(f, now, key.protocol, s)) && take(keys, target, held, now) {
            return Some(port);
        }
        if let Some(f) = held.filter(|f| f.flags & (FLOW_OPENING | FLOW_HANDSHAKE) != 0) {
            if keys.oldest_port == 0 || f.last_seen_ns < keys.oldest_seen {
                keys.oldest_port = port;
                keys.oldest_seen = f.last_seen_ns;
            }
        }
    }
    let port = keys.oldest_port;
    if port == 0 {
        return None;
    }
    keys.binding = NatKey::new(*backend, key.dport, port, key.protocol, key.family);
    let holder = binding(&keys.binding)?;
    keys.holder = holder.client_flow(key.protocol, key.family);
    let held = conntrack::get(&keys.holder).filter(|f| f.nat_port == port);
    take(keys, target, held, now).then_some(port)
}

/// Binds `keys.binding` to `target` over its holder, whose flow (`held`, keyed `keys.holder`)
/// is forgotten.
#[inline(always)]
fn take(keys: &Keys, target: &NatTarget, held: Option<&Flow>, now: u64) -> bool {
    if NAT.insert(&keys.binding, target, BPF_ANY).is_err() {
        return false;
    }
    if let Some(f) = held {
        conntrack::forget(&keys.holder, f, now);
    }
    true
}

/// Gives the binding `t` that reply `p` was translated by its flow's new flags (the low half;
/// the rest stay) and translation (a settled handshake, a first reply): replies follow what the
/// flow is now.
#[inline(always)]
pub fn restamp(p: &Parsed, family: u8, t: &NatTarget, flags: u16, proxied: &Proxied) {
    let flags = (t.flags & !0xffff) | u32::from(flags);
    let value = if t.flags & BINDING_DNAT != 0 {
        DNAT.get_ptr_mut(&FlowKey::of(p, family))
    } else {
        NAT.get_ptr_mut(&NatKey::new(p.src, p.src_port, p.dst_port, p.protocol, family))
    };
    if let Some(v) = value {
        // SAFETY: a pointer into the map value for this run; one writer per binding at a time.
        unsafe {
            (*v).flags = flags;
            (*v).proxied = *proxied;
        }
    }
}

/// Rebinds NAT port `port` towards `backend`, which the flow `key` keeps from its closing
/// predecessor, to `target`.
#[inline(always)]
pub fn rebind(key: &FlowKey, backend: &[u32; 4], port: u16, target: &NatTarget) -> bool {
    let binding = NatKey::new(*backend, key.dport, port, key.protocol, key.family);
    NAT.insert(&binding, target, BPF_ANY).is_ok()
}

/// Whether the NAT port of `old`, the closing flow of tuple `key`, still belongs to that
/// tuple towards `backend` (no other flow has taken it since), so a new flow on the same
/// tuple can have it back.
#[inline(always)]
pub fn still_holds_port(key: &FlowKey, old: &Flow, backend: &[u32; 4]) -> bool {
    let binding_key = NatKey::new(*backend, key.dport, old.nat_port, key.protocol, key.family);
    match binding(&binding_key) {
        Some(t) => t.client == key.src && t.client_port == key.sport && t.vip == key.dst,
        None => false,
    }
}
