//! The SYN proxy's steps run as XDP programs of their own, reached by tail call: each is
//! verified once, from its own start, instead of inside every path of the program that found
//! the packet (which walked the verifier past its budget). The finding program leaves what it
//! learnt in this CPU's handoff slot, returns [`DEFERRED`], and its entry makes the call.

use aya_ebpf::{
    bindings::xdp_action,
    macros::map,
    maps::{PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use foobar_common::{counters::Counter, lb::Handoff, parse::Parsed};

use crate::{log, packet::Frame, stats::count};

/// The steps, in the order `foobar_common::XDP_PROXY_PROGRAMS` names their programs.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Step {
    Syn = 0,
    CookieAck = 1,
    Hold = 2,
    BackendAnswer = 3,
    /// A DNS query, to `dns::STEP` (not one of the proxy's steps).
    DnsAnswer = 4,
}

/// Not an XDP action: "make the tail call the handoff slot names".
pub const DEFERRED: u32 = 0xdefe;

/// Pinned: the kernel empties a program array when its last user reference goes, which would
/// leave a data plane kept without its daemon unable to make the calls.
#[map(name = "LB_PROXY_STEPS")]
static STEPS: ProgramArray = ProgramArray::with_max_entries(4, 0);
#[map(name = "LB_HANDOFF")]
static HANDOFF: PerCpuArray<Handoff> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn slot() -> Option<&'static mut Handoff> {
    let ptr = HANDOFF.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot for the program run; a tail call keeps the CPU and the packet.
    Some(unsafe { &mut *ptr })
}

/// Leaves `p` (and what `fill` adds) for `step`; the verdict to return up to the entry.
#[inline(always)]
pub fn defer(step: Step, p: &Parsed, family: u8, fill: impl FnOnce(&mut Handoff)) -> u32 {
    let Some(h) = slot() else { return xdp_action::XDP_DROP };
    h.step = step as u32;
    h.parsed = *p;
    h.family = family;
    fill(h);
    DEFERRED
}

/// At a program's entry: makes the tail call a [`DEFERRED`] verdict asks for. It returns only
/// if the step is missing (a data plane loaded without its steps): dropped and counted.
#[inline(always)]
pub fn follow(ctx: &XdpContext, verdict: u32) -> u32 {
    if verdict != DEFERRED {
        return verdict;
    }
    if let Some(h) = slot() {
        if h.step == Step::DnsAnswer as u32 {
            // SAFETY: as below. Without the step (no daemon), the query is the kernel's to refuse.
            let _ = unsafe { crate::dns::STEP.tail_call(ctx, 0) };
            return xdp_action::XDP_PASS;
        }
        // SAFETY: a tail call replaces this program's run with the step's, on the same context.
        let _ = unsafe { STEPS.tail_call(ctx, h.step) };
    }
    count(Counter::LbStepMissing);
    xdp_action::XDP_DROP
}

/// A step program's body: runs `step` on the handoff slot, logging drops like the entries.
#[inline(always)]
pub fn run(ctx: &XdpContext, step: impl FnOnce(&Frame, &Handoff) -> u32) -> u32 {
    let verdict = match slot() {
        Some(h) => step(&Frame(ctx), h),
        None => xdp_action::XDP_DROP,
    };
    if verdict == xdp_action::XDP_DROP {
        log::emit(ctx);
    }
    verdict
}
