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
//!   - `icmp`: ICMP errors about balanced flows; `refuse`: RSTs when no backend is up.
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
mod fastpath;
mod firewall;
mod flow_cache;
mod forward;
mod icmp;
mod lb;
mod log;
mod nat;
mod nexthop;
mod packet;
mod refuse;
mod rewrite;
mod schedule;
mod scratch;
mod services;
mod stats;

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
        None => match parsed(&ctx) {
            Some(p) => lb::balance(&Frame(&ctx), &p).unwrap_or(xdp_action::XDP_PASS),
            None => xdp_action::XDP_DROP,
        },
    };
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
        None => match parsed(&ctx) {
            Some(p) => match lb::established(&Frame(&ctx), &p) {
                Some(verdict) => {
                    count(Counter::FwEstablished);
                    verdict
                }
                None if firewall::admits(&p) => lb::balance(&Frame(&ctx), &p).unwrap_or(xdp_action::XDP_PASS),
                None => xdp_action::XDP_DROP,
            },
            None => xdp_action::XDP_DROP,
        },
    };
    if verdict == xdp_action::XDP_DROP {
        log::emit(&ctx);
    }
    verdict
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
fn parsed(ctx: &XdpContext) -> Option<Parsed> {
    let ctx = packet::opaque(ctx);
    match parse(&Frame(&ctx)) {
        Ok(mut p) => {
            count_parsed(&p);
            scratch::blur_offsets(&mut p);
            Some(p)
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
