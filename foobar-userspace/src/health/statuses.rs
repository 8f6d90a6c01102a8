//! Which HTTP statuses pass a check: one code, a class or a range, as operators write them
//! (`200`, `"2xx"`, `"200-399"`).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, de};

/// The statuses from `low` to `high`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statuses {
    pub low: u16,
    pub high: u16,
}

impl Statuses {
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl fmt::Display for Statuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high { write!(f, "{}", self.low) } else { write!(f, "{}-{}", self.low, self.high) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an HTTP status, class or range (e.g. 200, \"2xx\", \"200-399\")")]
pub struct StatusesError(String);

impl FromStr for Statuses {
    type Err = StatusesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StatusesError(s.to_owned());
        let code = |t: &str| t.parse::<u16>().ok().filter(|c| (100..=599).contains(c)).ok_or_else(bad);
        let range = if let Some(class) = s.strip_suffix("xx").filter(|c| c.len() == 1) {
            let low = code(&format!("{class}00"))?;
            Statuses { low, high: low + 99 }
        } else if let Some((low, high)) = s.split_once('-') {
            Statuses { low: code(low)?, high: code(high)? }
        } else {
            let c = code(s)?;
            Statuses { low: c, high: c }
        };
        if range.low > range.high {
            return Err(bad());
        }
        Ok(range)
    }
}

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spelled {
            Code(u16),
            Text(String),
        }
        match Spelled::deserialize(d)? {
            Spelled::Code(c) => c.to_string().parse(),
            Spelled::Text(t) => t.parse(),
        }
        .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classes_and_ranges() {
        let s = |t: &str| t.parse::<Statuses>();
        assert_eq!(s("200"), Ok(Statuses { low: 200, high: 200 }));
        assert_eq!(s("2xx"), Ok(Statuses { low: 200, high: 299 }));
        assert_eq!(s("200-399"), Ok(Statuses { low: 200, high: 399 }));
        for bad in ["20", "2x", "xx", "399-200", "700", "ok", "1xx0", ""] {
            assert!(s(bad).is_err(), "{bad}");
        }
        let two = s("2xx").expect("2xx");
        assert!(two.contains(204) && !two.contains(301));
    }
}
