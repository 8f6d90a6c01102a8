//! The fast path: what a front end's traffic is nearly all made of, handled in one BPF
//! function from the first byte to the redirect.
//!
//! That is a packet of an established flow in a plain frame: untagged IPv4 without options,
//! TCP or UDP, not a fragment; on trusted interfaces also a backend's NAT reply. It is parsed
//! at fixed offsets, looked up in this CPU's flow cache (`flow_cache`), else in the connection
//! table (or the NAT table), and forwarded, with the NAT rewrite inlined. Anything else, or
//! anything that turns out not to be a live tracked flow or reply, returns `None` having
//! counted nothing, and the entry program runs the full path as before.
//!
//! A function of its own, not inlined into the entry programs: the verifier would otherwise
//! walk the full path once more for each state the fast path can leave behind (over its
//! 1M-instruction budget when tried). Returning from here leaves only `r0` different, so the
//! full path is verified as if the fast path were not there.

use aya_ebpf::programs::XdpContext;
use foobar_common::{
    addr::FAMILY_V4,
    counters::{Counter, FastKind},
    lb::{FLOW_HANDSHAKE, FlowKey},
    parse::{IPPROTO_TCP, TCP_ACK, parse_plain_v4},
};

use crate::{
    clock::now_ns,
    conntrack, flow_cache, forward, lb,
    packet::Frame,
    services,
    stats::{count, count_fast},
};

/// A plain packet of an established flow or, on trusted interfaces, a backend's NAT reply,
/// forwarded; `None`, with nothing counted, leaves the frame to the full path. On untrusted
/// interfaces this runs after the deny check.
#[inline(never)]
pub fn run<const UNTRUSTED: bool>(ctx: &XdpContext) -> Option<u32> {
    let frame = Frame(ctx);
    let p = parse_plain_v4(&frame)?;
    if services::maybe_vip(&p.dst) {
        if !conntrack::may_continue(&p) {
            return None;
        }
        let key = FlowKey::of(&p, FAMILY_V4);
        let now = now_ns();
        // A FIN or RST must reach the table (it marks the flow closing), so it skips the copy.
        let closing = forward::ends_flow(&p);
        let flow = match flow_cache::get(&key, now).filter(|_| !closing) {
            Some(copy) => {
                count(Counter::LbFlowCacheHit);
                copy
            }
            None => {
                let epoch = flow_cache::epoch();
                let (flow, s) = conntrack::live(&key, now)?;
                // A proxied flow whose backend has not answered yet: the full path holds its
                // data, and its timestamp (when the proxy's SYN went) is left alone.
                if flow.flags & FLOW_HANDSHAKE != 0 {
                    return None;
                }
                conntrack::touch(&key, flow, now, || forward::seq_ack(&frame, &p));
                if !closing {
                    let opens = p.protocol == IPPROTO_TCP && p.tcp_flags & TCP_ACK != 0;
                    flow_cache::put(&key, flow, now, epoch, s, opens);
                }
                flow
            }
        };
        count_fast(FastKind::of(p.protocol == IPPROTO_TCP, UNTRUSTED));
        return Some(forward::to_backend::<true>(&frame, &p, &key, flow, FAMILY_V4));
    }
    // A reply, unless it may be a DSR backend's answer (from a VIP), which the full path tells
    // apart first. On untrusted interfaces replies meet the rules (`firewall::admits`).
    if UNTRUSTED || services::maybe_vip(&p.src) {
        return None;
    }
    let target = lb::nat_reply(&p, FAMILY_V4)?;
    if target.flags as u16 & FLOW_HANDSHAKE != 0 {
        return None;
    }
    count_fast(FastKind::reply(p.protocol == IPPROTO_TCP));
    Some(forward::to_client::<true>(&frame, &p, target, FAMILY_V4))
}
