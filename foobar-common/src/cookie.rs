//! SYN cookies: the initial sequence number the SYN proxy answers a client's SYN with, so that
//! the client's ACK proves it saw the SYN-ACK (its address is real) while nothing was kept for it.
//!
//! A cookie is 32 bits: 27 bits of a SipHash-2-4 MAC over both addresses, both ports, the
//! client's ISN and a time slot, under a key only the daemon knows; then the slot's low 3
//! bits; then a 2-bit index into the MSS table. A slot is 2^36 ns (68.7 s), and a cookie is
//! good in its slot and the next, so a handshake has at least 68 s to complete.
//!
//! Window scale and SACK, which a cookie has no room for, ride in the low bits of the
//! timestamp the SYN-ACK sends, as the kernel's own SYN cookies carry them: the client echoes
//! it in its ACK. A client that sends no timestamps gets neither, as from the kernel.

use crate::siphash::siphash24;

/// MSS values a cookie can carry, by index: the largest not above the client's is chosen.
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
pub const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The window scale the SYN proxy offers clients (Linux's for a default-sized receive buffer).
pub const PROXY_WSCALE: u8 = 7;
/// The MSS the SYN proxy offers clients: what an Ethernet path to the backends carries.
pub const PROXY_MSS_V4: u16 = 1460;
pub const PROXY_MSS_V6: u16 = 1440;

/// Low bits of the SYN-ACK's timestamp that carry the client's options.
pub const TS_OPTION_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
/// The largest window scale TCP allows (RFC 7323).
pub const MAX_WSCALE: u8 = 14;

/// The time slot a cookie made at `now_ns` (CLOCK_MONOTONIC) carries.
#[inline(always)]
pub fn slot(now_ns: u64) -> u32 {
    (now_ns >> 36) as u32 & 7
}

/// The flow a cookie is bound to: addresses (raw words), ports (host order), the client's ISN.
pub struct Handshake<'a> {
    pub client: &'a [u32; 4],
    pub vip: &'a [u32; 4],
    pub client_port: u16,
    pub vip_port: u16,
    pub client_isn: u32,
}

#[inline(always)]
fn mac(key: &[u64; 2], h: &Handshake, slot: u32) -> u32 {
    let pair = |a: &[u32; 4], i: usize| (u64::from(a[i]) << 32) | u64::from(a[i + 1]);
    let ports = (u64::from(h.client_port) << 48) | (u64::from(h.vip_port) << 32) | u64::from(h.client_isn);
    let words = [pair(h.client, 0), pair(h.client, 2), pair(h.vip, 0), pair(h.vip, 2), ports, u64::from(slot)];
    siphash24(key, &words) as u32
}

/// The cookie for handshake `h` at slot `slot`, carrying MSS index `mss_index` (0..=3).
#[inline(always)]
pub fn make(key: &[u64; 2], h: &Handshake, slot: u32, mss_index: u32) -> u32 {
    (mac(key, h, slot) & !0x1f) | ((slot & 7) << 2) | (mss_index & 3)
}

/// The MSS index `cookie` carries if it is the cookie of `h` made in slot `now_slot` or the
/// one before; `None` for anything else.
#[inline(always)]
pub fn check(key: &[u64; 2], h: &Handshake, cookie: u32, now_slot: u32) -> Option<u32> {
    let slot = (cookie >> 2) & 7;
    if slot != now_slot & 7 && slot != now_slot.wrapping_sub(1) & 7 {
        return None;
    }
    let mss_index = cookie & 3;
    (make(key, h, slot, mss_index) == cookie).then_some(mss_index)
}

/// The index of the largest MSS of `table` not above `mss` (0 when even the first is).
#[inline(always)]
pub fn mss_index(table: &[u16; 4], mss: u16) -> u32 {
    let mut index = 0;
    for (i, &m) in table.iter().enumerate() {
        if m <= mss {
            index = i as u32;
        }
    }
    index
}

/// The timestamp a SYN-ACK sends: the clock in ms with the client's window scale (none:
/// 0xf) and SACK in its low bits.
#[inline(always)]
pub fn timestamp(now_ms: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let ws = match wscale {
        Some(w) => u32::from(if w < MAX_WSCALE { w } else { MAX_WSCALE }),
        None => TS_WSCALE_MASK,
    };
    (now_ms & !((1 << TS_OPTION_BITS) - 1)) | ws | if sack { TS_SACK } else { 0 }
}

/// The client's window scale and SACK from the timestamp it echoes.
#[inline(always)]
pub fn options_of(echoed: u32) -> (Option<u8>, bool) {
    let ws = echoed & TS_WSCALE_MASK;
    let wscale = if ws == TS_WSCALE_MASK { None } else { Some(ws as u8) };
    (wscale, echoed & TS_SACK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake<'a>(client: &'a [u32; 4], vip: &'a [u32; 4], isn: u32) -> Handshake<'a> {
        Handshake { client, vip, client_port: 40000, vip_port: 80, client_isn: isn }
    }

    #[test]
    fn cookies_check_in_their_slot_and_the_next_only() {
        let key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        let (c, v) = ([u32::from_ne_bytes([192, 0, 2, 100]), 0, 0, 0], [u32::from_ne_bytes([192, 0, 2, 10]), 0, 0, 0]);
        let h = handshake(&c, &v, 1000);
        for mss in 0..4 {
            let cookie = make(&key, &h, 5, mss);
            assert_eq!(check(&key, &h, cookie, 5), Some(mss));
            assert_eq!(check(&key, &h, cookie, 6), Some(mss), "the next slot");
            assert_eq!(check(&key, &h, cookie, 7), None, "two slots later");
            assert_eq!(check(&key, &h, cookie, 4), None, "a slot before it was made");
        }
        let cookie = make(&key, &h, 7, 1);
        assert_eq!(check(&key, &h, cookie, 0), Some(1), "slots wrap");
        // Any other flow, ISN or key fails.
        let other = handshake(&c, &v, 1001);
        assert_eq!(check(&key, &other, cookie, 7), None);
        let port = Handshake { client_port: 40001, ..handshake(&c, &v, 1000) };
        assert_eq!(check(&key, &port, cookie, 7), None);
        assert_eq!(check(&[1, 2], &h, cookie, 7), None);
        assert_eq!(check(&key, &h, cookie ^ 0x100, 7), None, "a flipped MAC bit");
    }

    #[test]
    fn forged_cookies_pass_about_once_in_2_to_the_27() {
        let key = [7, 11];
        let (c, v) = ([u32::from_ne_bytes([203, 0, 113, 5]), 0, 0, 0], [u32::from_ne_bytes([192, 0, 2, 10]), 0, 0, 0]);
        let passed =
            (0..200_000u32).filter(|&isn| check(&key, &handshake(&c, &v, isn), 0x1234_5601, 0).is_some()).count();
        assert_eq!(passed, 0);
    }

    #[test]
    fn mss_and_options_round_trip() {
        assert_eq!(MSS_V4[mss_index(&MSS_V4, 1460) as usize], 1460);
        assert_eq!(MSS_V4[mss_index(&MSS_V4, 1400) as usize], 1300);
        assert_eq!(MSS_V4[mss_index(&MSS_V4, 100) as usize], 536);
        assert_eq!(MSS_V6[mss_index(&MSS_V6, 1440) as usize], 1440);
        for ws in [None, Some(0), Some(7), Some(14)] {
            for sack in [false, true] {
                let ts = timestamp(123_456, ws, sack);
                assert_eq!(options_of(ts), (ws, sack));
                assert_eq!(ts >> TS_OPTION_BITS, 123_456 >> TS_OPTION_BITS);
            }
        }
        assert_eq!(options_of(timestamp(0, Some(20), false)).0, Some(14), "capped at 14");
    }
}
