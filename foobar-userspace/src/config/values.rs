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
    #[error("`{0}` is not a duration (e.g. \"500ms\", \"2s\", \"1m\")")]
    NotANumber(String),
    #[error("`{0}`: duration unit must be ms, s or m")]
    Unit(String),
}

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(digits);
        let n: u64 = n.parse().map_err(|_| SpanError::NotANumber(s.to_owned()))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            _ => return Err(SpanError::Unit(s.to_owned())),
        };
        Ok(Span(d))
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
    }
}
