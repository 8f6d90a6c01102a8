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

/// A ring of `len` slots for least-connections: `arrivals` new flows (those expected before
/// the next census) are shared out so that afterwards each member's live flows per unit of
/// weight (`loads`, by member) are as even as they can be ("water-filling"): a member already
/// above the level gets none. Each share then takes its part of the ring, interleaved.
pub fn least_connections(members: &[Member], loads: &[u64], arrivals: u64, len: usize) -> Vec<u32> {
    let weight = |m: &Member| f64::from(m.weight.max(1));
    let load = |i: usize| loads.get(i).copied().unwrap_or(0) as f64;
    let arrivals = arrivals.max(1) as f64;
    // The level L at which sum(max(0, L * w - load)) = arrivals, found over the members
    // sorted by their load per weight.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| (load(a) / weight(&members[a])).total_cmp(&(load(b) / weight(&members[b]))));
    let (mut level, mut weights, mut loaded) = (0.0, 0.0, 0.0);
    for (n, &i) in order.iter().enumerate() {
        weights += weight(&members[i]);
        loaded += load(i);
        level = (arrivals + loaded) / weights;
        let next = order.get(n + 1).map(|&j| load(j) / weight(&members[j]));
        if next.is_none_or(|x| x >= level) {
            break;
        }
    }
    let shares: Vec<Member> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let share = (level * weight(m) - load(i)).max(0.0) / arrivals * len as f64;
            Member { weight: share.round() as u32, ..m.clone() }
        })
        .filter(|m| m.weight > 0)
        .collect();
    if shares.is_empty() {
        // Every share rounded away: the least loaded member takes them all.
        return order.first().map(|&i| vec![members[i].id]).unwrap_or_default();
    }
    weighted(&shares, len)
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
    fn least_connections_fills_the_least_loaded_up_to_a_level() {
        let share = |ring: &[u32], id: u32| ring.iter().filter(|&&x| x == id).count();
        let two = members(&[("web1", 1), ("web2", 1)]);
        // 12 flows on web1, none on web2, 10 expected: all go to web2.
        let ring = least_connections(&two, &[12, 0], 10, 64);
        assert_eq!((share(&ring, 0), share(&ring, 1)), (0, 64));
        // 3 and 0, 5 expected: level 4, so web1 takes 1 in 5 and web2 4 in 5.
        let ring = least_connections(&two, &[3, 0], 5, 64);
        assert!((12..=14).contains(&share(&ring, 0)) && share(&ring, 0) + share(&ring, 1) == ring.len(), "{ring:?}");
        // Even loads: by weight, interleaved.
        let weighted = members(&[("a", 2), ("b", 1)]);
        let ring = least_connections(&weighted, &[0, 0], 3, 6);
        assert_eq!(ring, [0, 1, 0, 0, 1, 0]);
        // Idle: nothing expected still leaves a ring, on the least loaded.
        assert_eq!(least_connections(&two, &[5, 2], 0, 8), [1; 8]);
        assert!(least_connections(&[], &[], 3, 8).is_empty());
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
