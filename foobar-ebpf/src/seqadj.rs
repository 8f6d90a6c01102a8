//! A SYN-proxied flow's segments, translated between the two handshakes: the client's
//! acknowledgements and SACK edges into the backend's sequence space and its timestamp echoes
//! into the backend's clock; the backend's sequence numbers and timestamps into what the
//! client's handshake with the proxy began; windows into the scale each side reads. The TCP
//! checksum is patched for each change.

use foobar_common::{
    bytes::{MAX_PARSE_OFFSET, PacketBytes},
    csum::CsumDelta,
    lb::Proxied,
    parse::{Parsed, TCP_ACK},
    tcpopt,
};

use crate::{packet::Frame, tcp};

/// The furthest a TCP header may start and still end (60 bytes) inside the parsed window.
const MAX_L4: usize = MAX_PARSE_OFFSET - 60;

/// The common layout of a timestamped segment: NOP, NOP, timestamp (Linux sends this).
const PLAIN_TS: [u8; 4] = [tcpopt::OPT_NOP, tcpopt::OPT_NOP, tcpopt::OPT_TIMESTAMP, 10];

/// Replaces the 32-bit field at byte `AT` of `bytes` with `f(old)`, noting the change in `d`.
#[inline(always)]
fn patch<const AT: usize, const N: usize>(bytes: &mut [u8; N], d: &mut CsumDelta, f: impl Fn(u32) -> u32) {
    let old = [bytes[AT], bytes[AT + 1], bytes[AT + 2], bytes[AT + 3]];
    let new = f(u32::from_be_bytes(old)).to_be_bytes();
    d.raw32(u32::from_ne_bytes(old), u32::from_ne_bytes(new));
    bytes[AT..AT + 4].copy_from_slice(&new);
}

/// [`patch`] for the field at frame offset `off`; false when it passes the end.
#[inline(always)]
fn patch32(frame: &Frame, off: usize, d: &mut CsumDelta, f: impl Fn(u32) -> u32) -> bool {
    let Some(w) = frame.window_mut::<4>(off) else { return false };
    patch::<0, 4>(w, d, f);
    true
}

/// Rescales the window in the fixed header `h` by `shift` bits (0: leaves it).
#[inline(always)]
fn rescale_window(h: &mut [u8; 20], shift: i32, d: &mut CsumDelta) {
    if shift != 0 {
        let old = u16::from_be_bytes([h[14], h[15]]);
        let new = rescale(old, shift);
        d.word(old, new);
        h[14..16].copy_from_slice(&new.to_be_bytes());
    }
}

/// The fixed TCP header at `l4`, to change in place, and its length with options.
///
/// One window for all its fields: LLVM drops the bounds checks of later reads the first
/// already covered, and the verifier, which gives each recomputed pointer a fresh identity,
/// would not know them covered. The offset is checked first, unsigned: LLVM passes these
/// functions the offset alone and would fold the checks into signed ones it cannot bound.
#[inline(always)]
fn header<'a>(frame: &Frame<'a>, l4: usize) -> Option<(&'a mut [u8; 20], usize)> {
    if l4 > MAX_L4 {
        return None;
    }
    let h = frame.window_mut::<20>(l4)?;
    let len = usize::from(h[12] >> 4) * 4;
    Some((h, len))
}

/// A window field scaled by `shift` bits (negative: to the right), saturating.
#[inline(always)]
fn rescale(window: u16, shift: i32) -> u16 {
    let w = u32::from(window);
    let scaled = if shift >= 0 { w << (shift & 15) } else { w >> ((-shift) & 15) };
    if scaled > 0xffff { 0xffff } else { scaled as u16 }
}

/// Where a segment's timestamp value and SACK blocks sit (frame offsets; 0: none).
struct Spots {
    ts: usize,
    sack: usize,
    sack_blocks: usize,
}

/// The [`Spots`] of the segment at `l4`, with the usual layout read without a walk.
#[inline(always)]
fn spots(frame: &Frame, l4: usize, header_len: usize) -> Option<Spots> {
    let none = Spots { ts: 0, sack: 0, sack_blocks: 0 };
    if header_len == 20 {
        return Some(none);
    }
    if header_len == 32 {
        // One word compared, not four bytes: LLVM's byte-wise compare of an `Option` does
        // arithmetic on the packet pointer on its `None` path, which the verifier refuses.
        if let Some(word) = frame.load::<u32>(l4 + 20) {
            if word == u32::from_ne_bytes(PLAIN_TS) {
                return Some(Spots { ts: l4 + 24, ..none });
            }
        }
    }
    let o = tcp::options(frame, l4, header_len)?;
    Some(Spots { ts: o.ts_at.unwrap_or(0), sack: o.sack_at, sack_blocks: usize::from(o.sack_blocks) })
}

/// Translates a client's segment for the backend; false when it could not be written.
#[inline(never)]
pub fn to_backend(frame: &Frame, p: &Parsed, x: &Proxied) -> bool {
    let l4 = p.l4_offset;
    let Some((h, header_len)) = header(frame, l4) else { return false };
    let mut d = CsumDelta::new();
    if h[13] & TCP_ACK != 0 {
        patch::<8, 20>(h, &mut d, |a| a.wrapping_add(x.seq_delta));
    }
    rescale_window(h, i32::from(x.to_backend_shift), &mut d);
    let Some(o) = spots(frame, l4, header_len) else { return false };
    if o.ts != 0 && !patch32(frame, o.ts + 4, &mut d, |e| e.wrapping_add(x.ts_delta)) {
        return false;
    }
    for i in 0..4 {
        if i < o.sack_blocks {
            let at = o.sack + 8 * i;
            if !patch32(frame, at, &mut d, |e| e.wrapping_add(x.seq_delta))
                || !patch32(frame, at + 4, &mut d, |e| e.wrapping_add(x.seq_delta))
            {
                return false;
            }
        }
    }
    patch_checksum(h, d);
    true
}

/// Translates a backend's segment for the client; false when it could not be written.
#[inline(never)]
pub fn to_client(frame: &Frame, p: &Parsed, x: &Proxied) -> bool {
    let l4 = p.l4_offset;
    let Some((h, header_len)) = header(frame, l4) else { return false };
    let mut d = CsumDelta::new();
    patch::<4, 20>(h, &mut d, |s| s.wrapping_sub(x.seq_delta));
    rescale_window(h, i32::from(x.to_client_shift), &mut d);
    let Some(o) = spots(frame, l4, header_len) else { return false };
    if o.ts != 0 && !patch32(frame, o.ts, &mut d, |v| v.wrapping_sub(x.ts_delta)) {
        return false;
    }
    patch_checksum(h, d);
    true
}

/// Applies the changes noted in `d` to the header's checksum.
#[inline(always)]
fn patch_checksum(h: &mut [u8; 20], d: CsumDelta) {
    let c = d.apply(u16::from_be_bytes([h[16], h[17]]));
    h[16..18].copy_from_slice(&c.to_be_bytes());
}
