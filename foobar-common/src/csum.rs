//! Incremental Internet-checksum updates (RFC 1624): when NAT rewrites addresses and ports,
//! the checksum is patched from the old and new values instead of summing the packet again.
//!
//! Values are 16-bit words as they appear on the wire (big-endian numbers). Address words
//! are taken as they sit in memory ([`crate::addr`]) and split into their two wire words.

/// The accumulated difference of a set of rewritten words.
#[derive(Clone, Copy, Debug, Default)]
pub struct CsumDelta(u32);

impl CsumDelta {
    pub const fn new() -> Self {
        CsumDelta(0)
    }

    /// One 16-bit field changes from `old` to `new` (both as big-endian numbers).
    #[inline(always)]
    pub fn word(&mut self, old: u16, new: u16) {
        self.0 += u32::from(!old) + u32::from(new);
    }

    /// A 32-bit memory word (network-order bytes) changes.
    #[inline(always)]
    pub fn raw32(&mut self, old: u32, new: u32) {
        let (o, n) = (old.to_ne_bytes(), new.to_ne_bytes());
        self.word(u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([n[0], n[1]]));
        self.word(u16::from_be_bytes([o[2], o[3]]), u16::from_be_bytes([n[2], n[3]]));
    }

    /// An address of `words` memory words (1 for IPv4, 4 for IPv6) changes.
    #[inline(always)]
    pub fn addr(&mut self, old: &[u32; 4], new: &[u32; 4], words: usize) {
        for i in 0..4 {
            if i < words {
                self.raw32(old[i], new[i]);
            }
        }
    }

    /// Bytes that count, from nothing: `N` (even) bytes as `N / 2` wire words, as a header
    /// written afresh (its checksum field zero) is summed.
    #[inline(always)]
    pub fn bytes<const N: usize>(&mut self, b: &[u8; N]) {
        for i in 0..N / 2 {
            self.word(0, u16::from_be_bytes([b[2 * i], b[2 * i + 1]]));
        }
    }

    /// Adds the sum of more bytes that count, as `bpf_csum_diff` returns it: a 32-bit sum of
    /// little-endian words (BPF is little-endian), folded and turned to this sum's big-endian
    /// words (one's-complement sums are byte-order independent but for a swap, RFC 1071).
    #[inline(always)]
    pub fn partial(&mut self, sum: u32) {
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = ((folded & 0xffff) + (folded >> 16)) as u16;
        self.0 += u32::from(folded.swap_bytes());
    }

    /// Adds `sum`, a one's-complement sum of big-endian words from the start of some bytes,
    /// for those bytes placed at an odd offset (`odd`) or an even one.
    #[inline(always)]
    pub fn shifted(&mut self, sum: u32, odd: bool) {
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = ((folded & 0xffff) + (folded >> 16)) as u16;
        self.0 += u32::from(if odd { folded.swap_bytes() } else { folded });
    }

    /// The checksum field's new value given its old one (big-endian numbers).
    #[inline(always)]
    pub fn apply(self, csum: u16) -> u16 {
        let mut s = u32::from(!csum) + self.0;
        // At most 1 + 2 × 20 words of 0xffff are summed: two folds always suffice.
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        !(s as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(data: &[u8]) -> u16 {
        let mut s: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn bytes_sum_a_header_written_afresh() {
        let hdr: [u8; 20] = [0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 100, 192, 0, 2, 10];
        let mut d = CsumDelta::new();
        d.bytes(&hdr);
        assert_eq!(d.apply(0xffff), full(&hdr));
    }

    #[test]
    fn incremental_matches_recomputation() {
        let mut hdr: [u8; 20] = [0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 100, 192, 0, 2, 10];
        let c = full(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        let word = |h: &[u8; 20], at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let (old_src, old_dst) = (word(&hdr, 12), word(&hdr, 16));
        let new_src = u32::from_ne_bytes([198, 51, 100, 1]);
        let new_dst = u32::from_ne_bytes([198, 51, 100, 11]);
        let mut d = CsumDelta::new();
        d.raw32(old_src, new_src);
        d.raw32(old_dst, new_dst);
        let patched = d.apply(u16::from_be_bytes([hdr[10], hdr[11]]));
        hdr[12..16].copy_from_slice(&new_src.to_ne_bytes());
        hdr[16..20].copy_from_slice(&new_dst.to_ne_bytes());
        hdr[10..12].fill(0);
        assert_eq!(patched, full(&hdr));
    }

    #[test]
    fn a_little_endian_partial_sum_joins_big_endian_words() {
        let data: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(29)).collect();
        let le: u32 = data.chunks(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).sum();
        let mut d = CsumDelta::new();
        d.partial(le);
        assert_eq!(d.apply(0xffff), full(&data));
    }

    #[test]
    fn ports_and_many_words() {
        // Sixteen random-ish words rewritten: the fold bound holds.
        let old: Vec<u16> = (0..20u16).map(|i| i.wrapping_mul(40503)).collect();
        let new: Vec<u16> = (0..20u16).map(|i| 0xffff - i).collect();
        let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let mut d = CsumDelta::new();
        for (o, n) in old.iter().zip(&new) {
            d.word(*o, *n);
        }
        assert_eq!(d.apply(full(&bytes(&old))), full(&bytes(&new)));
    }
}
