//! TCP options: what a segment offers (read with a bounded walk, as the verifier needs), and
//! the option blocks the SYN proxy writes for the handshakes it makes.

use crate::bytes::PacketBytes;

pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WSCALE: u8 = 3;
pub const OPT_SACK_PERMITTED: u8 = 4;
pub const OPT_SACK: u8 = 5;
pub const OPT_TIMESTAMP: u8 = 8;

/// Most options a walk reads: 40 option bytes hold at most 20 (two-byte) options, and every
/// segment seen in practice holds no more than 8.
const MAX_OPTIONS: usize = 12;

/// What a segment's options say; offsets are from the start of the options (`None`/0 count:
/// absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// The timestamp value and echo reply, and where the value sits (the echo follows it).
    pub ts: Option<(u32, u32)>,
    pub ts_at: Option<usize>,
    /// Where the first SACK block sits and how many there are (each two 32-bit edges).
    pub sack_at: usize,
    pub sack_blocks: u8,
}

/// The most option bytes a TCP header holds.
pub const MAX_LEN: usize = 40;

/// The options in the first `len` bytes of `opts` (the bytes after a TCP header's first 20).
#[inline(always)]
pub fn parse<P: PacketBytes + ?Sized>(opts: &P, len: usize) -> TcpOptions {
    let mut out = TcpOptions::default();
    parse_into(opts, len, &mut out);
    out
}

/// [`parse`] into `out` (cleared first), where the caller keeps it: BPF's stack has no room
/// for another copy on the paths that read options.
#[inline(always)]
pub fn parse_into<P: PacketBytes + ?Sized>(opts: &P, len: usize, out: &mut TcpOptions) {
    *out = TcpOptions::default();
    let end = len;
    let mut off = 0;
    for _ in 0..MAX_OPTIONS {
        off = opts.carried(off);
        if off >= end {
            break;
        }
        // Kind and length in one read: a one-byte read at the frame's end is written in a
        // shape the verifier refuses. A lone NOP or END in the header's last byte is padding.
        let Some([kind, len]) = opts.load::<[u8; 2]>(off) else { break };
        if kind == OPT_END {
            break;
        }
        if kind == OPT_NOP {
            off += 1;
            continue;
        }
        let len = usize::from(len);
        if len < 2 || off + len > end {
            break;
        }
        match (kind, len) {
            (OPT_MSS, 4) => out.mss = opts.load::<[u8; 2]>(off + 2).map(u16::from_be_bytes),
            (OPT_WSCALE, 3) => out.wscale = opts.load::<[u8; 2]>(off + 1).map(|[_, ws]| ws),
            (OPT_SACK_PERMITTED, 2) => out.sack_permitted = true,
            (OPT_SACK, _) if (len - 2) % 8 == 0 => {
                out.sack_at = off + 2;
                out.sack_blocks = ((len - 2) / 8) as u8;
            }
            (OPT_TIMESTAMP, 10) => {
                if let Some(ts) = opts.load::<[u8; 8]>(off + 2) {
                    let [a, b, c, d, e, f, g, h] = ts;
                    out.ts = Some((u32::from_be_bytes([a, b, c, d]), u32::from_be_bytes([e, f, g, h])));
                    out.ts_at = Some(off + 2);
                }
            }
            _ => {}
        }
        off += len;
    }
}

/// An option block to write: up to 20 bytes (MSS, SACK-permitted with a timestamp, window
/// scale), always a multiple of four.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub bytes: [u8; 20],
    pub len: usize,
}

impl Block {
    #[inline(always)]
    fn push(&mut self, four: [u8; 4]) {
        if self.len + 4 <= self.bytes.len() {
            self.bytes[self.len..self.len + 4].copy_from_slice(&four);
            self.len += 4;
        }
    }
}

/// The options of a SYN or SYN-ACK: the MSS; with `ts` (value, echo) SACK-permitted (if
/// `sack`) and the timestamp; the window scale (if any). As Linux lays them out.
#[inline(always)]
pub fn handshake(mss: u16, ts: Option<(u32, u32)>, sack: bool, wscale: Option<u8>) -> Block {
    let mut b = Block::default();
    let m = mss.to_be_bytes();
    b.push([OPT_MSS, 4, m[0], m[1]]);
    if let Some((value, echo)) = ts {
        if sack {
            b.push([OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10]);
        } else {
            b.push([OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10]);
        }
        b.push(value.to_be_bytes());
        b.push(echo.to_be_bytes());
    }
    if let Some(ws) = wscale {
        b.push([OPT_NOP, OPT_WSCALE, 3, ws]);
    }
    b
}

/// The options of a segment after the handshake: the timestamp, if the flow has them.
#[inline(always)]
pub fn established(ts: Option<(u32, u32)>) -> Block {
    let mut b = Block::default();
    if let Some((value, echo)) = ts {
        b.push([OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10]);
        b.push(value.to_be_bytes());
        b.push(echo.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(options: &[u8]) -> TcpOptions {
        parse(options, options.len())
    }

    #[test]
    fn linux_syn_options_parse() {
        // MSS 1460, SACK-permitted, timestamps (7, 0), NOP, window scale 7: a Linux SYN.
        let opts = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = parsed(&opts);
        assert_eq!(
            (o.mss, o.wscale, o.sack_permitted, o.ts, o.ts_at),
            (Some(1460), Some(7), true, Some((7, 0)), Some(8))
        );
        assert_eq!(handshake(1460, Some((7, 0)), true, Some(7)).bytes[..], opts, "written as Linux writes them");
    }

    #[test]
    fn sack_blocks_timestamps_and_junk() {
        let mut opts = vec![1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0, 1, 1, 5, 18];
        opts.extend_from_slice(&[0; 16]);
        let o = parsed(&opts);
        assert_eq!((o.ts, o.ts_at, o.sack_at, o.sack_blocks), (Some((256, 512)), Some(4), 16, 2));
        // A length running past the header, a zero length, an unknown kind: never misread.
        for bad in [&[2u8, 9, 0, 0][..], &[2, 0, 0, 0], &[99, 3, 0, 1, 1, 1]] {
            assert_eq!(parsed(bad).mss, None, "{bad:?}");
        }
        // Only the first `len` bytes count.
        assert_eq!(parse(&[2u8, 4, 5, 180][..], 2).mss, None);
        assert_eq!(established(Some((1, 2))).len, 12);
        assert_eq!(established(None).len, 0);
    }
}
