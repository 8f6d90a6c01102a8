//! The IPv4 deny filter (`DENY_FILTER_WORDS`): two bits per /24, one set where some deny
//! prefix reaches into that /24 (the kernel skips the deny trie for every other source), one
//! where a prefix covers all of it (the kernel drops its sources without the trie).
//!
//! The daemon keeps the IPv4 deny prefixes here as well as in the trie, and after each change
//! recomputes the bits of the span it touched from the prefixes alone, writing only the words
//! that changed. Removing a prefix cannot clear a bit another prefix still needs, and the trie
//! is written first on adding and last on removing, so the filter never hides a denied source;
//! a "covers" bit is set only while a prefix in the trie covers the /24 (cleared before it
//! goes), so it never denies a source the trie would let through.

use std::collections::BTreeSet;

use aya::maps::{Array, Map, MapData};
use foobar_common::firewall::{DENY_COVERS, DENY_FILTER_WORDS, DENY_REACHES};

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
        let words = marked(&self.prefixes, first, count);
        let new_words: Vec<(u32, u64)> = if count >= NETS_PER_WORD {
            words.iter().enumerate().map(|(i, &value)| (first / NETS_PER_WORD + i as u32, value)).collect()
        } else {
            // Part of one word: the span is aligned, so it does not straddle two.
            let (word, shift) = (first / NETS_PER_WORD, (first % NETS_PER_WORD) * 2);
            let mask = ((1u64 << (2 * count)) - 1) << shift;
            vec![(word, (self.written[word as usize] & !mask) | (words[0] << shift))]
        };
        new_words.into_iter().filter(|&(word, value)| self.written[word as usize] != value).collect()
    }
}

/// /24 networks per filter word (two bits each, the first /24 in the lowest bits).
const NETS_PER_WORD: u32 = 32;

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

/// The filter words of the /24s `first..first + count` (bits `2i` and `2i + 1` for
/// `first + i`: `DENY_REACHES` and `DENY_COVERS`), computed from the prefixes alone. The span
/// is aligned (as `span` makes it), so every prefix covers it, lies inside it, or misses it.
fn marked(prefixes: &BTreeSet<(u32, u8)>, first: u32, count: u32) -> Vec<u64> {
    let words = count.div_ceil(NETS_PER_WORD) as usize;
    let span_len = 24 - count.trailing_zeros() as u8;
    let start = first << 8;
    if (0..=span_len).any(|len| prefixes.contains(&normal(start, len))) {
        let all = if count >= NETS_PER_WORD { u64::MAX } else { (1 << (2 * count)) - 1 };
        return vec![all; words];
    }
    let mut out = vec![0u64; words];
    let end = u64::from(start) + (u64::from(count) << 8);
    for &(addr, len) in prefixes.range((start, 0)..) {
        if u64::from(addr) >= end {
            break;
        }
        let from = (addr - start) >> 8;
        let (reached, bits) =
            if len > 24 { (1, DENY_REACHES) } else { (1u32 << (24 - len), DENY_REACHES | DENY_COVERS) };
        for net in from..from + reached {
            out[(net / NETS_PER_WORD) as usize] |= bits << (2 * (net % NETS_PER_WORD));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word straight from the definition: a /24's low bit is set when a prefix overlaps
    /// it, its high bit when a prefix of /24 or shorter contains it.
    fn by_definition(prefixes: &BTreeSet<(u32, u8)>, word: u32) -> u64 {
        let mut out = 0;
        for i in 0..NETS_PER_WORD {
            let net = (word * NETS_PER_WORD + i) << 8;
            let overlaps = prefixes.iter().any(|&(addr, len)| {
                let m = mask(len.min(24));
                addr & m == net & m
            });
            let covers = prefixes.iter().any(|&(addr, len)| len <= 24 && addr & mask(len) == net & mask(len));
            let bits = if covers { DENY_REACHES | DENY_COVERS } else { u64::from(overlaps) * DENY_REACHES };
            out |= bits << (2 * i);
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
            touched.insert(first / NETS_PER_WORD);
            touched.insert((first + count - 1) / NETS_PER_WORD);
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
        const BOTH: u64 = DENY_REACHES | DENY_COVERS;
        let mut prefixes = BTreeSet::new();
        prefixes.insert(normal(v4([192, 0, 2, 0]), 23));
        prefixes.insert(normal(v4([192, 0, 4, 9]), 32));
        let first = v4([192, 0, 0, 0]) >> 8;
        // 192.0.0-7.0/24: the /23 covers .2 and .3, the host reaches into .4.
        let expected = (BOTH << 4) | (BOTH << 6) | (DENY_REACHES << 8);
        assert_eq!(marked(&prefixes, first, 8), vec![expected]);
        assert_eq!(marked(&prefixes, first, 32), vec![expected]);
        assert_eq!(marked(&prefixes, v4([192, 0, 2, 0]) >> 8, 1), vec![BOTH]);
        prefixes.insert((0, 0));
        assert_eq!(marked(&prefixes, first, 32), vec![u64::MAX]);
        assert_eq!(marked(&prefixes, first, 64), vec![u64::MAX; 2]);
        assert_eq!(marked(&prefixes, first, 2), vec![0b1111]);
    }
}
