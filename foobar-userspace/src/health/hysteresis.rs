//! Rise/fall hysteresis: a backend changes state only after `rise` consecutive successes (to
//! healthy) or `fall` consecutive failures (to unhealthy), so one lost probe moves nothing.

/// A backend's health as its checks see it. Starts healthy, as HAProxy's servers do, so that a
/// (re)started daemon keeps sending traffic while it learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    healthy: bool,
    /// Consecutive results that disagree with the current state.
    streak: u32,
}

impl Hysteresis {
    pub fn new(rise: u32, fall: u32) -> Self {
        Hysteresis { rise: rise.max(1), fall: fall.max(1), healthy: true, streak: 0 }
    }

    /// The same state and streak under new thresholds (a reload that changed them).
    pub fn retuned(self, rise: u32, fall: u32) -> Self {
        Hysteresis { rise: rise.max(1), fall: fall.max(1), ..self }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Whether the last result agreed with the state (no change is under way).
    pub fn settled(&self) -> bool {
        self.streak == 0
    }

    /// Unhealthy at once, whatever the streak (passive health's verdict); `rise` successes
    /// bring it back. Returns the new state when it changes.
    pub fn fail_now(&mut self) -> Option<bool> {
        let was = self.healthy;
        self.healthy = false;
        self.streak = 0;
        was.then_some(false)
    }

    /// Records one probe result; returns the new state when it changes.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy { self.fall } else { self.rise };
        if self.streak >= needed {
            self.healthy = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_only_after_fall_failures_and_rise_successes() {
        let mut h = Hysteresis::new(2, 3);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None, "a success resets the failure streak");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(false));
        assert!(!h.healthy());
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None, "a failure resets the success streak");
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true));
        assert_eq!(h.record(true), None, "no repeated change");
        assert_eq!(h.record(false), None);
        assert_eq!(h.fail_now(), Some(false), "passive health: down at once");
        assert_eq!(h.fail_now(), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true), "back after rise checks");
    }
}
