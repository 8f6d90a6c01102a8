//! foobar's XDP programs.
//!
//! # Layout
//! - `packet`: the kernel's [`PacketBytes`](foobar_common::bytes::PacketBytes) over an `XdpContext`.
//! - `stats`: the per-CPU counter array and the one function that bumps it.
//!
//! The parsing itself lives in `foobar-common` so the host tests run the same code.
#![no_std]
#![no_main]

mod packet;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use foobar_common::{
    counters::Counter,
    parse::{classify, parse},
};

use crate::{packet::Frame, stats::count};

/// Entry point on every interface foobar attaches to: parse, count, and drop what is malformed.
#[xdp]
pub fn foobar_xdp(ctx: XdpContext) -> u32 {
    count(Counter::Received);
    match parse(&Frame(&ctx)) {
        Ok(p) => {
            for c in classify(&p).into_iter().flatten() {
                count(c);
            }
            xdp_action::XDP_PASS
        }
        Err(reason) => {
            count(reason);
            xdp_action::XDP_DROP
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
