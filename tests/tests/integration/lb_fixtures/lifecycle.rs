//! One data plane serving NAT (IPv4, IPv6), DSR and services with no backend up, run through
//! every table in order: later cases meet the flows earlier ones started.

use super::{dsr, flows, icmp, ipv6, lab::*, refuse, untouched};

pub fn run() {
    let mut lab = Lab::new();
    let n = Router::build(&mut lab);
    let _inside = n.ns.enter();
    let mut dp = fixture_dataplane();
    let mut services = Services::new();
    let web = || vec![backend("web1", "198.51.100.11"), backend("web2", "198.51.100.12")];
    services.add(&mut dp, service("www", "192.0.2.10", 80, 6, Mode::Nat, web())).expect("www");
    services
        .add(
            &mut dp,
            service(
                "www6",
                "2001:db8:1::10",
                80,
                6,
                Mode::Nat,
                vec![backend("web1", "2001:db8:2::11"), backend("web2", "2001:db8:2::12")],
            ),
        )
        .expect("www6");
    services
        .add(&mut dp, service("dns", "192.0.2.53", 53, 17, Mode::Dsr, vec![backend("app", "198.51.100.21")]))
        .expect("dns");
    services
        .add(&mut dp, service("empty", "192.0.2.10", 8080, 6, Mode::Nat, vec![backend("web1", "198.51.100.11")]))
        .expect("empty");
    services.set_state(&mut dp, "empty", "web1", BackendState::Down).expect("down");
    services
        .add(&mut dp, service("empty6", "2001:db8:1::10", 8080, 6, Mode::Nat, vec![backend("web1", "2001:db8:2::11")]))
        .expect("empty6");
    services.set_state(&mut dp, "empty6", "web1", BackendState::Down).expect("down");

    let cases =
        [flows::cases(&n), ipv6::cases(&n), dsr::cases(&n), icmp::cases(&n), refuse::cases(&n), untouched::cases(&n)];
    run_cases(&dp, Trust::Trusted, cases.into_iter().flatten().collect());
}
