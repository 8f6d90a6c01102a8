//! A one-namespace stand-in for the foobar node where the kernel's FIB answers are fixed:
//! `front` and `back` veths (peers in the same namespace) with DESIGN's addresses, forwarding
//! on, and permanent neighbour entries for the client (`..:64`) and backends (`..:11`, `..:12`,
//! `..:21`). Packet fixtures and the data-plane benchmark run XDP here with `ingress_ifindex`
//! set, so redirects and rewritten MACs come out the same every time.

use crate::netns::{Lab, Netns};

/// The XDP test context (`struct xdp_md`) for a frame of `len` bytes arriving on `ifindex`:
/// `data_end` at offset 4 and `ingress_ifindex` at offset 12, as BPF_PROG_TEST_RUN reads them.
pub fn xdp_md(len: usize, ifindex: u32) -> [u8; 24] {
    let mut md = [0u8; 24];
    md[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    md[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    md
}

/// The MAC the router's neighbour table gives a host whose address ends in `last`.
pub fn mac_of(last: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, last]
}

pub struct Router {
    pub ns: Netns,
    pub front: u32,
    pub back: u32,
    pub front_mac: [u8; 6],
    pub back_mac: [u8; 6],
}

fn ifindex(ns: &Netns, iface: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", iface]);
    out.split(':').next().and_then(|n| n.trim().parse().ok()).expect("ifindex")
}

impl Router {
    pub fn build(lab: &mut Lab) -> Router {
        let ns = lab.ns("router");
        lab.veth(&ns, "front", &ns, "front-peer");
        lab.veth(&ns, "back", &ns, "back-peer");
        for a in ["192.0.2.2/24", "192.0.2.10/32", "192.0.2.53/32", "2001:db8:1::2/64", "2001:db8:1::10/128"] {
            ns.addr("front", a);
        }
        ns.addr("back", "198.51.100.1/24");
        ns.addr("back", "2001:db8:2::1/64");
        ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
        let neigh = |addr: &str, last: u8, dev: &str| {
            let mac = mac_of(last).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            ns.ip(&["neigh", "replace", addr, "lladdr", &mac, "dev", dev, "nud", "permanent"]);
        };
        neigh("192.0.2.100", 0x64, "front");
        neigh("2001:db8:1::100", 0x64, "front");
        for (addr, last) in [("198.51.100.11", 0x11), ("198.51.100.12", 0x12), ("198.51.100.21", 0x21)] {
            neigh(addr, last, "back");
        }
        neigh("2001:db8:2::11", 0x11, "back");
        neigh("2001:db8:2::12", 0x12, "back");
        Router {
            front: ifindex(&ns, "front"),
            back: ifindex(&ns, "back"),
            front_mac: ns.mac("front"),
            back_mac: ns.mac("back"),
            ns,
        }
    }
}
