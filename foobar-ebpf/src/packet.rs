//! The kernel-side packet window: every read is checked against `data_end` right before it,
//! in the shape the verifier can follow.

use aya_ebpf::{macros::map, maps::PerCpuArray, programs::XdpContext};
use foobar_common::bytes::{MAX_PARSE_OFFSET, PacketBytes};

/// Where [`PacketBytes::carried`] passes an offset through.
#[map(name = "PACKET_CARRY")]
static CARRY: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Covers every offset up to `MAX_PARSE_OFFSET` (1024).
const OFFSET_MASK: u64 = 2 * MAX_PARSE_OFFSET as u64 - 1;

/// An XDP frame seen through [`PacketBytes`].
pub struct Frame<'a>(pub &'a XdpContext);

impl PacketBytes for Frame<'_> {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.0.data_end() - self.0.data()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let start = self.0.data();
        let end = self.0.data_end();
        if off > MAX_PARSE_OFFSET {
            return None;
        }
        if start + off + core::mem::size_of::<T>() > end {
            return None;
        }
        // SAFETY: the range [start + off, start + off + size_of::<T>()) was just checked to lie
        // inside the packet, and `T` is a plain integer or byte array.
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
    }

    #[inline(always)]
    fn carried(&self, off: usize) -> usize {
        carried(off)
    }
}

/// `v` passed through map memory and masked below 2048: the verifier knows only that bound
/// afterwards, and LLVM cannot fold what it computes next back into what it computed before.
#[inline(always)]
pub fn carried(v: usize) -> usize {
    let Some(slot) = CARRY.get_ptr_mut(0) else { return MAX_PARSE_OFFSET };
    // SAFETY: this CPU's slot for the program run; volatile so the value goes through the map.
    unsafe {
        core::ptr::write_volatile(slot, v as u64);
        (core::ptr::read_volatile(slot) & OFFSET_MASK) as usize
    }
}

/// `len` if it is a length a copying helper takes (1 to `max`), in the form the verifier needs:
/// at least 1, which no test of `len` itself teaches it (LLVM turns `len < 1` into `len == 0`,
/// which says nothing of a range); so `len - 1` is carried, bounded, and the length rebuilt.
#[inline(always)]
pub fn copy_length(len: usize, max: usize) -> Option<u32> {
    let below = carried(len.wrapping_sub(1));
    if below >= max {
        return None;
    }
    Some(below as u32 + 1)
}

/// A copy of `ctx` that LLVM cannot see through: for BPF functions taking the context.
///
/// Otherwise LLVM may pass the function the packet pointers themselves instead of the
/// context (argument promotion), and it passes them as the 32-bit fields they are loaded
/// from; the verifier then no longer knows them as packet pointers and rejects every read.
#[inline(always)]
pub fn opaque(ctx: &XdpContext) -> XdpContext {
    // SAFETY: a read of a valid reference; volatile only so that it stays a read.
    XdpContext::new(unsafe { core::ptr::read_volatile(&ctx.ctx) })
}

impl<'a> Frame<'a> {
    /// The `N` bytes at `off` to change in place, after one bounds check; `None` when they
    /// would pass the end. Several writes through one window check once, where separate
    /// `store`s each reload the packet bounds (a store could, for all LLVM knows, change them).
    #[inline(always)]
    pub fn window_mut<const N: usize>(&self, off: usize) -> Option<&'a mut [u8; N]> {
        let start = self.0.data();
        let end = self.0.data_end();
        if off > MAX_PARSE_OFFSET || start + off + N > end {
            return None;
        }
        // SAFETY: the range was just checked to lie inside the packet, which XDP may write and
        // which outlives the program run; callers hold no other reference into it.
        Some(unsafe { &mut *((start + off) as *mut [u8; N]) })
    }

    /// Writes `value` at byte offset `off`; false (nothing written) when it would pass the end.
    #[inline(always)]
    pub fn store<T: Copy>(&self, off: usize, value: T) -> bool {
        let start = self.0.data();
        let end = self.0.data_end();
        if off > MAX_PARSE_OFFSET {
            return false;
        }
        if start + off + core::mem::size_of::<T>() > end {
            return false;
        }
        // SAFETY: the range was just checked to lie inside the packet, which XDP may write.
        unsafe { core::ptr::write_unaligned((start + off) as *mut T, value) };
        true
    }
}
