//! Reading the per-CPU counter arrays: each slot summed over all CPUs, and the fast path's
//! slots added to the counters each stands for (see `FastKind`).

use aya::maps::{Map, PerCpuArray};
use foobar_common::counters::{Counter, FastKind};

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

pub(super) fn read(counters: &Map, fast: &Map) -> Result<CounterSnapshot, DataplaneError> {
    let mut values = sums(counters, Counter::ALL.len())?;
    for (kind, n) in FastKind::ALL.iter().zip(sums(fast, FastKind::ALL.len())?) {
        for &c in kind.counters() {
            values[c as usize] += n;
        }
    }
    Ok(CounterSnapshot(values))
}

/// Slots `0..slots` of a per-CPU array of counters, each summed over the CPUs.
///
/// A counter array pinned by an older build may have fewer slots than this build counts in
/// (the kernel's increments of the missing slots find nothing and do nothing): those read
/// as 0, rather than failing every read of every counter. `Dataplane::load_pinned` warns.
fn sums(map: &Map, slots: usize) -> Result<Vec<u64>, DataplaneError> {
    let present = kernel_slots(map)?;
    let array = PerCpuArray::<_, u64>::try_from(map)?;
    (0..slots as u32).map(|i| if i < present { Ok(array.get(&i, 0)?.iter().sum()) } else { Ok(0) }).collect()
}

/// Slots a counter array has, against the slots this build counts in: `Some((has, wants))`
/// when it has fewer (a pin left by an older build).
pub(super) fn short_of(map: &Map, slots: usize) -> Result<Option<(u32, usize)>, DataplaneError> {
    let present = kernel_slots(map)?;
    Ok(((present as usize) < slots).then_some((present, slots)))
}

/// The slots the kernel's array has: a pinned array keeps its own size, whatever this build's
/// object declares (which is all aya's `len` reports).
fn kernel_slots(map: &Map) -> Result<u32, DataplaneError> {
    match map {
        Map::PerCpuArray(data) => Ok(data.info()?.max_entries()),
        // Not a per-CPU array: `PerCpuArray::try_from` names the mismatch.
        _ => Ok(0),
    }
}
