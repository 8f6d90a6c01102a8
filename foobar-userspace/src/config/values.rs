//! Value types the config spells as strings (CIDRs live in [`crate::net`]).

use std::{str::FromStr, time::Duration};

pub use crate::net::Cidr;

use serde::{Deserialize, Deserializer, de};

/// A duration written with a unit: `500ms`, `2s`, `1m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("`{0}` is not a duration (e.g. \"500ms\", \"2s\", \"1m30s\")")]
    NotANumber(String),
    #[error("`{0}`: duration unit must be ms, s or m")]
    Unit(String),
}

impl FromStr for Span {
    type Err = SpanError;

    /// One or more `<number><unit>` parts, largest first as people write them: `1m30s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rest = s;
        let mut total = Duration::ZERO;
        if rest.is_empty() {
            return Err(SpanError::NotANumber(s.to_owned()));
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let (n, after) = rest.split_at(digits);
            let n: u64 = n.parse().map_err(|_| SpanError::NotANumber(s.to_owned()))?;
            let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            total += match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n * 60),
                _ => return Err(SpanError::Unit(s.to_owned())),
            };
            rest = next;
        }
        Ok(Span(total))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!("500ms".parse::<Span>(), Ok(Span(Duration::from_millis(500))));
        assert_eq!("2s".parse::<Span>(), Ok(Span(Duration::from_secs(2))));
        assert!("2".parse::<Span>().is_err());
        assert!("fast".parse::<Span>().is_err());
        assert!("5h".parse::<Span>().is_err());
        assert_eq!("1m30s".parse::<Span>(), Ok(Span(Duration::from_secs(90))));
        assert_eq!("2s500ms".parse::<Span>(), Ok(Span(Duration::from_millis(2500))));
        assert!("1m30".parse::<Span>().is_err() && "".parse::<Span>().is_err() && "s".parse::<Span>().is_err());
    }
}
