//! Reading the per-CPU counter array: each slot summed over all CPUs.

use aya::maps::{Map, PerCpuArray};
use foobar_common::counters::Counter;

use super::DataplaneError;

/// Every counter's value at one moment, indexed by [`Counter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot(Vec<u64>);

impl CounterSnapshot {
    /// The value of one counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }

    /// Counter minus its value in `earlier` (counters only grow).
    pub fn since(&self, earlier: &CounterSnapshot, c: Counter) -> u64 {
        self.get(c).saturating_sub(earlier.get(c))
    }

    /// Non-zero counters with their names, in slot order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c))).filter(|&(_, v)| v > 0)
    }
}

pub(super) fn read(map: &Map) -> Result<CounterSnapshot, DataplaneError> {
    let array = PerCpuArray::<_, u64>::try_from(map)?;
    let values = Counter::ALL
        .iter()
        .map(|&c| Ok(array.get(&(c as u32), 0)?.iter().sum()))
        .collect::<Result<Vec<u64>, DataplaneError>>()?;
    Ok(CounterSnapshot(values))
}
