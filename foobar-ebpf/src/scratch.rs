//! Per-CPU scratch space for records too big for BPF's 512-byte stack (shared by the whole
//! call chain). An XDP program is not preempted on its CPU, so one slot per CPU is private
//! to the packet being processed; map helpers accept map values as keys and values directly.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use foobar_common::{
    bytes::MAX_PARSE_OFFSET,
    lb::{Flow, NatTarget, Proxied},
    parse::Parsed,
};

use crate::{nat, nexthop::hop_back, packet::Frame};

/// A new flow while it is being scheduled: what the scheduler is given and what it makes.
pub struct NewFlow {
    /// The NAT binding being made. Its `hop`, the way back to the client, is set before
    /// scheduling starts (by [`new_flow`]); the rest is the scheduler's to fill.
    pub target: NatTarget,
    /// The flow as recorded: the scheduler's result.
    pub flow: Flow,
    /// NAT's working keys while it picks a port.
    pub nat: nat::Keys,
    /// What the flow starts as: its flags and, for a SYN-proxied flow, its translation (set
    /// by the caller, for the scheduler to record in the flow and its NAT binding).
    pub flags: u16,
    pub proxied: Proxied,
    /// The client's sequence number and acknowledgement, as the flow starts with them.
    pub client_seq: u32,
    pub client_ack: u32,
}

#[map(name = "LB_SCRATCH")]
static SCRATCH: PerCpuArray<NewFlow> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's new-flow record for `frame`'s flow, started with the way back to the client:
/// out of the interface the frame came in, to the MAC it came from.
#[inline(always)]
pub fn new_flow(frame: &Frame) -> Option<&'static mut NewFlow> {
    let ptr = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: the slot belongs to this CPU and this packet for the program run (see module doc).
    let nf = unsafe { &mut *ptr };
    // Written straight into the slot: a copy held on the stack across the lookup would grow
    // the new-flow call chain's frames past BPF's 512 bytes.
    nf.target.hop = hop_back(frame)?;
    nf.flags = 0;
    nf.proxied = Proxied::default();
    nf.client_seq = 0;
    nf.client_ack = 0;
    Some(nf)
}

#[map(name = "LB_PARSED")]
static PARSED: PerCpuArray<Parsed> = PerCpuArray::with_max_entries(1, 0);

/// Keeps the packet's parse in this CPU's slot for the stages after it: on the stack it would
/// sit under every frame of the full path's call chain.
#[inline(always)]
pub fn keep_parsed(p: Parsed) -> Option<&'static Parsed> {
    let ptr = PARSED.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot for the program run (see module doc).
    let slot = unsafe { &mut *ptr };
    *slot = p;
    Some(slot)
}

/// Covers every offset up to `MAX_PARSE_OFFSET` (1024).
const OFFSET_MASK: u64 = 2 * MAX_PARSE_OFFSET as u64 - 1;

/// Where `blur_offsets` passes the header offsets through.
#[map(name = "PARSE_OFFSETS")]
static OFFSETS: PerCpuArray<[u64; 4]> = PerCpuArray::with_max_entries(1, 0);

/// Passes a parsed packet's header offsets through map memory, so the verifier sees them
/// afterwards as numbers it knows nothing about rather than as the exact values or ranges of
/// each parse path (one per IPv6 extension-header chain, tag count and protocol).
///
/// Every later packet access checks its offset against `MAX_PARSE_OFFSET` and the frame's
/// end anyway; what this saves is the verifier re-walking everything after the parse once per
/// parse path, which brought the firewall program near the kernel's 1M-instruction budget.
#[inline(always)]
pub fn blur_offsets(p: &mut Parsed) {
    let Some(slot) = OFFSETS.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot for the program run. Volatile, so that the compiler does not
    // forward the stored values past the map (which would defeat the purpose).
    unsafe {
        core::ptr::write_volatile(slot, [p.l3_offset as u64, p.l4_offset as u64, p.vlans as u64, p.protocol as u64]);
        let [l3, l4, v, pr] = core::ptr::read_volatile(slot);
        // Masked, so the verifier still knows them small (they are at most MAX_PARSE_OFFSET,
        // which the mask keeps): an unbounded offset plus a header length could wrap.
        p.l3_offset = (l3 & OFFSET_MASK) as usize;
        p.l4_offset = (l4 & OFFSET_MASK) as usize;
        p.vlans = v as u8;
        p.protocol = pr as u8;
    }
}
