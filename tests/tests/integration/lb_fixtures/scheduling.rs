//! Weighted round-robin, Maglev agreeing across nodes, active-passive backups, and the active-flow count.

use super::lab::*;

pub fn run() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let weighted = |w1, w2| {
        vec![
            BackendSpec { weight: w1, ..backend("web1", "198.51.100.11") },
            BackendSpec { weight: w2, ..backend("web2", "198.51.100.12") },
        ]
    };
    // Two independent data planes stand for two foobar nodes with the same configuration.
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut dp = Dataplane::load().expect("load");
        let mut services = Services::new();
        services.add(&mut dp, with_scheduler("wrr", 81, Scheduler::WeightedRoundRobin, weighted(3, 1))).expect("wrr");
        services.add(&mut dp, with_scheduler("maglev", 82, Scheduler::Maglev, weighted(1, 1))).expect("maglev");
        let backup =
            vec![backend("web1", "198.51.100.11"), BackendSpec { backup: true, ..backend("web2", "198.51.100.12") }];
        services.add(&mut dp, with_scheduler("ha", 83, Scheduler::RoundRobin, backup)).expect("ha");
        nodes.push((dp, services));
    }

    // Weighted round-robin: 3:1, interleaved.
    let (dp, services) = &mut nodes[0];
    let picks: Vec<u8> = (0..8).map(|i| pick(dp, &n, 2000 + i, 81)).collect();
    assert_eq!(picks.iter().filter(|&&b| b == 0x11).count(), 6, "weights 3:1 over 8 flows: {picks:02x?}");
    assert_ne!(picks[..4], [0x11; 4], "weighted turns must interleave: {picks:02x?}");

    // Active-passive: the backup takes new flows only while the primary is down.
    let ha: Vec<u8> = (0..4).map(|i| pick(dp, &n, 3000 + i, 83)).collect();
    assert_eq!(ha, [0x11; 4], "the backup took flows while the primary was up");
    services.set_state(dp, "ha", "web1", BackendState::Down).expect("down");
    let ha: Vec<u8> = (0..4).map(|i| pick(dp, &n, 3100 + i, 83)).collect();
    assert_eq!(ha, [0x12; 4], "the backup did not take over");
    services.set_state(dp, "ha", "web1", BackendState::Up).expect("up");
    assert_eq!(pick(dp, &n, 3200, 83), 0x11, "the primary did not come back");

    // Maglev: both nodes send each flow to the same backend, and both backends get flows.
    let a: Vec<u8> = (0..64).map(|i| pick(&nodes[0].0, &n, 4000 + i, 82)).collect();
    let b: Vec<u8> = (0..64).map(|i| pick(&nodes[1].0, &n, 4000 + i, 82)).collect();
    assert_eq!(a, b, "two nodes disagreed on Maglev picks");
    assert!(a.contains(&0x11) && a.contains(&0x12), "Maglev used one backend only: {a:02x?}");
}

/// The active-flow count `status` and `/metrics` report reads the connection table in batches
/// of 4096 entries; more flows than several batches hold must all be counted, per backend too.
pub fn active_count() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let mut dp = Dataplane::load().expect("load");
    let mut services = Services::new();
    let backends = vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    services.add(&mut dp, with_scheduler("rr", 84, Scheduler::RoundRobin, backends)).expect("rr");
    const FLOWS: u16 = 10_000;
    for sport in 10_000..10_000 + FLOWS {
        pick(&dp, &n, sport, 84);
    }
    let active = dp.active_flows().expect("active flows");
    let per_service: Vec<u64> = active.by_service.values().copied().collect();
    assert_eq!(per_service, [u64::from(FLOWS)], "flows per service");
    let mut per_backend: Vec<u64> = active.by_backend.values().copied().collect();
    per_backend.sort_unstable();
    assert_eq!(per_backend, [u64::from(FLOWS) / 2; 2], "round-robin flows per backend");
}
