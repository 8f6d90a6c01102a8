//! The seeds' topology itself: every host where DESIGN.md puts it, reachable only as designed.

use foobar_tests::{gate::Need, nginx, topology::*};
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    vec![gated("stack::client_reaches_web_servers_only_through_the_node", &[Need::Root], routed_stack)]
}

fn routed_stack() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    for (addr, name) in [(WEB1, "web1"), (WEB2, "web2")] {
        let body = stack.client.exec(&["curl", "-sS", "--max-time", "3", &format!("http://{addr}/")]);
        assert_eq!(body.trim(), format!("{name} {CLIENT}"));
    }
    // No host has a default route except the private hosts' one via the node: nothing leaves the lab.
    for (role, ns) in stack.hosts() {
        let routes = ns.ip(&["route", "show", "default"]);
        let expected = matches!(role, "web1" | "web2" | "app" | "db1" | "db2");
        assert_eq!(!routes.trim().is_empty(), expected, "{role}: default route {routes:?}");
        if expected {
            assert!(routes.contains(NODE_BACK), "{role} routes out via {routes}");
        }
    }
    let hops = stack.client.exec(&["ip", "route", "get", DB1]);
    assert!(hops.contains(&format!("via {NODE_FRONT}")), "client reaches db1 via {hops}");
}
