//! New flows: which backend a service's new flow goes to (its ring, by round-robin turn or by
//! flow hash), its NAT port, and recording it in the connection table.

use foobar_common::{
    counters::Counter,
    lb::{BACKEND_UP, Flow, FlowKey, MODE_DSR, NatTarget, NextHop, PICK_HASH, ServiceInfo, flow_hash},
    parse::Parsed,
};

use crate::{
    clock::now_ns,
    conntrack, nat,
    scratch::NewFlow,
    services,
    stats::{count, count_new_flow},
};

/// Picks a backend for `p`'s new flow and records the flow (and its NAT port, in NAT mode)
/// into `nf.flow`; false (counted) when it cannot. `previous` is the tuple's tracked flow
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
    if let Some(old) = previous.filter(|_| svc.mode != MODE_DSR) {
        if let Some(()) = resume(key, old, svc, now, nf) {
            return Some(());
        }
    }
    let turn = if svc.pick == PICK_HASH { u64::from(flow_hash(key)) } else { services::next_turn(svc)? };
    let backend_id = services::ring_member(svc, (turn % u64::from(svc.ring_len)) as u32)?;
    let backend = services::backend(backend_id)?;
    let nat_port = if svc.mode == MODE_DSR {
        0
    } else {
        nf.target = NatTarget {
            client: p.src,
            vip: p.dst,
            client_port: p.src_port,
            vip_port: p.dst_port,
            service: svc.id,
            backend: backend_id,
            _pad: 0,
            hop: nf.target.hop,
        };
        match nat::allocate_port(key, &backend.addr, &nf.target, &mut nf.nat, s, now) {
            Some(port) => port,
            None => {
                count(Counter::LbNatPortsExhausted);
                return None;
            }
        }
    };
    nf.flow = new_entry(backend_id, svc, nat_port, now);
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

/// A flow entry as a new flow starts it; its next hop is found by its first packet.
#[inline(always)]
fn new_entry(backend: u32, svc: &ServiceInfo, nat_port: u16, now: u64) -> Flow {
    Flow { backend, service: svc.id, nat_port, flags: 0, mode: svc.mode, last_seen_ns: now, hop: NextHop::default() }
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
fn resume(key: &FlowKey, old: &Flow, svc: &ServiceInfo, now: u64, nf: &mut NewFlow) -> Option<()> {
    let backend = services::backend(old.backend)?;
    if old.service != svc.id || backend.state != BACKEND_UP || !nat::still_holds_port(key, old, &backend.addr) {
        return None;
    }
    nf.flow = new_entry(old.backend, svc, old.nat_port, now);
    if !conntrack::reopen(key, &nf.flow) {
        return None;
    }
    count_new_flow(svc.id, old.backend);
    Some(())
}
