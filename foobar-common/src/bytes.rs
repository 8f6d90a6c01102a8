//! The parser's view of a packet.
//!
//! In the kernel the implementation compares against `data_end` before every read so that
//! the verifier can prove each access in bounds; on the host a byte slice plays the packet.

/// Read-only access to a packet's bytes by offset.
pub trait PacketBytes {
    /// Length of the frame in bytes.
    fn frame_len(&self) -> usize;

    /// Copies a `T` out of the packet at byte offset `off` (no alignment required),
    /// or returns `None` when the packet ends before `off + size_of::<T>()`.
    fn load<T: Copy>(&self, off: usize) -> Option<T>;

    /// `off` itself, as a walk over variable-length headers carries it to its next step. The
    /// kernel's window makes the verifier forget the exact value (keeping it below
    /// [`MAX_PARSE_OFFSET`]), so that the steps' paths, which differ only in where they leave
    /// the offset, are verified once instead of once per combination.
    #[inline(always)]
    fn carried(&self, off: usize) -> usize {
        off
    }
}

/// Largest offset the parser ever reads from. Keeping offsets below a constant lets the
/// verifier bound pointer arithmetic; no header chain we accept reaches it.
pub const MAX_PARSE_OFFSET: usize = 1024;

impl PacketBytes for [u8] {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if off > MAX_PARSE_OFFSET || end > self.len() {
            return None;
        }
        let bytes = &self[off..end];
        // SAFETY: `bytes` holds exactly size_of::<T>() bytes and callers only use plain
        // integer / byte-array types for `T`, for which every bit pattern is valid.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }
}
