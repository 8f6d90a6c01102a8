//! SipHash-2-4 over whole 64-bit words: the keyed MAC SYN cookies carry. Written for the
//! verifier (constant loop bounds, no tables) so the kernel and the host compute the same.

/// One SipRound over the state.
#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 of `words` (as the little-endian bytes of each word, in order) under `key`.
#[inline(always)]
pub fn siphash24(key: &[u64; 2], words: &[u64; 6]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    for &m in words {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    // The final block: no tail bytes, the message length (48) in the top byte.
    let b = 48u64 << 56;
    v[3] ^= b;
    round(&mut v);
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 48-byte message 0, 1, ..., 47 under the key 0, 1, ..., 15, as the reference
    /// algorithm computes it (checked against a separate implementation that reproduces the
    /// reference vectors, e.g. the empty message's 0x726fdb47dd0e0e31).
    #[test]
    fn matches_the_reference_vector() {
        let key = [u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]), u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])];
        let mut words = [0u64; 6];
        for (i, w) in words.iter_mut().enumerate() {
            let b = (i * 8) as u8;
            *w = u64::from_le_bytes([b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7]);
        }
        let expected = u64::from_le_bytes([81, 169, 203, 158, 203, 163, 18, 230]);
        assert_eq!(siphash24(&key, &words), expected);
    }
}
