//! Addresses as the data plane keeps them: four raw 32-bit words holding the bytes in
//! network order (IPv4 in word 0), so they copy straight from packets into map keys.

/// Address family tags used in map keys.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Whether `a` and `b` agree on their first `bits` bits (0..=128).
#[inline(always)]
pub fn prefix_match(a: &[u32; 4], b: &[u32; 4], bits: u32) -> bool {
    let mut left = bits;
    for i in 0..4 {
        if left == 0 {
            return true;
        }
        let take = if left >= 32 { 32 } else { left };
        let mask = if take == 32 { u32::MAX } else { !(u32::MAX >> take) };
        if (u32::from_be(a[i]) ^ u32::from_be(b[i])) & mask != 0 {
            return false;
        }
        left -= take;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u32; 4] {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    #[test]
    fn prefixes() {
        assert!(prefix_match(&v4([192, 0, 2, 7]), &v4([192, 0, 2, 0]), 24));
        assert!(!prefix_match(&v4([192, 0, 3, 7]), &v4([192, 0, 2, 0]), 24));
        assert!(prefix_match(&v4([10, 0, 0, 1]), &v4([192, 0, 2, 0]), 0));
        assert!(prefix_match(&v4([192, 0, 2, 7]), &v4([192, 0, 2, 7]), 32));
        assert!(!prefix_match(&v4([192, 0, 2, 7]), &v4([192, 0, 2, 6]), 32));
        assert!(prefix_match(&v4([192, 0, 2, 1]), &v4([192, 0, 2, 0]), 31));
    }

    #[test]
    fn every_prefix_length_agrees_with_a_bitwise_reading() {
        let a = [0x2001_0db8u32.to_be(), 0x0000_0001u32.to_be(), 0xdead_beefu32.to_be(), 0x0000_0010u32.to_be()];
        for flip in 0..128u32 {
            let mut b = a;
            let word = (flip / 32) as usize;
            b[word] = (u32::from_be(b[word]) ^ (1 << (31 - flip % 32))).to_be();
            for bits in 0..=128u32 {
                // The two agree exactly on the bits before the flipped one.
                assert_eq!(prefix_match(&a, &b, bits), bits <= flip, "flip {flip}, prefix {bits}");
            }
        }
    }
}
