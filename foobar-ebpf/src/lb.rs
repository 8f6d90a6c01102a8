//! The L4 load balancer: services, scheduling of new flows, connection tracking, and the
//! two forwarding modes (NAT with replies translated back, and DSR).

use aya_ebpf::{
    bindings::xdp_action,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use foobar_common::{
    addr::{FAMILY_V4, FAMILY_V6},
    counters::{Counter, FastKind},
    lb::{
        BACKEND_ABSENT, BACKEND_UP, Backend, CONNTRACK_ENTRIES, FLOW_CLOSING, Flow, FlowKey, LbSettings, MAX_BACKENDS,
        MAX_SERVICES, MODE_DSR, NatKey, NatTarget, NextHop, PICK_HASH, RING_SIZE, ServiceInfo, ServiceKey,
        TrafficStats, VIP_FILTER_SLOTS, flow_expired, flow_hash, vip_slot,
    },
    parse::{
        Fragment, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3, Parsed, TCP_ACK, TCP_FIN, TCP_RST,
        TCP_SYN, parse_plain_v4, parse_quoted,
    },
};

use crate::{
    atomic,
    clock::now_ns,
    flow_cache,
    forward::{hop_back, lookup_hop, redirect_to, send},
    nat::{NAT, Rewrite, allocate_port, rewrite, still_holds_port, unnat_icmp},
    packet::Frame,
    refuse::refuse,
    scratch::scratch,
    stats::{count, count_fast},
};

#[map(name = "LB_SERVICES")]
static SERVICES: HashMap<ServiceKey, ServiceInfo> = HashMap::with_max_entries(MAX_SERVICES * 8, 0);
/// Every service's two ring halves, back to back: backend ids.
#[map(name = "LB_RINGS")]
static RINGS: Array<u32> = Array::with_max_entries(MAX_SERVICES * 2 * RING_SIZE, 0);
/// Per-service round-robin cursor, advanced with an atomic add.
#[map(name = "LB_CURSORS")]
static CURSORS: Array<u64> = Array::with_max_entries(MAX_SERVICES, 0);
#[map(name = "LB_BACKENDS")]
static BACKENDS: Array<Backend> = Array::with_max_entries(MAX_BACKENDS, 0);
#[map(name = "LB_CONNTRACK")]
pub static CONNTRACK: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(CONNTRACK_ENTRIES, 0);
#[map(name = "LB_SETTINGS")]
static SETTINGS: Array<LbSettings> = Array::with_max_entries(1, 0);
#[map(name = "LB_SERVICE_STATS")]
static SERVICE_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);
#[map(name = "LB_BACKEND_STATS")]
static BACKEND_STATS: PerCpuArray<TrafficStats> = PerCpuArray::with_max_entries(MAX_BACKENDS, 0);
/// Nonzero at the slot of every VIP (see `vip_slot`).
#[map(name = "LB_VIP_FILTER")]
static VIP_FILTER: Array<u32> = Array::with_max_entries(VIP_FILTER_SLOTS, 0);

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// Balances `p` if it belongs to a service or is a NAT reply; `None` leaves it to the kernel.
#[inline(never)]
pub fn balance(frame: &Frame, p: &Parsed) -> Option<u32> {
    let family = family_of(p)?;
    if (p.protocol == IPPROTO_ICMP || p.protocol == IPPROTO_ICMPV6) && p.vlans == 0 {
        return icmp_error(frame, p, family);
    }
    if (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later {
        return None;
    }
    // The VIP filter (one inlined array read) settles most destinations that are no VIP, such
    // as the node's own DNS, without the service table's lookup.
    if maybe_vip(&p.dst) {
        let key = ServiceKey { addr: p.dst, port: p.dst_port, protocol: p.protocol, family };
        // SAFETY: map lookups return pointers valid for this program run; values are copied out.
        if let Some(svc) = unsafe { SERVICES.get(&key) } {
            if p.vlans != 0 {
                count(Counter::LbTagged);
                return None;
            }
            return Some(to_backend(frame, p, svc, family));
        }
    }
    if p.vlans != 0 {
        return None;
    }
    from_backend(frame, p, family)
}

/// Traffic a backend sends: a DSR answer or a NAT reply; `None` for anything else.
///
/// Kept apart from `balance` so its keys do not sit on the new-flow call chain's stack.
#[inline(never)]
fn from_backend(frame: &Frame, p: &Parsed, family: u8) -> Option<u32> {
    // A DSR backend answers from the VIP. Where this node is also the backends' router, the
    // answer passes here: send it straight on to the client instead of through the stack
    // (which would refuse a forwarded packet whose source is one of its own addresses).
    if maybe_vip(&p.src) {
        let from_service = ServiceKey { addr: p.src, port: p.src_port, protocol: p.protocol, family };
        // SAFETY: as above.
        if let Some(svc) = unsafe { SERVICES.get(&from_service) } {
            if svc.mode == MODE_DSR {
                return Some(redirect_to(frame, p, &p.src, &p.dst));
            }
            return None;
        }
    }
    let target = nat_target(p, family)?;
    Some(reply(frame, p, target, family))
}

/// The settings userspace wrote when it loaded the data plane (references, not copies,
/// throughout: BPF's 512-byte stack is shared by the whole call chain).
#[inline(always)]
fn settings() -> Option<&'static LbSettings> {
    SETTINGS.get(0)
}

/// Forwards a packet of a flow already tracked, found by its tuple alone: the untrusted
/// program tries this before its allow rules, so an established flow costs one conntrack
/// lookup instead of a rule lookup, a service lookup and the conntrack lookup (the rules
/// admitted the flow's first packet). `None` for anything else, which takes the full path:
/// SYNs (a new flow on a reused tuple must meet the rules and the SYN limit), fragments,
/// tagged frames, other protocols, destinations that are no VIP, and flows untracked or
/// expired. A withdrawn service's flows are deleted by the daemon, so they cannot outlive it.
#[inline(always)]
pub fn established(frame: &Frame, p: &Parsed) -> Option<u32> {
    // The cheap tests come first, inline; `tracked` is a function of its own so that its frame
    // (the key, the forwarding) is on the stack only for packets that get that far.
    if !continues_a_flow(p) || !maybe_vip(&p.dst) {
        return None;
    }
    tracked(frame, p)
}

/// The load balancer's part of the fast path (see `fastpath`): a plain IPv4 frame of an
/// established flow or, on trusted interfaces, a backend's NAT reply. `None`, with nothing
/// counted, leaves the frame to the full path. The rewrite is inlined.
#[inline(always)]
pub fn plain(frame: &Frame, firewall: bool) -> Option<u32> {
    let p = parse_plain_v4(frame)?;
    if maybe_vip(&p.dst) {
        if !continues_a_flow(&p) {
            return None;
        }
        let key = flow_key(&p, FAMILY_V4);
        let now = now_ns();
        // A FIN or RST must reach the table (it marks the flow closing), so it skips the copy.
        let closing = p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
        let flow = match flow_cache::get(&key, now).filter(|_| !closing) {
            Some(copy) => {
                count(Counter::LbFlowCacheHit);
                copy
            }
            None => {
                let epoch = flow_cache::epoch();
                let (flow, s) = live_flow(&key, now)?;
                renew(&key, flow, now);
                if !closing {
                    flow_cache::put(&key, flow, now, epoch, s);
                }
                flow
            }
        };
        count_fast(FastKind::of(p.protocol == IPPROTO_TCP, firewall));
        return Some(forward::<true>(frame, &p, &key, flow, FAMILY_V4));
    }
    // A reply, unless it may be a DSR backend's answer (from a VIP), which `from_backend`
    // tells apart first. Behind the firewall replies meet the rules (`firewall::admits`).
    if firewall || maybe_vip(&p.src) {
        return None;
    }
    let target = nat_target(&p, FAMILY_V4)?;
    count_fast(FastKind::reply(p.protocol == IPPROTO_TCP));
    Some(reply_inline::<true>(frame, &p, target, FAMILY_V4))
}

/// Whether `addr`'s VIP-filter slot is set; false proves `addr` is no VIP.
#[inline(always)]
fn maybe_vip(addr: &[u32; 4]) -> bool {
    VIP_FILTER.get(vip_slot(addr)).is_some_and(|&v| v != 0)
}

/// Whether `p` could belong to a tracked flow by its kind alone: TCP other than a SYN, or UDP;
/// not a later fragment, untagged. (A SYN starts a flow, even on a tuple still tracked.)
#[inline(always)]
fn continues_a_flow(p: &Parsed) -> bool {
    let tcp = p.protocol == IPPROTO_TCP;
    if (!tcp && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later || p.vlans != 0 {
        return false;
    }
    !(tcp && p.tcp_flags & TCP_SYN != 0)
}

/// The rest of [`established`]: the connection-table lookup and the forwarding.
#[inline(never)]
fn tracked(frame: &Frame, p: &Parsed) -> Option<u32> {
    let family = family_of(p)?;
    let key = flow_key(p, family);
    let now = now_ns();
    let (flow, _) = live_flow(&key, now)?;
    seen(&key, flow, now);
    Some(forward::<false>(frame, p, &key, flow, family))
}

/// `key`'s flow in the table if it is tracked and has not expired at `now`, with the settings
/// that judged it.
#[inline(always)]
fn live_flow(key: &FlowKey, now: u64) -> Option<(&'static Flow, &'static LbSettings)> {
    // SAFETY: map lookups return pointers valid for this program run.
    let flow = unsafe { CONNTRACK.get(key) }?;
    let s = settings()?;
    if flow_expired(flow, now, key.protocol, s) {
        return None;
    }
    Some((flow, s))
}

#[inline(never)]
fn to_backend(frame: &Frame, p: &Parsed, svc: &ServiceInfo, family: u8) -> u32 {
    let Some(s) = settings() else { return xdp_action::XDP_DROP };
    let now = now_ns();
    let key = flow_key(p, family);
    let tcp = p.protocol == IPPROTO_TCP;
    let syn = tcp && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    // SAFETY: map lookups return pointers valid for this program run.
    let existing = unsafe { CONNTRACK.get(&key) };
    let live = match existing {
        // A new SYN on a closing entry is the client reusing its port: a new flow.
        Some(f) => !flow_expired(f, now, p.protocol, s) && !(syn && f.flags & FLOW_CLOSING != 0),
        None => false,
    };
    let flow: &Flow = if live {
        let Some(f) = existing else { return xdp_action::XDP_DROP };
        seen(&key, f, now);
        f
    } else if svc.ring_len == 0 {
        // No backend to give a new flow to: TCP clients get a reset at once.
        count(Counter::LbNoBackend);
        return if tcp { refuse(frame, p) } else { xdp_action::XDP_DROP };
    } else {
        let Some(sc) = scratch() else { return xdp_action::XDP_DROP };
        // Replies go back the way the client's first frame came in.
        let Some(back) = hop_back(frame) else { return xdp_action::XDP_DROP };
        sc.target.hop = back;
        if !schedule(p, &key, svc, existing) {
            return xdp_action::XDP_DROP;
        }
        &sc.flow
    };
    forward::<false>(frame, p, &key, flow, family)
}

/// The connection-tracking key of `p`'s flow, as the client sent it.
#[inline(always)]
fn flow_key(p: &Parsed, family: u8) -> FlowKey {
    FlowKey { src: p.src, dst: p.dst, sport: p.src_port, dport: p.dst_port, protocol: p.protocol, family, _pad: [0; 2] }
}

/// Counts a packet of a live flow and renews the flow's timestamp, at most once a second:
/// a store per packet would bounce the entry between CPUs for a clock nobody reads that finely.
#[inline(always)]
fn seen(key: &FlowKey, flow: &Flow, now: u64) {
    count(Counter::LbEstablished);
    renew(key, flow, now);
}

/// How stale a flow's timestamp may get before a packet renews it.
pub const RENEW_NS: u64 = 1_000_000_000;

/// The timestamp half of [`seen`], for the fast path (which counts its packets its own way).
#[inline(always)]
fn renew(key: &FlowKey, flow: &Flow, now: u64) {
    if now.saturating_sub(flow.last_seen_ns) > RENEW_NS {
        refresh(key, now);
    }
}

/// Sends a packet of `flow` on to its backend: notes a FIN or RST, counts the packet for the
/// flow's service and backend, rewrites it in NAT mode, and redirects it to the flow's next
/// hop (asked of the FIB by the flow's first packet, then remembered in the flow).
/// `INLINE_REWRITE` inlines the NAT rewrite (the fast path's choice; the full path calls it,
/// keeping its own frames small: BPF's 512-byte stack is shared by the whole call chain).
#[inline(always)]
fn forward<const INLINE_REWRITE: bool>(frame: &Frame, p: &Parsed, key: &FlowKey, flow: &Flow, family: u8) -> u32 {
    if p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        mark_closing(key);
    }
    let Some(backend) = BACKENDS.get(flow.backend) else {
        return xdp_action::XDP_DROP;
    };
    if backend.state == BACKEND_ABSENT {
        count(Counter::LbNoBackend);
        return xdp_action::XDP_DROP;
    }
    account(flow.service, flow.backend, frame, false);
    let hop = if flow.hop.ifindex != 0 {
        flow.hop
    } else {
        let src = if flow.mode == MODE_DSR { &p.src } else { &backend.snat };
        let Some(hop) = lookup_hop(frame, p, src, &backend.addr) else { return xdp_action::XDP_DROP };
        if let Some(f) = CONNTRACK.get_ptr_mut(key) {
            // SAFETY: pointer into the map value. A plain store: CPUs racing on one new flow
            // store the same next hop.
            unsafe { (*f).hop = hop };
        }
        hop
    };
    if flow.mode != MODE_DSR {
        let r = Rewrite { src: backend.snat, dst: backend.addr, sport: flow.nat_port, dport: p.dst_port };
        if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
            return xdp_action::XDP_DROP;
        }
    }
    send(frame, &hop)
}

/// Picks a backend for a new flow and records the flow (and its NAT port, in NAT mode).
/// The flow ends up in the per-CPU scratch (`flow`); `sc.target.hop` must hold the way back.
/// `previous` is the tuple's tracked flow (closing or expired) that the new one replaces.
#[inline(never)]
fn schedule(p: &Parsed, key: &FlowKey, svc: &ServiceInfo, previous: Option<&Flow>) -> bool {
    schedule_inner(p, key, svc, previous).is_some()
}

#[inline(always)]
fn schedule_inner(p: &Parsed, key: &FlowKey, svc: &ServiceInfo, previous: Option<&Flow>) -> Option<()> {
    let s = settings()?;
    let now = now_ns();
    if svc.ring_len == 0 {
        count(Counter::LbNoBackend);
        return None;
    }
    if let Some(old) = previous.filter(|_| svc.mode != MODE_DSR) {
        if let Some(()) = resume(key, old, svc, now) {
            return Some(());
        }
    }
    let slot = if svc.pick == PICK_HASH {
        u64::from(flow_hash(key)) % u64::from(svc.ring_len)
    } else {
        let cursor = CURSORS.get_ptr_mut(svc.id)?;
        // SAFETY: the cursor is an aligned u64 map value; every user adds atomically.
        let n = unsafe { atomic::fetch_add(cursor, 1) };
        n % u64::from(svc.ring_len)
    };
    let backend_id = *RINGS.get(svc.ring_offset + slot as u32)?;
    let backend = BACKENDS.get(backend_id)?;
    let sc = scratch()?;
    let nat_port = if svc.mode == MODE_DSR {
        0
    } else {
        sc.target = NatTarget {
            client: p.src,
            vip: p.dst,
            client_port: p.src_port,
            vip_port: p.dst_port,
            service: svc.id,
            backend: backend_id,
            _pad: 0,
            hop: sc.target.hop,
        };
        match allocate_port(key, backend, sc, s, now) {
            Some(port) => port,
            None => {
                count(Counter::LbNatPortsExhausted);
                return None;
            }
        }
    };
    sc.flow = Flow {
        backend: backend_id,
        service: svc.id,
        nat_port,
        flags: 0,
        mode: svc.mode,
        last_seen_ns: now,
        hop: NextHop::default(),
    };
    let flags = if previous.is_some() { BPF_ANY } else { BPF_NOEXIST };
    // Read before the insert frees the old entry for reuse.
    let previous_seen = previous.map(|old| old.last_seen_ns);
    if CONNTRACK.insert(key, &sc.flow, flags).is_err() {
        // Another CPU recorded this flow first: follow its choice, so both agree.
        // SAFETY: as above.
        sc.flow = *unsafe { CONNTRACK.get(key) }?;
        return Some(());
    }
    // No copy of the tuple's last flow may outlive it, here or on another CPU.
    flow_cache::forget(key);
    if let Some(seen) = previous_seen {
        flow_cache::retire(seen, now);
    }
    count_new_flow(svc.id, backend_id);
    Some(())
}

/// Counts a new flow for the service and its backend.
#[inline(always)]
fn count_new_flow(service: u32, backend: u32) {
    count(Counter::LbNewFlow);
    if let Some(st) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe { (*st).new_flows += 1 };
    }
    if let Some(st) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: as above.
        unsafe { (*st).new_flows += 1 };
    }
}

/// A client reusing its port while its last flow there is closing gets that flow's backend and
/// NAT port back, while the backend still takes new flows and nobody took the port since.
///
/// The backend may hold the old connection in TIME_WAIT for a minute, and lets a new SYN for
/// it through only when it is later in sequence than the old one: true for the same client
/// four-tuple (initial sequence numbers grow with time per tuple), a coin toss for another
/// client's SYN given the same NAT port (refused ones cost the client a one-second SYN
/// retransmit). So a reused client tuple keeps its backend tuple, as it would without NAT.
#[inline(always)]
fn resume(key: &FlowKey, old: &Flow, svc: &ServiceInfo, now: u64) -> Option<()> {
    let backend = BACKENDS.get(old.backend)?;
    if old.service != svc.id || backend.state != BACKEND_UP || !still_holds_port(key, old, backend) {
        return None;
    }
    let sc = scratch()?;
    sc.flow = Flow {
        backend: old.backend,
        service: svc.id,
        nat_port: old.nat_port,
        flags: 0,
        mode: svc.mode,
        last_seen_ns: now,
        hop: NextHop::default(),
    };
    CONNTRACK.insert(key, &sc.flow, BPF_ANY).ok()?;
    // Other CPUs' copies of the closed flow name this backend and port too: still right.
    flow_cache::forget(key);
    count_new_flow(svc.id, old.backend);
    Some(())
}

/// An ICMP error about a packet foobar sent to a client on a balanced flow (fragmentation
/// needed, say): it goes to the backend that owns the flow, which is the one that must react.
///
/// In DSR mode the backend sent that packet itself, from the VIP, so the error goes unchanged.
/// In NAT mode the backend sent it to the node's NAT address, so the quoted packet is turned
/// back into what the backend sent, and the error is addressed to the backend.
#[inline(never)]
fn icmp_error(frame: &Frame, p: &Parsed, family: u8) -> Option<u32> {
    let q = parse_quoted(frame, p)?;
    // The quoted packet went from the VIP to the client: its flow is the reverse.
    let key =
        FlowKey { src: q.dst, dst: q.src, sport: q.dport, dport: q.sport, protocol: q.protocol, family, _pad: [0; 2] };
    // SAFETY: map lookups return pointers valid for this program run.
    let flow = unsafe { CONNTRACK.get(&key) }?;
    let svc_key = ServiceKey { addr: q.src, port: q.sport, protocol: q.protocol, family };
    // SAFETY: as above.
    let svc = unsafe { SERVICES.get(&svc_key) }?;
    let backend = BACKENDS.get(flow.backend)?;
    count(Counter::LbIcmpToBackend);
    if svc.mode != MODE_DSR && !unnat_icmp(frame, p, &q, backend, flow.nat_port) {
        return Some(xdp_action::XDP_DROP);
    }
    if flow.hop.ifindex != 0 {
        return Some(send(frame, &flow.hop));
    }
    Some(redirect_to(frame, p, &p.src, &backend.addr))
}

/// The NAT flow `p` replies to, if it is a backend's reply: from a backend, to the node's NAT
/// address and a port NAT handed out. Anything else that happens to match the key (the node's
/// own connections use ports outside the NAT range) is not a reply.
#[inline(always)]
fn nat_target(p: &Parsed, family: u8) -> Option<&'static NatTarget> {
    let nat = NatKey {
        backend: p.src,
        backend_port: p.src_port,
        nat_port: p.dst_port,
        protocol: p.protocol,
        family,
        _pad: [0; 2],
    };
    // SAFETY: map lookups return pointers valid for this program run.
    let target = unsafe { NAT.get(&nat) }?;
    let backend = BACKENDS.get(target.backend)?;
    (backend.snat == p.dst).then_some(target)
}

/// The address family tag of an IP packet.
#[inline(always)]
fn family_of(p: &Parsed) -> Option<u8> {
    match p.l3 {
        L3::Ipv4 => Some(FAMILY_V4),
        L3::Ipv6 => Some(FAMILY_V6),
        _ => None,
    }
}

/// Whether `p` is a backend's reply to a NAT flow (the firewall lets these through).
#[inline(never)]
pub fn is_nat_reply(p: &Parsed) -> bool {
    let Some(family) = family_of(p) else { return false };
    if (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later {
        return false;
    }
    nat_target(p, family).is_some()
}

/// A backend's reply in NAT mode: translated back to come from the VIP, to the client.
#[inline(never)]
fn reply(frame: &Frame, p: &Parsed, t: &NatTarget, family: u8) -> u32 {
    count(Counter::LbNatReply);
    reply_inline::<false>(frame, p, t, family)
}

/// [`reply`] without its counter (the fast path counts its own way), inlined into its caller;
/// `INLINE_REWRITE` as in [`forward`].
#[inline(always)]
fn reply_inline<const INLINE_REWRITE: bool>(frame: &Frame, p: &Parsed, t: &NatTarget, family: u8) -> u32 {
    if p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        let key = FlowKey {
            src: t.client,
            dst: t.vip,
            sport: t.client_port,
            dport: t.vip_port,
            protocol: p.protocol,
            family,
            _pad: [0; 2],
        };
        mark_closing(&key);
    }
    account(t.service, t.backend, frame, true);
    let r = Rewrite { src: t.vip, dst: t.client, sport: t.vip_port, dport: t.client_port };
    if !rewrite::<INLINE_REWRITE>(frame, p, family, &r) {
        return xdp_action::XDP_DROP;
    }
    if t.hop.ifindex != 0 {
        return send(frame, &t.hop);
    }
    redirect_to(frame, p, &r.src, &r.dst)
}

/// Sets a flow's timestamp. A plain store of a time, not a read-modify-write: racing CPUs
/// write nearly the same value and any of them is right.
#[inline(always)]
fn refresh(key: &FlowKey, now: u64) {
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: pointer into the map value, valid for this run.
        unsafe { (*f).last_seen_ns = now };
    }
}

/// Marks a flow closing (an idempotent store of the only flag there is), and empties this
/// CPU's copy of it: closing flows are timed by the table alone.
#[inline(always)]
fn mark_closing(key: &FlowKey) {
    flow_cache::forget(key);
    if let Some(f) = CONNTRACK.get_ptr_mut(key) {
        // SAFETY: as in `refresh`.
        unsafe {
            if (*f).flags & FLOW_CLOSING == 0 {
                count(Counter::LbFlowClosing);
            }
            (*f).flags |= FLOW_CLOSING;
            (*f).last_seen_ns = now_ns();
        }
    }
}

/// Adds the frame to its service's and backend's per-CPU traffic counters.
#[inline(always)]
fn account(service: u32, backend: u32, frame: &Frame, _reply: bool) {
    use foobar_common::bytes::PacketBytes;
    let bytes = frame.frame_len() as u64;
    if let Some(st) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: this CPU's slot; no other writer.
        unsafe {
            (*st).packets += 1;
            (*st).bytes += bytes;
        }
    }
    if let Some(st) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: as above.
        unsafe {
            (*st).packets += 1;
            (*st).bytes += bytes;
        }
    }
}
