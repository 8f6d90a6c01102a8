//! How long passive health keeps a backend out, as Envoy's outlier detection does: the first
//! ejection lasts `ejection_time`, each one after it twice the last (up to [`MAX_DOUBLINGS`]),
//! and every `ejection_time` spent back in rotation forgets one. A backend whose checks pass
//! but whose traffic fails thus leaves for longer each time instead of flapping every `rise`.

use std::time::{Duration, Instant};

/// Doublings at most: the longest ejection is `ejection_time` × 2^4.
pub const MAX_DOUBLINGS: u32 = 4;

/// One backend's ejections.
#[derive(Clone, Debug, Default)]
pub struct Ejection {
    /// Out until then; `None` while in rotation.
    until: Option<Instant>,
    /// Ejections that still count (the multiplier's exponent plus one).
    count: u32,
    /// When the last ejection ended.
    back_at: Option<Instant>,
}

impl Ejection {
    /// Whether it is out now (until [`Ejection::release`] ends it).
    pub fn active(&self) -> bool {
        self.until.is_some()
    }

    /// Ejects at `now` for `base` doubled by the ejections that still count; how long, and
    /// the how-manieth it is. `None` when already out.
    pub fn eject(&mut self, now: Instant, base: Duration) -> Option<(Duration, u32)> {
        if self.until.is_some() {
            return None;
        }
        if let Some(back) = self.back_at {
            let forgotten = now.saturating_duration_since(back).as_nanos() / base.as_nanos().max(1);
            self.count = self.count.saturating_sub(u32::try_from(forgotten).unwrap_or(u32::MAX));
        }
        self.count = self.count.saturating_add(1);
        let hold = base.saturating_mul(1 << (self.count - 1).min(MAX_DOUBLINGS));
        self.until = Some(now + hold);
        Some((hold, self.count))
    }

    /// Ends the ejection once it is due; whether it ended now.
    pub fn release(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if now >= until => {
                self.until = None;
                self.back_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// How much longer it is out.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until.map(|u| u.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ejection_doubles_and_time_in_rotation_forgets() {
        let (base, t0) = (Duration::from_secs(10), Instant::now());
        let mut e = Ejection::default();
        assert_eq!(e.eject(t0, base), Some((base, 1)));
        assert_eq!(e.eject(t0 + Duration::from_secs(1), base), None, "already out");
        assert!(!e.release(t0 + Duration::from_secs(9)) && e.active());
        assert!(e.release(t0 + Duration::from_secs(10)) && !e.active());
        // Out again a second after it came back: twice as long, then four times.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(e.eject(t1, base), Some((base * 2, 2)));
        assert!(e.release(t1 + base * 2));
        assert_eq!(e.eject(t1 + base * 2, base), Some((base * 4, 3)));
        assert!(e.release(t1 + base * 6));
        // 25 s in rotation forgets two of the three: the next one lasts twice the base.
        let t2 = t1 + base * 6 + Duration::from_secs(25);
        assert_eq!(e.eject(t2, base), Some((base * 2, 2)));
        // Never more than 2^4 times the base.
        let mut many = Ejection::default();
        let mut now = t0;
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            last = many.eject(now, base).map(|(h, _)| h).unwrap_or_default();
            now += last;
            many.release(now);
        }
        assert_eq!(last, base * 16);
    }
}
