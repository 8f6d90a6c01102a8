//! The fast path: what a front end's traffic is nearly all made of, handled in one BPF
//! function from the first byte to the redirect.
//!
//! That is a packet of an established flow in a plain frame: untagged IPv4 without options,
//! TCP or UDP, not a fragment. It is parsed at fixed offsets, looked up in the connection
//! table and forwarded, with the NAT rewrite inlined. Anything else, or anything that turns
//! out not to be a live tracked flow, returns `None` having counted nothing, and the entry
//! program runs the full path as before.
//!
//! Why a function of its own, rather than inline in the entry programs: the verifier would
//! otherwise walk the full path once more for each state the fast path can leave behind
//! (over its 1M-instruction budget when tried). Returning from here leaves only `r0`
//! different, so the full path is verified as if the fast path were not there. The call
//! itself measured free; what the fast path saves is the full path's three BPF calls, the
//! `Parsed` record it writes and reads back, and its generic parse.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};

use crate::{firewall, lb, packet::Frame};

/// Untrusted interfaces: the deny list, checked on every frame before anything else (a
/// denied source is dropped whatever it sends), then a plain packet of an established flow.
/// `None`: the frame takes the full path, without a second deny check.
#[inline(never)]
pub fn front(ctx: &XdpContext) -> Option<u32> {
    let frame = Frame(ctx);
    if firewall::denied_on_sight(&frame) {
        return Some(xdp_action::XDP_DROP);
    }
    lb::established_plain(&frame, true)
}

/// Trusted interfaces: a plain packet of an established flow.
#[inline(never)]
pub fn inside(ctx: &XdpContext) -> Option<u32> {
    lb::established_plain(&Frame(ctx), false)
}
