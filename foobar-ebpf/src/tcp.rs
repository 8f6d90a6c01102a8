//! A TCP segment as the SYN proxy and its translation read it: the header's numbers, and its
//! options. The options are copied out of the packet into a per-CPU buffer before they are
//! walked: over packet bytes, LLVM narrows the packet pointer it carries round the walk to 32
//! bits, and the verifier refuses what it then reads.

use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, macros::map, maps::PerCpuArray};
use foobar_common::{
    bytes::PacketBytes,
    parse::{L3, Parsed},
    tcpopt::{self, MAX_LEN, TcpOptions},
};

use crate::packet::{Frame, carried, copy_length};

/// What the proxy reads of a TCP segment's header.
pub struct Tcp {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub header_len: usize,
    pub window: u16,
    /// Bytes of data after the header.
    pub payload: usize,
}

#[inline(always)]
pub fn read(frame: &Frame, p: &Parsed) -> Option<Tcp> {
    let l4 = p.l4_offset;
    let h: [u8; 16] = frame.load(l4)?;
    let header_len = usize::from(h[12] >> 4) * 4;
    let ip_payload = if p.l3 == L3::Ipv4 {
        usize::from(u16::from_be_bytes(frame.load::<[u8; 2]>(p.l3_offset + 2)?)).checked_sub(l4 - p.l3_offset)?
    } else {
        (40 + usize::from(u16::from_be_bytes(frame.load::<[u8; 2]>(p.l3_offset + 4)?))).checked_sub(l4 - p.l3_offset)?
    };
    Some(Tcp {
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: h[13],
        header_len,
        window: u16::from_be_bytes([h[14], h[15]]),
        payload: ip_payload.checked_sub(header_len)?,
    })
}

/// Room past the options: the verifier bounds an option's start only by the options' length,
/// not by the option's own length, so a timestamp read at the last start must still land here.
const SLACK: usize = 24;

/// A segment's option bytes, copied, with how many there are.
pub struct Copied {
    bytes: [u8; MAX_LEN + SLACK],
    parsed: TcpOptions,
}

#[map(name = "TCP_OPTIONS")]
static COPIED: PerCpuArray<Copied> = PerCpuArray::with_max_entries(1, 0);

/// The copied bytes, read as `tcpopt::parse` reads a packet.
struct Buffer<'a>(&'a [u8; MAX_LEN + SLACK]);

impl PacketBytes for Buffer<'_> {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        MAX_LEN
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        if off > MAX_LEN || off + size_of::<T>() > MAX_LEN + SLACK {
            return None;
        }
        // SAFETY: the range was just checked to lie inside the buffer; `T` is plain bytes.
        Some(unsafe { core::ptr::read_unaligned(self.0.as_ptr().add(off).cast::<T>()) })
    }

    #[inline(always)]
    fn carried(&self, off: usize) -> usize {
        carried(off)
    }
}

/// The options of the TCP header at `l4`, `header_len` bytes long; their offsets are made
/// frame offsets. `None` when they could not be copied.
#[inline(never)]
pub fn options(frame: &Frame, l4: usize, header_len: usize) -> Option<&'static TcpOptions> {
    let slot = COPIED.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot for the program run (XDP is not preempted on its CPU).
    let c = unsafe { &mut *slot };
    c.parsed = TcpOptions::default();
    let Some(len) = header_len.checked_sub(20) else { return Some(&c.parsed) };
    if len == 0 {
        return Some(&c.parsed);
    }
    let n = copy_length(len, MAX_LEN)?;
    // SAFETY: copies `n` (at most MAX_LEN) packet bytes into this CPU's buffer of MAX_LEN.
    if unsafe { bpf_xdp_load_bytes(frame.0.ctx.cast(), (l4 + 20) as u32, c.bytes.as_mut_ptr().cast(), n) } != 0 {
        return None;
    }
    let o = &mut c.parsed;
    tcpopt::parse_into(&Buffer(&c.bytes), n as usize, o);
    // Only when present: LLVM writes a `map`ped `None`'s payload from an unset register.
    if let Some(at) = o.ts_at {
        o.ts_at = Some(at + l4 + 20);
    }
    if o.sack_blocks > 0 {
        o.sack_at += l4 + 20;
    }
    Some(o)
}
