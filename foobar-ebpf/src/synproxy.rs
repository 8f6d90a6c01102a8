//! The SYN proxy: new TCP flows of a NAT service prove their source before anything is kept
//! for them. A SYN is answered from here with a SYN-ACK whose sequence number is a cookie
//! (`foobar_common::cookie`) and nothing is written. Only an ACK whose cookie checks out
//! begins a flow: its backend and NAT port are picked and the ACK becomes the proxy's SYN to
//! the backend. The backend's SYN-ACK is answered from here too, with the ACK that finishes
//! its side, carrying the data the client sent meanwhile (held, one segment per flow, until
//! then). From then on `seqadj` translates the flow's segments between the two handshakes.
//!
//! Options: the client's MSS rides in the cookie, its window scale and SACK in the low bits of
//! the timestamp the SYN-ACK sends (none without timestamps, as with the kernel's cookies);
//! the proxy offers the client window scale `cookie::PROXY_WSCALE` and rescales windows where the
//! backend's differs.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_csum_diff, bpf_ktime_get_ns, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use foobar_common::{
    addr::FAMILY_V4,
    cookie::{self, Handshake, MSS_V4, MSS_V6, PROXY_MSS_V4, PROXY_MSS_V6, PROXY_WSCALE},
    counters::Counter,
    lb::{BACKEND_DEAD, FLOW_HANDSHAKE, FLOW_PROXIED, Flow, FlowKey, NatTarget, NextHop, Proxied, ServiceInfo, near},
    parse::{L3, Parsed, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    tcpopt,
};

use crate::{
    clock::now_ns,
    conntrack, forward, nat,
    nexthop::{back_out, hop_back, out_of},
    packet::{Frame, copy_length},
    schedule::schedule,
    scratch,
    segment::{self, Segment},
    stats::{account, count, count_timeout},
    tcp,
};

/// Most bytes of early data held for one flow, and flows holding some at once.
pub const HELD_MAX: usize = 1500;
const HELD_FLOWS: u32 = 8192;
const TCP_PSH: u8 = 0x08;

/// The cookies' key, set by the daemon (pinned, so cookies sent before a restart still check).
#[map(name = "LB_SYN_KEY")]
static KEY: Array<[u64; 2]> = Array::with_max_entries(1, 0);

/// A client's data held until its backend answered: where it starts in the client's sequence
/// space, its length, its one's-complement sum, the bytes (zero-padded to four).
pub struct Held {
    seq: u32,
    len: u32,
    sum: u32,
    data: [u8; HELD_MAX + 4],
}

#[map(name = "LB_HELD")]
static HELD: LruHashMap<FlowKey, Held> = LruHashMap::with_max_entries(HELD_FLOWS, 0);
/// Where a segment's data is gathered before it is held (per CPU: too big for the stack).
#[map(name = "LB_HOLDING")]
static HOLDING: PerCpuArray<Held> = PerCpuArray::with_max_entries(1, 0);
#[map(name = "LB_SEGMENT")]
static SEGMENT: PerCpuArray<Segment> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn handshake<'a>(p: &'a Parsed, client_isn: u32) -> Handshake<'a> {
    Handshake { client: &p.src, vip: &p.dst, client_port: p.src_port, vip_port: p.dst_port, client_isn }
}

#[inline(always)]
fn segment_slot() -> Option<&'static mut Segment> {
    let ptr = SEGMENT.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot for the program run (XDP is not preempted on its CPU).
    Some(unsafe { &mut *ptr })
}

/// A SYN to a proxied service, belonging to no flow: answered with a cookie SYN-ACK out of
/// the interface it came in on. Nothing is kept.
#[inline(never)]
pub fn answer_syn(frame: &Frame, p: &Parsed, family: u8) -> u32 {
    let Some(t) = tcp::read(frame, p) else { return xdp_action::XDP_DROP };
    let Some(key) = KEY.get(0) else { return xdp_action::XDP_DROP };
    let Some(seg) = segment_slot() else { return xdp_action::XDP_DROP };
    let Some(back) = hop_back(frame) else { return xdp_action::XDP_DROP };
    if t.flags & (TCP_FIN | TCP_RST) != 0 {
        return xdp_action::XDP_DROP;
    }
    let Some(o) = tcp::options(frame, p.l4_offset, t.header_len) else { return xdp_action::XDP_DROP };
    let v4 = family == FAMILY_V4;
    let table = if v4 { &MSS_V4 } else { &MSS_V6 };
    // SAFETY: bpf_ktime_get_ns has no preconditions (cookies need the real clock, not a tick's).
    let now = unsafe { bpf_ktime_get_ns() };
    let mss_index = cookie::mss_index(table, o.mss.unwrap_or(table[0]));
    let isn = cookie::make(key, &handshake(p, t.seq), cookie::slot(now), mss_index);
    let ts = o.ts.map(|(value, _)| (cookie::timestamp((now / 1_000_000) as u32, o.wscale, o.sack_permitted), value));
    let wscale = if ts.is_some() { o.wscale.map(|_| PROXY_WSCALE) } else { None };
    let mss = if v4 { PROXY_MSS_V4 } else { PROXY_MSS_V6 };
    *seg = Segment {
        v4,
        smac: back.smac,
        dmac: back.dmac,
        src: p.dst,
        dst: p.src,
        sport: p.dst_port,
        dport: p.src_port,
        seq: isn,
        ack: t.seq.wrapping_add(1),
        flags: TCP_SYN | TCP_ACK,
        window: 0xffff,
        options: tcpopt::handshake(mss, ts, o.sack_permitted && ts.is_some(), wscale),
        payload_len: 0,
        payload_sum: 0,
    };
    if !segment::write(frame, seg) {
        return xdp_action::XDP_DROP;
    }
    count(Counter::LbSynCookieSent);
    back_out(frame)
}

/// A TCP segment to a proxied service that belongs to no flow: if it acknowledges a valid
/// cookie, the flow begins (backend, NAT port, in the table) and the segment becomes the
/// proxy's SYN to the backend (data it carries is held); anything else is dropped, nothing kept.
///
/// In three calls (cookie, flow, SYN), so that no two of their frames sit on the stack at once
/// beneath the scheduler's.
#[inline(never)]
pub fn cookie_ack(frame: &Frame, p: &Parsed, svc: &ServiceInfo, previous: Option<&Flow>) -> u32 {
    let Some(t) = tcp::read(frame, p) else { return xdp_action::XDP_DROP };
    if t.flags & TCP_RST != 0 || t.flags & TCP_ACK == 0 {
        count(Counter::LbStateRefused);
        return xdp_action::XDP_DROP;
    }
    let client_isn = t.seq.wrapping_sub(1);
    let Some(mss_index) = valid_cookie(p, client_isn, t.ack.wrapping_sub(1)) else {
        count(Counter::LbSynCookieInvalid);
        return xdp_action::XDP_DROP;
    };
    count(Counter::LbSynCookieValid);
    let Some(family) = p.family() else { return xdp_action::XDP_DROP };
    let Some(o) = tcp::options(frame, p.l4_offset, t.header_len) else { return xdp_action::XDP_DROP };
    let Some(wscale) = syn_options(o, family, mss_index) else { return xdp_action::XDP_DROP };
    let Some(nf) = scratch::new_flow(frame) else { return xdp_action::XDP_DROP };
    nf.flags = FLOW_PROXIED | FLOW_HANDSHAKE;
    nf.client_seq = client_isn;
    nf.client_ack = t.ack;
    // Until the backend answers: the cookie, the timestamp the SYN-ACK sent, and the
    // client's window scale plus one (0: none), which the backend's SYN-ACK turns into deltas.
    nf.proxied = Proxied {
        seq_delta: t.ack.wrapping_sub(1),
        ts_delta: o.ts.map_or(0, |(_, echo)| echo),
        client_window: t.window,
        to_client_shift: 0,
        to_backend_shift: wscale.map_or(0, |w| w + 1),
    };
    let key = FlowKey::of(p, family);
    if !schedule(p, &key, svc, previous, nf) {
        return xdp_action::XDP_DROP;
    }
    if t.payload > 0 {
        hold_data(frame, p, &key, &t);
    }
    syn_to_backend(frame, p, &key, &nf.flow)
}

/// Writes the options of the proxy's SYN to the backend into the segment slot: the MSS the
/// cookie carried (index `mss_index`), and what the client's timestamp echo says it offered
/// (`o`: a segment of the client's after its SYN). The client's window scale, if any.
#[inline(always)]
fn syn_options(o: &tcpopt::TcpOptions, family: u8, mss_index: u32) -> Option<Option<u8>> {
    let (wscale, sack) = o.ts.map_or((None, false), |(_, echo)| cookie::options_of(echo));
    let seg = segment_slot()?;
    let table = if family == FAMILY_V4 { &MSS_V4 } else { &MSS_V6 };
    seg.options = tcpopt::handshake(table[(mss_index & 3) as usize], o.ts.map(|(value, _)| (value, 0)), sack, wscale);
    Some(wscale)
}

/// The index of the MSS a cookie carries, if `isn` is the cookie this node would have sent
/// the client's SYN (sequence number `client_isn`) in this time slot or the one before.
#[inline(never)]
fn valid_cookie(p: &Parsed, client_isn: u32, isn: u32) -> Option<u32> {
    let secret = KEY.get(0)?;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    cookie::check(secret, &handshake(p, client_isn), isn, cookie::slot(now))
}

/// The proxy's SYN to the backend of `flow` (in its handshake), in place of the client's
/// segment `p` (the options are in the segment slot already).
#[inline(never)]
fn syn_to_backend(frame: &Frame, p: &Parsed, key: &FlowKey, flow: &Flow) -> u32 {
    let Some((backend, hop)) = forward::path(frame, p, key, flow) else { return xdp_action::XDP_DROP };
    let Some(seg) = segment_slot() else { return xdp_action::XDP_DROP };
    account(flow.service, flow.backend, frame);
    seg.v4 = p.l3 == L3::Ipv4;
    seg.smac = hop.smac;
    seg.dmac = hop.dmac;
    seg.src = *forward::source(flow.mode, backend, &p.src);
    seg.dst = backend.addr;
    seg.sport = flow.nat_port;
    seg.dport = p.dst_port;
    seg.seq = flow.client_seq;
    seg.ack = 0;
    seg.flags = TCP_SYN;
    seg.window = 0xffff;
    seg.payload_len = 0;
    seg.payload_sum = 0;
    if !segment::write(frame, seg) {
        return xdp_action::XDP_DROP;
    }
    out_of(hop.ifindex)
}

/// A client's segment while its backend's handshake is under way: its data is held (the
/// first segment's), anything else dropped; the client retransmits what is not held.
///
/// A client's retry (the backend has not answered within [`RESEND_NS`] of the proxy's last
/// SYN) has the proxy say its SYN again, as the client's own stack would have: the first may
/// have been lost, or refused by a backend still holding the NAT port's last connection.
#[inline(never)]
pub fn hold(frame: &Frame, p: &Parsed, family: u8) -> u32 {
    let key = FlowKey::of(p, family);
    let Some(t) = tcp::read(frame, p) else { return xdp_action::XDP_DROP };
    if t.flags & TCP_RST != 0 {
        // Only the client's own RST (near its sequence) ends the handshake; a blind guess at
        // the tuple is dropped, and the flow goes on.
        match conntrack::get(&key) {
            Some(flow) if near(t.seq, flow.client_seq) => conntrack::close(&key),
            Some(_) => count(Counter::LbEndOutOfWindow),
            None => {}
        }
        return xdp_action::XDP_DROP;
    }
    if t.payload > 0 {
        hold_data(frame, p, &key, &t);
    }
    let now = now_ns();
    let Some(flow) = conntrack::get(&key) else { return xdp_action::XDP_DROP };
    if flow.flags & FLOW_HANDSHAKE == 0 {
        // The backend answered on another CPU while this segment was on its way here, maybe
        // without seeing it held: it goes on as any segment of the flow (the backend ignores
        // a second copy).
        let _ = HELD.remove(&key);
        count(Counter::LbEstablished);
        conntrack::touch(&key, flow, now, || forward::seq_ack(frame, p));
        return forward::to_backend::<false>(frame, p, &key, flow, family);
    }
    if now.saturating_sub(flow.last_seen_ns) < RESEND_NS {
        return xdp_action::XDP_DROP;
    }
    // A backend taken out meanwhile (`on_down = "reset"`): the client starts again elsewhere
    // rather than waiting on a backend that is not answering.
    if crate::services::backend(flow.backend).is_some_and(|b| b.state == BACKEND_DEAD) {
        return forward::reset_dead(frame, p, &key);
    }
    let Some(o) = tcp::options(frame, p.l4_offset, t.header_len) else { return xdp_action::XDP_DROP };
    if syn_options(o, family, flow.proxied.seq_delta & 3).is_none() {
        return xdp_action::XDP_DROP;
    }
    conntrack::stamp(&key, now);
    count(Counter::LbSynResent);
    // The backend left the proxy's SYN unanswered while the client waited: passive evidence.
    count_timeout(flow.backend);
    syn_to_backend(frame, p, &key, flow)
}

/// How long the proxy waits for a backend's answer to its SYN before a client's retry has it
/// say the SYN again (about a client's first retransmission of data).
const RESEND_NS: u64 = 200_000_000;

/// Holds the data of segment `t` for flow `key`, unless it is held already or it is more
/// than a held segment takes. What is held from another sequence number is an earlier
/// connection's on the same tuple, never sent: it is replaced.
#[inline(always)]
fn hold_data(frame: &Frame, p: &Parsed, key: &FlowKey, t: &tcp::Tcp) {
    // SAFETY: map lookups return pointers valid for this program run.
    if unsafe { HELD.get(key) }.is_some_and(|h| h.seq == t.seq) || t.payload > HELD_MAX {
        return;
    }
    let Some(slot) = HOLDING.get_ptr_mut(0) else { return };
    let Some(len) = copy_length(t.payload, HELD_MAX) else { return };
    let off = (p.l4_offset + t.header_len) as u32;
    // SAFETY: this CPU's slot; the helper copies `len` packet bytes into its `data`, which
    // has room for HELD_MAX; bpf_csum_diff reads whole words of it, zero-padded to four.
    unsafe {
        let data = (*slot).data.as_mut_ptr();
        if bpf_xdp_load_bytes(frame.0.ctx.cast(), off, data.cast(), len) != 0 {
            return;
        }
        for i in 0..3 {
            let at = len as usize + i;
            if at < HELD_MAX + 4 {
                (*slot).data[at] = 0;
            }
        }
        let padded = (len + 3) & !3;
        let mut sum: i64 = 0;
        for i in 0..3u32 {
            let start = i * 512;
            if start < padded {
                let n = if padded - start > 512 { 512 } else { padded - start };
                sum = bpf_csum_diff(core::ptr::null_mut(), 0, data.add(start as usize).cast(), n, sum as u32);
                if sum < 0 {
                    return;
                }
            }
        }
        (*slot).seq = t.seq;
        (*slot).len = len;
        (*slot).sum = sum as u32;
        if HELD.insert(key, &*slot, 1).is_ok() {
            count(Counter::LbEarlyData);
        }
    }
}

/// The backend's answer to the proxy's SYN (a NAT reply to a flow in handshake): a SYN-ACK is
/// answered with the ACK that ends the handshake (carrying the data the client sent meanwhile)
/// and fixes the flow's translation; a RST is passed on to the client as its connection's reset.
#[inline(never)]
pub fn backend_answer(frame: &Frame, p: &Parsed, target: &NatTarget, family: u8) -> u32 {
    let Some(t) = tcp::read(frame, p) else { return xdp_action::XDP_DROP };
    let Some(seg) = segment_slot() else { return xdp_action::XDP_DROP };
    let Some(back) = hop_back(frame) else { return xdp_action::XDP_DROP };
    let client = target.client_flow(p.protocol, family);
    let x = &target.proxied;
    let v4 = family == FAMILY_V4;
    if t.flags & TCP_RST != 0 {
        conntrack::close(&client);
        *seg = Segment {
            v4,
            smac: target.hop.smac,
            dmac: target.hop.dmac,
            src: target.vip,
            dst: target.client,
            sport: target.vip_port,
            dport: target.client_port,
            seq: x.seq_delta.wrapping_add(1),
            ack: 0,
            flags: TCP_RST,
            window: 0,
            options: tcpopt::Block::default(),
            payload_len: 0,
            payload_sum: 0,
        };
        if !segment::write(frame, seg) {
            return xdp_action::XDP_DROP;
        }
        count(Counter::LbRefused);
        crate::stats::count_passive(target.backend, foobar_common::lb::Passive::Refused);
        return out_of(target.hop.ifindex);
    }
    if t.flags & (TCP_SYN | TCP_ACK) == TCP_ACK {
        return reset_time_wait(frame, p, &t, v4, &back);
    }
    if t.flags & (TCP_SYN | TCP_ACK) != TCP_SYN | TCP_ACK {
        return xdp_action::XDP_DROP;
    }
    let Some(o) = tcp::options(frame, p.l4_offset, t.header_len) else { return xdp_action::XDP_DROP };
    let (to_client_shift, to_backend_shift) = match (x.to_backend_shift.checked_sub(1), o.wscale) {
        (Some(_), Some(b)) => (b as i8 - PROXY_WSCALE as i8, 0),
        (Some(c), None) => (-(PROXY_WSCALE as i8), c),
        (None, _) => (0, 0),
    };
    let settled = Proxied {
        seq_delta: t.seq.wrapping_sub(x.seq_delta),
        ts_delta: match o.ts {
            Some((value, _)) if x.ts_delta != 0 => value.wrapping_sub(x.ts_delta),
            _ => 0,
        },
        client_window: x.client_window,
        to_client_shift,
        to_backend_shift,
    };
    conntrack::settle(&client, &settled);
    nat::restamp(p, family, target, FLOW_PROXIED, &settled);
    account(target.service, target.backend, frame);
    // SAFETY: map lookups return pointers valid for this program run.
    let held = unsafe { HELD.get(&client) }.filter(|h| h.seq == t.ack);
    let window = u32::from(x.client_window) << (to_backend_shift & 15);
    *seg = Segment {
        v4,
        smac: back.smac,
        dmac: back.dmac,
        src: p.dst,
        dst: p.src,
        sport: p.dst_port,
        dport: p.src_port,
        seq: t.ack,
        ack: t.seq.wrapping_add(1),
        flags: if held.is_some() { TCP_ACK | TCP_PSH } else { TCP_ACK },
        window: if window > 0xffff { 0xffff } else { window as u16 },
        options: tcpopt::established(o.ts.map(|(value, echo)| (echo, value))),
        payload_len: held.map_or(0, |h| h.len),
        payload_sum: held.map_or(0, |h| h.sum),
    };
    if !segment::write(frame, seg) {
        return xdp_action::XDP_DROP;
    }
    if let Some(h) = held {
        let Some(len) = copy_length(h.len as usize, HELD_MAX) else { return xdp_action::XDP_DROP };
        let at = segment::payload_offset(seg) as u32;
        // SAFETY: writes `len` bytes of the held data (a map value with room for them) into the
        // frame, which `segment::write` sized for them.
        if unsafe { bpf_xdp_store_bytes(frame.0.ctx.cast(), at, h.data.as_ptr() as *mut _, len) } != 0 {
            return xdp_action::XDP_DROP;
        }
        let _ = HELD.remove(&client);
    }
    count(Counter::LbProxiedHandshake);
    back_out(frame)
}

/// A backend's bare ACK to the proxy's SYN: its socket for this NAT port and backend port is
/// still in TIME_WAIT from an earlier connection, and it answers the SYN as part of that one.
/// Answered as a client's stack answers it (RFC 5961): a reset whose sequence number is that
/// ACK's, which ends the TIME_WAIT, so the proxy's next SYN opens the connection.
#[inline(always)]
fn reset_time_wait(frame: &Frame, p: &Parsed, t: &tcp::Tcp, v4: bool, back: &NextHop) -> u32 {
    let Some(seg) = segment_slot() else { return xdp_action::XDP_DROP };
    seg.v4 = v4;
    seg.smac = back.smac;
    seg.dmac = back.dmac;
    seg.src = p.dst;
    seg.dst = p.src;
    seg.sport = p.dst_port;
    seg.dport = p.src_port;
    seg.seq = t.ack;
    seg.ack = 0;
    seg.flags = TCP_RST;
    seg.window = 0;
    seg.options = tcpopt::Block::default();
    seg.payload_len = 0;
    seg.payload_sum = 0;
    if !segment::write(frame, seg) {
        return xdp_action::XDP_DROP;
    }
    count(Counter::LbBackendTimeWait);
    back_out(frame)
}
