//! Building the ring a service's new flows are scheduled from.
//!
//! Round-robin takes the ring in order; weighted round-robin spreads each backend through
//! the ring in proportion to its weight (the smooth sequence nginx uses, so a heavy backend's
//! turns are interleaved rather than bunched); Maglev fills a prime-sized table from
//! per-backend permutations seeded by the backend's name, so every foobar node with the same
//! backend set builds the same table, and a backend leaving moves few slots.

/// The ring array's regions: each service takes one for its two ring halves, first fit.
#[derive(Clone, Debug)]
pub struct RingSpace {
    size: u32,
    /// Regions in use, `(start, length)`, by start.
    used: Vec<(u32, u32)>,
}

impl RingSpace {
    pub fn new(size: u32) -> RingSpace {
        RingSpace { size, used: Vec::new() }
    }

    /// The start of a free region of `len` slots.
    pub fn allocate(&mut self, len: u32) -> Option<u32> {
        let mut at = 0u32;
        for (i, &(start, used)) in self.used.iter().enumerate() {
            if start - at >= len {
                self.used.insert(i, (at, len));
                return Some(at);
            }
            at = start + used;
        }
        (self.size.checked_sub(at)? >= len).then(|| {
            self.used.push((at, len));
            at
        })
    }

    /// Frees the region starting at `start`.
    pub fn free(&mut self, start: u32) {
        self.used.retain(|&(s, _)| s != start);
    }
}

/// A backend as ring building sees it: its id in the data plane, name and weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    pub name: String,
    pub weight: u32,
}

/// The members in order, once each.
pub fn round_robin(members: &[Member]) -> Vec<u32> {
    members.iter().map(|m| m.id).collect()
}

/// Smooth weighted round-robin over one full cycle (length = sum of weights, capped at `max`).
pub fn weighted(members: &[Member], max: usize) -> Vec<u32> {
    let total: i64 = members.iter().map(|m| i64::from(m.weight)).sum();
    let len = (total as usize).min(max);
    let mut current = vec![0i64; members.len()];
    let mut ring = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        for (i, m) in members.iter().enumerate() {
            current[i] += i64::from(m.weight);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        ring.push(members[best].id);
    }
    ring
}

/// A Maglev lookup table of `size` slots (size must be prime).
pub fn maglev(members: &[Member], size: usize) -> Vec<u32> {
    if members.is_empty() || size == 0 {
        return Vec::new();
    }
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|m| {
            let offset = fnv1a(m.name.as_bytes(), 0xcbf2_9ce4_8422_2325) % size as u64;
            let skip = fnv1a(m.name.as_bytes(), 0x8422_2325_cbf2_9ce4) % (size as u64 - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; members.len()];
    let mut table = vec![u32::MAX; size];
    let mut filled = 0;
    'fill: loop {
        for (i, m) in members.iter().enumerate() {
            // Weighted Maglev: a member takes `weight` turns per round.
            for _ in 0..m.weight.max(1) {
                loop {
                    let (offset, skip) = perms[i];
                    let slot = ((offset + next[i] * skip) % size as u64) as usize;
                    next[i] += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = m.id;
                        filled += 1;
                        break;
                    }
                }
                if filled == size {
                    break 'fill;
                }
            }
        }
    }
    table
}

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, u32)]) -> Vec<Member> {
        spec.iter().enumerate().map(|(i, (n, w))| Member { id: i as u32, name: (*n).to_owned(), weight: *w }).collect()
    }

    #[test]
    fn ring_space_fits_first_and_reuses_freed_regions() {
        let mut space = RingSpace::new(100);
        assert_eq!(space.allocate(40), Some(0));
        assert_eq!(space.allocate(40), Some(40));
        assert_eq!(space.allocate(40), None, "20 slots left");
        space.free(0);
        assert_eq!(space.allocate(30), Some(0));
        assert_eq!(space.allocate(10), Some(30));
        assert_eq!(space.allocate(20), Some(80));
        assert_eq!(space.allocate(1), None);
    }

    #[test]
    fn weighted_is_proportional_and_interleaved() {
        let ring = weighted(&members(&[("a", 5), ("b", 1), ("c", 1)]), 1000);
        assert_eq!(ring, [0, 0, 1, 0, 2, 0, 0]);
        let ring = weighted(&members(&[("a", 1), ("b", 1)]), 1000);
        assert_eq!(ring, [0, 1]);
    }

    #[test]
    fn maglev_is_balanced_and_moves_little() {
        const M: usize = 65_537;
        let all = members(&[("web1", 1), ("web2", 1), ("web3", 1), ("web4", 1)]);
        let table = maglev(&all, M);
        for id in 0..4 {
            let share = table.iter().filter(|&&x| x == id).count();
            assert!((M / 4 - M / 100..M / 4 + M / 100).contains(&share), "backend {id} has {share} slots");
        }
        // Remove web3: slots of the others stay put, apart from a small fraction.
        let mut three = all.clone();
        three.remove(2);
        let after = maglev(&three, M);
        let moved = table.iter().zip(&after).filter(|(a, b)| **a != 2 && a != b).count();
        assert!(moved < M / 50, "{moved} slots of surviving backends moved");
        // Same names, same table, whichever node computes it.
        assert_eq!(maglev(&all, M), table);
    }
}
