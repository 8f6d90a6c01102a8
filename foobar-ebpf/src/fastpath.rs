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
//! Why a function of its own, rather than inline in the entry programs: the verifier would
//! otherwise walk the full path once more for each state the fast path can leave behind
//! (over its 1M-instruction budget when tried). Returning from here leaves only `r0`
//! different, so the full path is verified as if the fast path were not there. The call
//! itself measured free (against the same path inlined). What the fast path saves is the
//! full path's generic parse, the `Parsed` record it passes through map memory for the
//! verifier's sake (`scratch::blur_offsets`) and its out-of-line rewrite, and on trusted
//! interfaces the service lookup the full path makes before the connection table: 331-360 ->
//! 230-240 ns per established packet here, against an empty program's 91 (`cargo xtask bench
//! dataplane`); the flow cache then took the connection-table lookup off most packets.

use aya_ebpf::programs::XdpContext;

use crate::{lb, packet::Frame};

/// Untrusted interfaces (after the deny check): a plain packet of an established flow.
#[inline(never)]
pub fn front(ctx: &XdpContext) -> Option<u32> {
    lb::plain(&Frame(ctx), true)
}

/// Trusted interfaces: a plain packet of an established flow, or a backend's NAT reply.
#[inline(never)]
pub fn inside(ctx: &XdpContext) -> Option<u32> {
    lb::plain(&Frame(ctx), false)
}
