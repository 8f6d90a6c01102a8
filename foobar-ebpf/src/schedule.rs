//! New flows: which backend a service's new flow goes to (its ring, by round-robin turn or by
//! flow hash), its NAT port, and recording it in the connection table.

use foobar_common::{
    counters::Counter,
    lb::{
        BACKEND_UP, BINDING_DNAT, Backend, Flow, FlowKey, MODE_DNAT, MODE_DSR, MODE_NAT, NatTarget, NextHop,
        PICK_CURSOR, ServiceInfo, pick_hash,
    },
    parse::Parsed,
};

use crate::{
    clock::now_ns,
    conntrack, forward, hop_cache, nat,
    scratch::NewFlow,
    services,
    stats::{count, count_new_flow},
};

/// Picks a backend for `p`'s new flow and records the flow (and its NAT port and binding, in
/// NAT and DNAT mode) into `nf.flow`; false (counted) when it cannot. `previous` is the tuple's tracked flow
/// (closing or expired) that the new one replaces.
#[inline(never)]
pub fn schedule(p: &Parsed, key: &FlowKey, svc: &ServiceInfo, previous: Option<&Flow>, nf: &mut NewFlow) -> bool {
    schedule_inner(p, key, svc, previous, nf).is_some()
}

#[inline(always)]
fn schedule_inner(
    p: &Parsed,
    key: &FlowKey,
    svc: &ServiceInfo,
    previous: Option<&Flow>,
    nf: &mut NewFlow,
) -> Option<()> {
    let s = conntrack::settings()?;
    let now = now_ns();
    if svc.ring_len == 0 {
        count(Counter::LbNoBackend);
        return None;
    }
    // (A DNAT flow needs no resuming: its backend sees the client's own tuple, which its
    // stack lets a new SYN reuse however it was closed.)
    if let Some(old) = previous.filter(|_| svc.mode == MODE_NAT) {
        if let Some(()) = resume(p, key, old, svc, now, nf) {
            return Some(());
        }
    }
    let turn = if svc.pick == PICK_CURSOR { services::next_turn(svc)? } else { u64::from(pick_hash(svc.pick, key)) };
    let backend_id = services::ring_member(svc, (turn % u64::from(svc.ring_len)) as u32)?;
    let backend = services::backend(backend_id)?;
    let nat_port = match svc.mode {
        MODE_DSR => 0,
        MODE_DNAT => {
            set_target(p, svc, backend_id, nf);
            if !nat::bind_client(key, &backend.addr, &nf.target, &mut nf.nat, s, now) {
                count(Counter::LbDnatTupleTaken);
                return None;
            }
            key.sport
        }
        _ => {
            set_target(p, svc, backend_id, nf);
            match nat::allocate_port(key, &backend.addr, &nf.target, &mut nf.nat, s, now) {
                Some(port) => port,
                None => {
                    count(Counter::LbNatPortsExhausted);
                    return None;
                }
            }
        }
    };
    nf.flow = new_entry(backend_id, svc, nat_port, now, nf);
    nf.flow.hop = known_hop(key, backend_id, backend, svc, nf, now);
    // Read before the insert frees the old entry for reuse.
    let previous_seen = previous.map(|old| old.last_seen_ns);
    if !conntrack::begin(key, &nf.flow, previous_seen, now) {
        // Another CPU recorded this flow first: follow its choice, so both agree.
        nf.flow = *conntrack::get(key)?;
        return Some(());
    }
    count_new_flow(svc.id, backend_id);
    Some(())
}

/// The NAT binding the new flow's replies will be translated by, into `nf.target` (whose hop
/// back to the client is set already).
#[inline(always)]
fn set_target(p: &Parsed, svc: &ServiceInfo, backend: u32, nf: &mut NewFlow) {
    nf.target = NatTarget {
        client: p.src,
        vip: p.dst,
        client_port: p.src_port,
        vip_port: p.dst_port,
        service: svc.id,
        backend,
        flags: u32::from(nf.flags) | if svc.mode == MODE_DNAT { BINDING_DNAT } else { 0 },
        hop: nf.target.hop,
        proxied: nf.proxied,
    };
}

/// A flow entry as a new flow starts it, with the flags and translation `nf` asks for; its next
/// hop is found by its first packet.
#[inline(always)]
fn new_entry(backend: u32, svc: &ServiceInfo, nat_port: u16, now: u64, nf: &NewFlow) -> Flow {
    Flow {
        backend,
        service: svc.id,
        nat_port,
        flags: nf.flags,
        mode: svc.mode,
        last_seen_ns: now,
        hop: NextHop::default(),
        proxied: nf.proxied,
        client_seq: nf.client_seq,
        client_ack: nf.client_ack,
        nat_source: 0,
    }
}

/// The hop towards the new flow's backend that this CPU found within the last second, if any
/// (else its first packet asks the FIB): recorded with the flow, it spares that packet a route
/// lookup and the table's lookup to remember one.
#[inline(always)]
fn known_hop(key: &FlowKey, id: u32, backend: &Backend, svc: &ServiceInfo, nf: &NewFlow, now: u64) -> NextHop {
    let src = forward::source(svc.mode, backend, &key.src);
    hop_cache::known(id, &backend.addr, src, nf.target.hop.ifindex, now).unwrap_or_default()
}

/// A client reusing its port while its last flow there is closing gets that flow's backend and
/// NAT port back, while the backend still takes new flows and nobody took the port since.
///
/// The backend may hold the old connection in TIME_WAIT for a minute, and lets a new SYN for
/// it through only when it is later in sequence than the old one: true for the same client
/// four-tuple (initial sequence numbers grow with time per tuple), a coin toss for another
/// client's SYN given the same NAT port (refused ones cost the client a one-second SYN
/// retransmit). So a reused client tuple keeps its backend tuple, as it would without NAT.
///
/// The binding is written afresh too: the new flow's replies are translated by what it is
/// (a SYN-proxied flow's handshake and deltas), not by what the old one was.
#[inline(always)]
fn resume(p: &Parsed, key: &FlowKey, old: &Flow, svc: &ServiceInfo, now: u64, nf: &mut NewFlow) -> Option<()> {
    let backend = services::backend(old.backend)?;
    if old.service != svc.id || backend.state != BACKEND_UP || !nat::still_holds_port(key, old, &backend.addr) {
        return None;
    }
    set_target(p, svc, old.backend, nf);
    if !nat::rebind(key, &backend.addr, old.nat_port, &nf.target) {
        return None;
    }
    nf.flow = new_entry(old.backend, svc, old.nat_port, now, nf);
    nf.flow.hop = known_hop(key, old.backend, backend, svc, nf, now);
    if !conntrack::reopen(key, &nf.flow) {
        return None;
    }
    count_new_flow(svc.id, old.backend);
    Some(())
}
