//! The IPv4 deny filter (`DENY_FILTER_WORDS`): one bit per /24, set where some deny prefix
//! reaches into that /24, so the kernel skips the deny trie for every other source.
//!
//! The daemon keeps the IPv4 deny prefixes here as well as in the trie, and after each change
//! recomputes the bits of the span it touched from the prefixes alone, writing only the words
//! that changed. Removing a prefix cannot clear a bit another prefix still needs, and the trie
//! is written first on adding and last on removing, so the filter never hides a denied source.

use std::collections::BTreeSet;

use aya::maps::{Array, Map, MapData};
use foobar_common::firewall::DENY_FILTER_WORDS;

use super::DataplaneError;

/// The IPv4 deny prefixes (host-order address, length) and what the filter map holds.
#[derive(Debug)]
pub struct DenyFilter {
    prefixes: BTreeSet<(u32, u8)>,
    /// The map's words as last written (it starts zeroed: the filter map is never pinned).
    written: Vec<u64>,
}

impl Default for DenyFilter {
    fn default() -> Self {
        DenyFilter { prefixes: BTreeSet::new(), written: vec![0; DENY_FILTER_WORDS as usize] }
    }
}

impl DenyFilter {
    /// Records `addr/len` (host order) as denied or not, and updates the filter `map`.
    pub fn set(&mut self, map: &mut Map, addr: u32, len: u8, denied: bool) -> Result<(), DataplaneError> {
        if denied {
            self.prefixes.insert(normal(addr, len));
        } else {
            self.prefixes.remove(&normal(addr, len));
        }
        self.write(map, addr, len)
    }

    /// Writes the words of `addr/len`'s span that changed, noting each once it is written (so
    /// a failed write is retried by the next change there).
    fn write(&mut self, map: &mut Map, addr: u32, len: u8) -> Result<(), DataplaneError> {
        let mut map: Array<&mut MapData, u64> = Array::try_from(map)?;
        for (word, value) in self.changes(addr, len) {
            map.set(word, value, 0)?;
            self.written[word as usize] = value;
        }
        Ok(())
    }

    /// Recomputes the bits of the /24s `addr/len` reaches into; returns the words that differ
    /// from what was written (index, new value).
    fn changes(&self, addr: u32, len: u8) -> Vec<(u32, u64)> {
        let (first, count) = span(addr, len);
        let bits = marked(&self.prefixes, first, count);
        let new_words: Vec<(u32, u64)> = if count >= 64 {
            bits.iter().enumerate().map(|(i, &value)| (first / 64 + i as u32, value)).collect()
        } else {
            // Part of one word: the span is aligned, so it does not straddle two.
            let (word, shift) = (first / 64, first % 64);
            let mask = ((1u64 << count) - 1) << shift;
            vec![(word, (self.written[word as usize] & !mask) | (bits[0] << shift))]
        };
        new_words.into_iter().filter(|&(word, value)| self.written[word as usize] != value).collect()
    }
}

/// `addr/len` with its host bits cleared.
fn normal(addr: u32, len: u8) -> (u32, u8) {
    (addr & mask(len), len)
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) }
}

/// The /24s a prefix reaches into, as (first, count): its own, or the one it lies in.
fn span(addr: u32, len: u8) -> (u32, u32) {
    let len = len.min(24);
    ((addr & mask(len)) >> 8, 1 << (24 - len))
}

/// The filter bits of the /24s `first..first + count` (bit `i` for `first + i`, 64 to a word),
/// computed from the prefixes alone. The span is aligned (as `span` makes it), so every prefix
/// covers it, lies inside it, or misses it.
fn marked(prefixes: &BTreeSet<(u32, u8)>, first: u32, count: u32) -> Vec<u64> {
    let words = count.div_ceil(64) as usize;
    let span_len = 24 - count.trailing_zeros() as u8;
    let start = first << 8;
    if (0..=span_len).any(|len| prefixes.contains(&normal(start, len))) {
        let all = if count >= 64 { u64::MAX } else { (1 << count) - 1 };
        return vec![all; words];
    }
    let mut bits = vec![0u64; words];
    let end = u64::from(start) + (u64::from(count) << 8);
    for &(addr, len) in prefixes.range((start, 0)..) {
        if u64::from(addr) >= end {
            break;
        }
        let from = (addr - start) >> 8;
        let nets = if len >= 24 { 1 } else { 1u32 << (24 - len) };
        for net in from..from + nets {
            bits[(net / 64) as usize] |= 1 << (net % 64);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word straight from the definition: a /24's bit is set when a prefix overlaps it.
    fn by_definition(prefixes: &BTreeSet<(u32, u8)>, word: u32) -> u64 {
        let mut out = 0;
        for bit in 0..64u32 {
            let net = (word << 6 | bit) << 8;
            let overlaps = prefixes.iter().any(|&(addr, len)| {
                let m = mask(len.min(24));
                addr & m == net & m
            });
            if overlaps {
                out |= 1 << bit;
            }
        }
        out
    }

    fn v4(a: [u8; 4]) -> u32 {
        u32::from_be_bytes(a)
    }

    #[test]
    fn words_match_the_definition_after_adds_and_removes() {
        // Prefixes from /14 to /32 in and around 192.0.0.0/14, and some far away, added and
        // removed at random (a deterministic generator). Shorter ones would cover everything
        // and test only the covering case, which has its own test below.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = v4([192, 0, 2, 0]);
        let mut filter = DenyFilter::default();
        let mut touched = BTreeSet::new();
        for step in 0..300 {
            let len = 14 + (next() % 19) as u8;
            let addr = base ^ ((next() as u32) & 0x0003_ffff) ^ if step % 7 == 0 { 0x0100_0000 } else { 0 };
            if next() % 3 == 0 {
                filter.prefixes.remove(&normal(addr, len));
            } else {
                filter.prefixes.insert(normal(addr, len));
            }
            for (word, value) in filter.changes(addr, len) {
                filter.written[word as usize] = value;
                touched.insert(word);
            }
            let (first, count) = span(addr, len);
            touched.insert(first / 64);
            touched.insert((first + count - 1) / 64);
        }
        assert!(filter.prefixes.len() > 20, "too few prefixes left to test much: {}", filter.prefixes.len());
        for &word in &touched {
            assert_eq!(filter.written[word as usize], by_definition(&filter.prefixes, word), "word {word}");
        }
        let untouched = (0..DENY_FILTER_WORDS).filter(|w| !touched.contains(w) && filter.written[*w as usize] != 0);
        assert_eq!(untouched.count(), 0, "a word no change reached is set");
    }

    #[test]
    fn spans_are_the_nets_a_prefix_reaches() {
        assert_eq!(span(v4([192, 0, 2, 7]), 32), (v4([192, 0, 2, 0]) >> 8, 1));
        assert_eq!(span(v4([10, 0, 0, 0]), 8), (10 << 16, 1 << 16));
        assert_eq!(span(0, 0), (0, 1 << 24));
    }

    #[test]
    fn a_covering_prefix_fills_the_span_and_an_inner_one_marks_its_nets() {
        let mut prefixes = BTreeSet::new();
        prefixes.insert(normal(v4([192, 0, 2, 0]), 23));
        let word = v4([192, 0, 0, 0]) >> 14;
        assert_eq!(marked(&prefixes, word * 64, 64), vec![0b1100]);
        prefixes.insert((0, 0));
        assert_eq!(marked(&prefixes, word * 64, 64), vec![u64::MAX]);
        assert_eq!(marked(&prefixes, v4([192, 0, 2, 0]) >> 8, 1), vec![1]);
    }
}
