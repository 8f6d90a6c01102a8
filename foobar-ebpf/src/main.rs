//! foobar's XDP programs: one for trusted interfaces, one with the firewall in front for
//! untrusted ones (`daemon.untrusted`). Both share every map, so the daemon sees one data plane.
//!
//! # Layout
//! - `packet`: the kernel's [`PacketBytes`](foobar_common::bytes::PacketBytes) over an `XdpContext`.
//! - `stats`: per-CPU counters and traffic; `log`: rate-limited messages for the daemon's log;
//!   `clock`: the time flows are stamped with, cheaply; `atomic`: read-modify-write on map values.
//! - `firewall`: deny list, allow rules, SYN rate limit, default policy.
//! - `lb`: the load balancer's full path, over
//!   - `services`: services, rings, backends and the VIP filter, as userspace publishes them;
//!   - `schedule`: a new flow's backend and NAT port (`scratch` holds the flow being built);
//!   - `conntrack`: the connection table, its timeouts and every change to an entry;
//!   - `nat`: the NAT table (ports and the bindings replies go back by);
//!   - `forward`: packets of tracked flows to their backend, replies back to their client;
//!     `rewrite`: addresses and ports with checksums patched; `nexthop`: FIB and redirect;
//!   - `icmp`: ICMP errors about balanced flows; `refuse`: RSTs when no backend is up;
//!     `icmp_error`: the time-exceeded and too-big errors a router owes what it cannot forward.
//!   - `synproxy`: SYN cookies and the proxied handshake, over `segment` (a TCP segment built
//!     from nothing), its steps run as programs of their own (`handoff`); `seqadj`: a proxied
//!     flow's segments translated; `flood`: new-flow rates;
//! - `dns`: queries to a DNS listen address answered from the daemon's rendered zone (a step
//!   of its own too);
//! - `fastpath`: plain IPv4 packets of established flows, before all of the above;
//!   `flow_cache`: its per-CPU copies of recently forwarded flows.
//!
//! The parsing itself lives in `foobar-common` so the host tests run the same code.
#![no_std]
#![no_main]
// Atomic read-modify-write on map values (see `atomic`).
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "the atomic intrinsics are the only RMW atomics the bpfel target offers")]

mod atomic;
mod clock;
mod conntrack;
mod dns;
mod fastpath;
mod firewall;
mod flood;
mod flow_cache;
mod forward;
mod handoff;
mod hop_cache;
mod icmp;
mod icmp_error;
mod lb;
mod log;
mod nat;
mod nexthop;
mod packet;
mod refuse;
mod rewrite;
mod schedule;
mod scratch;
mod segment;
mod seqadj;
mod services;
mod stats;
mod synproxy;
mod tcp;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use foobar_common::{
    counters::Counter,
    parse::{Parsed, parse},
};

use crate::{
    packet::Frame,
    stats::{count, count_parsed},
};

/// Trusted interfaces: the fast path; else parse (dropping what is malformed), then balance.
#[xdp]
pub fn xdp_trusted(ctx: XdpContext) -> u32 {
    let verdict = match fastpath::run::<false>(&ctx) {
        Some(verdict) => verdict,
        None => trusted_full_path(&ctx),
    };
    let verdict = handoff::follow(&ctx, verdict);
    if verdict == xdp_action::XDP_DROP {
        log::emit(&ctx);
    }
    verdict
}

/// Untrusted interfaces: as `xdp_trusted`, with the firewall deciding first. A denied source
/// is dropped on sight, before the full parse: the cheapest path is the one floods take.
/// Packets of tracked flows are forwarded next (by the fast path, or after the full parse),
/// like a stateful firewall's established traffic; everything else meets the allow rules.
/// (Trusted interfaces keep the service lookup first on the full path: there is no rule
/// lookup to save, and backends' replies would pay a miss.)
#[xdp]
pub fn xdp_untrusted(ctx: XdpContext) -> u32 {
    if firewall::denied_on_sight(&Frame(&ctx)) {
        return xdp_action::XDP_DROP;
    }
    let verdict = match fastpath::run::<true>(&ctx) {
        Some(verdict) => verdict,
        None => untrusted_full_path(&ctx),
    };
    let verdict = handoff::follow(&ctx, verdict);
    if verdict == xdp_action::XDP_DROP {
        log::emit(&ctx);
    }
    verdict
}

/// What the fast path left, on a trusted interface: parsed (dropped if malformed), balanced.
///
/// A function of its own, like each stage after it: the parsed packet then sits in its frame,
/// not in the entry's, where the fast path's call chain would carry it too.
#[inline(never)]
fn trusted_full_path(ctx: &XdpContext) -> u32 {
    match parsed(ctx) {
        Some(p) => lb::balance(&Frame(ctx), p).unwrap_or_else(|| not_balanced(p)),
        None => xdp_action::XDP_DROP,
    }
}

/// [`trusted_full_path`] with the firewall: tracked flows first, then the allow rules.
#[inline(never)]
fn untrusted_full_path(ctx: &XdpContext) -> u32 {
    let Some(p) = parsed(ctx) else { return xdp_action::XDP_DROP };
    match lb::established(&Frame(ctx), p) {
        Some(verdict) => {
            count(Counter::FwEstablished);
            verdict
        }
        None if firewall::admits(ctx, p) => lb::balance(&Frame(ctx), p).unwrap_or_else(|| not_balanced(p)),
        None => xdp_action::XDP_DROP,
    }
}

/// What no service takes: a DNS query, for the answer step; the rest, for the kernel. Out of
/// line, so that its frame is not under the balancer's deep call chain.
#[inline(never)]
fn not_balanced(p: &Parsed) -> u32 {
    match p.family() {
        Some(family) if dns::is_query(p, family) => handoff::defer(handoff::Step::DnsAnswer, p, family, |_| ()),
        _ => xdp_action::XDP_PASS,
    }
}

/// DNS step: a query to a listen address, answered or passed.
#[xdp]
pub fn xdp_dns_answer(ctx: XdpContext) -> u32 {
    dns::run(&ctx)
}

/// SYN proxy step: a SYN of no flow, answered with a cookie.
#[xdp]
pub fn xdp_proxy_syn(ctx: XdpContext) -> u32 {
    handoff::run(&ctx, |frame, h| synproxy::answer_syn(frame, &h.parsed, h.family))
}

/// SYN proxy step: a segment of no flow, which may be a cookie's ACK.
#[xdp]
pub fn xdp_proxy_ack(ctx: XdpContext) -> u32 {
    handoff::run(&ctx, |frame, h| synproxy::cookie_ack(frame, &h.parsed, &h.service, h.previous.as_ref()))
}

/// SYN proxy step: a client's segment while its backend's handshake is under way.
#[xdp]
pub fn xdp_proxy_hold(ctx: XdpContext) -> u32 {
    handoff::run(&ctx, |frame, h| synproxy::hold(frame, &h.parsed, h.family))
}

/// SYN proxy step: a backend's answer to the proxy's SYN.
#[xdp]
pub fn xdp_proxy_backend(ctx: XdpContext) -> u32 {
    handoff::run(&ctx, |frame, h| synproxy::backend_answer(frame, &h.parsed, &h.target, h.family))
}

/// The benchmark floor: passes every frame and does nothing else. Never attached; `cargo
/// xtask bench dataplane` measures the other programs as multiples of this one.
#[xdp]
pub fn xdp_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Parses and counts a frame; `None` (counted by reason) when it is malformed.
///
/// Not inlined, like each stage: as separate BPF functions the stages reuse one another's
/// stack space, which keeps the deepest call chain within BPF's 512-byte stack.
#[inline(never)]
fn parsed(ctx: &XdpContext) -> Option<&'static Parsed> {
    let ctx = packet::opaque(ctx);
    match parse(&Frame(&ctx)) {
        Ok(mut p) => {
            count_parsed(&p);
            scratch::blur_offsets(&mut p);
            scratch::keep_parsed(p)
        }
        Err(reason) => {
            count(Counter::Received);
            count(reason);
            None
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach a panic, so this is never called.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
