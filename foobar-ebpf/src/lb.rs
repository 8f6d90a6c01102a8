//! The load balancer's full path: a parsed packet to a service (its tracked flow's backend, or
//! a new flow's), a backend's traffic back (NAT replies, DSR answers), and ICMP errors about
//! either. Plain packets of established flows usually take `fastpath` before they get here.

use aya_ebpf::bindings::xdp_action;
use foobar_common::{
    counters::Counter,
    lb::{
        BACKEND_DEAD, FLOW_CLOSING, FLOW_HANDSHAKE, FLOW_OPENING, FlowKey, MODE_DSR, NatKey, NatTarget, PICK_CURSOR,
        PROXY_ALWAYS, PROXY_OFF, PROXY_UNDER_FLOOD, ServiceInfo, ServiceKey, flow_expired, pick_hash,
    },
    parse::{Fragment, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Parsed, TCP_ACK, TCP_SYN},
};

use crate::{
    clock::now_ns,
    conntrack, flood, forward,
    handoff::{self, Step},
    icmp, nat,
    nexthop::{redirect_to, send, towards_backend_from_anyone},
    packet::Frame,
    refuse::refuse,
    schedule::schedule,
    scratch, services,
    stats::{count, count_timeout},
};

/// Balances `p` if it belongs to a service or is a NAT reply; `None` leaves it to the kernel.
#[inline(never)]
pub fn balance(frame: &Frame, p: &Parsed) -> Option<u32> {
    let family = p.family()?;
    if (p.protocol == IPPROTO_ICMP || p.protocol == IPPROTO_ICMPV6) && p.vlans == 0 {
        return icmp::to_backend(frame, p, family);
    }
    if (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later {
        return None;
    }
    // The VIP filter (one inlined array read) settles most destinations that are no VIP, such
    // as the node's own DNS, without the service table's lookup.
    if services::maybe_vip(&p.dst) {
        let key = ServiceKey { addr: p.dst, port: p.dst_port, protocol: p.protocol, family };
        if let Some(svc) = services::find(&key) {
            if p.vlans != 0 {
                count(Counter::LbTagged);
                return None;
            }
            return Some(to_service(frame, p, svc, family));
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
    if services::maybe_vip(&p.src) {
        let from_service = ServiceKey { addr: p.src, port: p.src_port, protocol: p.protocol, family };
        if let Some(svc) = services::find(&from_service) {
            if svc.mode == MODE_DSR {
                return Some(redirect_to(frame, p, &p.src, &p.dst));
            }
            return None;
        }
    }
    let target = nat_reply(p, family)?;
    if target.flags as u16 & FLOW_HANDSHAKE != 0 {
        return Some(handoff::defer(Step::BackendAnswer, p, family, |h| h.target = *target));
    }
    Some(forward::reply(frame, p, target, family))
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
    if !conntrack::may_continue(p) || !services::maybe_vip(&p.dst) {
        return None;
    }
    tracked(frame, p)
}

/// The rest of [`established`]: the connection-table lookup and the forwarding.
#[inline(never)]
fn tracked(frame: &Frame, p: &Parsed) -> Option<u32> {
    let family = p.family()?;
    let key = FlowKey::of(p, family);
    let now = now_ns();
    let (flow, _) = conntrack::live(&key, now)?;
    // A proxied flow whose backend has not answered yet: the full path holds its data.
    if flow.flags & FLOW_HANDSHAKE != 0 {
        return None;
    }
    count(Counter::LbEstablished);
    conntrack::touch(&key, flow, now, || forward::seq_ack(frame, p));
    Some(forward::to_backend::<false>(frame, p, &key, flow, family))
}

/// A packet to service `svc`: its flow's, if tracked and live, or a new flow's. Only a SYN (or
/// a UDP datagram) can begin a flow; of a proxied service, only an ACK of a valid cookie.
#[inline(never)]
fn to_service(frame: &Frame, p: &Parsed, svc: &ServiceInfo, family: u8) -> u32 {
    let Some(s) = conntrack::settings() else { return xdp_action::XDP_DROP };
    let now = now_ns();
    let key = FlowKey::of(p, family);
    let tcp = p.protocol == IPPROTO_TCP;
    let syn = tcp && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let existing = conntrack::get(&key);
    let live = match existing {
        // A new SYN on a closing entry is the client reusing its port: a new flow. So is a
        // SYN said again to a backend taken out meanwhile (`on_down = "reset"`): the client
        // is still connecting, so another backend can take it without the client knowing.
        Some(f) => {
            !flow_expired(f, now, p.protocol, s)
                && !(syn && f.flags & FLOW_CLOSING != 0)
                && !(syn
                    && f.flags & FLOW_OPENING != 0
                    && services::backend(f.backend).is_some_and(|b| b.state == BACKEND_DEAD))
        }
        None => false,
    };
    if live {
        let Some(f) = existing else { return xdp_action::XDP_DROP };
        if f.flags & FLOW_HANDSHAKE != 0 {
            return handoff::defer(Step::Hold, p, family, |_| {});
        }
        // The client says its SYN again: no SYN-ACK reached it, passive evidence against the
        // backend (the SYN proxy counts its own retries).
        if syn && f.flags & FLOW_OPENING != 0 {
            count_timeout(f.backend);
        }
        count(Counter::LbEstablished);
        conntrack::touch(&key, f, now, || forward::seq_ack(frame, p));
        return forward::to_backend::<false>(frame, p, &key, f, family);
    }
    if svc.ring_len == 0 {
        // No backend to give a new flow to: TCP clients get a reset at once.
        count(Counter::LbNoBackend);
        return if tcp { refuse(frame, p) } else { xdp_action::XDP_DROP };
    }
    let hashed = svc.mode == MODE_DSR && svc.pick != PICK_CURSOR;
    if tcp && !syn {
        // A segment of no flow: nothing is kept for it, unless it is a cookie's ACK.
        return if svc.mode != MODE_DSR && svc.syn_proxy != PROXY_OFF {
            handoff::defer(Step::CookieAck, p, family, |h| {
                h.service = *svc;
                h.previous = existing.copied();
            })
        } else if hashed {
            stateless(frame, p, svc, family)
        } else {
            count(Counter::LbStateRefused);
            xdp_action::XDP_DROP
        };
    }
    let flood = flood::new_flow(svc.id, now, s);
    if tcp && svc.mode != MODE_DSR && (svc.syn_proxy == PROXY_ALWAYS || (svc.syn_proxy == PROXY_UNDER_FLOOD && flood)) {
        // A SYN on a closing flow's tuple: the client reuses its port. The cookie keeps no
        // state, so the old flow must stop catching the tuple now, or the new connection's ACK
        // would be taken for a late segment of the old one.
        if existing.is_some() {
            conntrack::expire(&key, now);
        }
        return handoff::defer(Step::Syn, p, family, |_| {});
    }
    if hashed && flood && svc.syn_proxy != PROXY_OFF {
        return stateless(frame, p, svc, family);
    }
    // Replies go back the way the client's first frame came in.
    let Some(nf) = scratch::new_flow(frame) else { return xdp_action::XDP_DROP };
    // Not known to be real until the client's ACK (TCP) or the backend's reply (UDP, NAT).
    nf.flags = if tcp || svc.mode != MODE_DSR { FLOW_OPENING } else { 0 };
    nf.client_seq = forward::seq(frame, p).unwrap_or(0);
    if !schedule(p, &key, svc, existing, nf) {
        return xdp_action::XDP_DROP;
    }
    forward::to_backend::<false>(frame, p, &key, &nf.flow, family)
}

/// A packet of a DSR Maglev service sent to its flow hash's backend with no entry kept: every
/// node and every packet picks the same backend, so under a flood the table is left alone.
#[inline(never)]
fn stateless(frame: &Frame, p: &Parsed, svc: &ServiceInfo, family: u8) -> u32 {
    let key = FlowKey::of(p, family);
    // Said here, not only by the caller: without it the modulo's division-by-zero panic block
    // ended the function, and the object did not load.
    if svc.ring_len == 0 {
        return xdp_action::XDP_DROP;
    }
    let slot = pick_hash(svc.pick, &key) % svc.ring_len;
    let Some(id) = services::ring_member(svc, slot) else { return xdp_action::XDP_DROP };
    let Some(backend) = services::backend(id) else { return xdp_action::XDP_DROP };
    count(Counter::LbStateless);
    match towards_backend_from_anyone(frame, p, id, &backend.addr) {
        Some(hop) => send(frame, &hop),
        None => redirect_to(frame, p, &p.src, &backend.addr),
    }
}

/// The NAT binding `p` replies to, if it is a backend's reply: from a backend, to the node's
/// NAT address and a port NAT handed out, or to a DNAT flow's client. Anything else that
/// happens to match a NAT key (the node's own connections use ports outside the NAT range) is
/// not a reply.
#[inline(always)]
pub fn nat_reply(p: &Parsed, family: u8) -> Option<&'static NatTarget> {
    if let Some(target) = nat::binding(&NatKey::new(p.src, p.src_port, p.dst_port, p.protocol, family)) {
        if is_nat_address(target, &p.dst) {
            return Some(target);
        }
    }
    if !services::dnat_in_use() {
        return None;
    }
    dnat_reply(p, family)
}

/// Whether `dst` is the NAT address `target`'s replies come to: this node's towards its
/// backend, or that of the peer that synced it.
#[inline(always)]
fn is_nat_address(target: &NatTarget, dst: &[u32; 4]) -> bool {
    match target.peer() {
        0 => services::backend(target.backend).is_some_and(|b| b.snat == *dst),
        slot => nat::peer_address(slot).is_some_and(|a| a == dst),
    }
}

/// The DNAT binding `p` replies to. Out of line, so that its key is not on the fast path's stack.
#[inline(never)]
fn dnat_reply(p: &Parsed, family: u8) -> Option<&'static NatTarget> {
    nat::dnat_binding(&FlowKey::of(p, family))
}

/// Whether `p` is a backend's reply to a NAT flow (the firewall lets these through).
#[inline(never)]
pub fn is_nat_reply(p: &Parsed) -> bool {
    let Some(family) = p.family() else { return false };
    if (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP) || p.fragment == Fragment::Later {
        return false;
    }
    nat_reply(p, family).is_some()
}
