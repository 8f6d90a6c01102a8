//! foobar's XDP programs: one for trusted interfaces, one with the firewall in front for
//! untrusted ones. Both share every map, so the daemon sees one data plane.
//!
//! # Layout
//! - `packet`: the kernel's [`PacketBytes`](foobar_common::bytes::PacketBytes) over an `XdpContext`.
//! - `stats`: the per-CPU counter array and the one function that bumps it.
//! - `firewall`: deny list, allow rules, SYN rate limit, default policy.
//!
//! The parsing itself lives in `foobar-common` so the host tests run the same code.
#![no_std]
#![no_main]
// Compare-and-swap for the SYN limiter (see `firewall::syn_conforms`).
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "atomic_cxchg is the only CAS the bpfel target offers")]

mod firewall;
mod packet;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use foobar_common::{
    counters::Counter,
    parse::{Parsed, classify, parse},
};

use crate::{packet::Frame, stats::count};

/// Trusted interfaces: parse, count, drop what is malformed.
#[xdp]
pub fn foobar_xdp(ctx: XdpContext) -> u32 {
    match parsed(&ctx) {
        Some(_) => xdp_action::XDP_PASS,
        None => xdp_action::XDP_DROP,
    }
}

/// Untrusted interfaces: as `foobar_xdp`, with the firewall deciding first.
#[xdp]
pub fn foobar_xdp_fw(ctx: XdpContext) -> u32 {
    match parsed(&ctx) {
        Some(p) if firewall::admits(&p) => xdp_action::XDP_PASS,
        _ => xdp_action::XDP_DROP,
    }
}

/// Parses and counts a frame; `None` (counted by reason) when it is malformed.
#[inline(always)]
fn parsed(ctx: &XdpContext) -> Option<Parsed> {
    count(Counter::Received);
    match parse(&Frame(ctx)) {
        Ok(p) => {
            for c in classify(&p).into_iter().flatten() {
                count(c);
            }
            Some(p)
        }
        Err(reason) => {
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
