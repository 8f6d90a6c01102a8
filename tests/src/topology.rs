//! The seeds' foobar.com topology, built from a [`Lab`] with DESIGN.md's addresses.
//!
//! ```text
//! client ─┐                ┌─ web1 198.51.100.11   app 198.51.100.21
//!  (.100) ├─ inet bridge ─ node ─ lan bridge ─┼─ web2 198.51.100.12   db1 198.51.100.31
//!         │   192.0.2.0/24  front│back 198.51.100.0/24              db2 198.51.100.32
//! ```
//!
//! The node's `front` holds 192.0.2.2, the VIP 192.0.2.10 and the DNS address 192.0.2.53;
//! `back` holds 198.51.100.1 and is every private host's default gateway. The client reaches
//! the private net only through the node, so the firewall decides what it can see. web1 and
//! web2 also hold the VIP on loopback for DSR. Both
//! segments are bridges living in their own namespaces; nothing has a route out of the lab.

use crate::netns::{Lab, Netns};

pub const CLIENT: &str = "192.0.2.100";
pub const NODE_FRONT: &str = "192.0.2.2";
pub const VIP: &str = "192.0.2.10";
pub const DNS: &str = "192.0.2.53";
pub const NODE_BACK: &str = "198.51.100.1";
pub const WEB1: &str = "198.51.100.11";
pub const WEB2: &str = "198.51.100.12";
pub const APP: &str = "198.51.100.21";
pub const DB1: &str = "198.51.100.31";
pub const DB2: &str = "198.51.100.32";
pub const CLIENT6: &str = "2001:db8:1::100";
pub const NODE_FRONT6: &str = "2001:db8:1::2";
pub const VIP6: &str = "2001:db8:1::10";
pub const NODE_BACK6: &str = "2001:db8:2::1";

/// The whole stack's namespaces. Dropping it tears the lab down.
pub struct Stack {
    pub client: Netns,
    pub node: Netns,
    pub web1: Netns,
    pub web2: Netns,
    pub app: Netns,
    pub db1: Netns,
    pub db2: Netns,
    /// The switch between the client and the node's front (bridge `br0`, ports `p-client`,
    /// `p-node`).
    pub inet: Netns,
    /// Kept last so namespaces are deleted after everything above is done with them.
    pub lab: Lab,
}

/// A host on the private segment: its namespace role, IPv4 address and IPv6 host part.
const PRIVATE_HOSTS: [(&str, &str, &str); 5] =
    [("web1", WEB1, "11"), ("web2", WEB2, "12"), ("app", APP, "21"), ("db1", DB1, "31"), ("db2", DB2, "32")];

/// How the lab's veths are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offloads {
    /// As the kernel makes a veth, as in any container or bridge network: GRO off on the
    /// switch ports, checksum offload on at the hosts (local senders put partial checksums on
    /// the wire). Native XDP on such a veth forwards nothing; `auto` takes generic mode.
    KernelDefaults,
    /// Tuned so native XDP works on veth as on a NIC (see [`plug`]): for benchmarks that
    /// measure the native path.
    TunedForNativeXdp,
}

impl Stack {
    /// The stack as a user's network has it: veths with the kernel's default offloads.
    pub fn build() -> Stack {
        Stack::build_with(Offloads::KernelDefaults)
    }

    pub fn build_with(offloads: Offloads) -> Stack {
        let plug = |lab: &Lab, host: &Netns, name: &str, switch: &Netns, port: &str| {
            plug(lab, host, name, switch, port, offloads)
        };
        let mut lab = Lab::new();
        let inet = lab.ns("inet");
        let lan = lab.ns("lan");
        for sw in [&inet, &lan] {
            sw.ip(&["link", "add", "br0", "type", "bridge"]);
            sw.ip(&["link", "set", "br0", "up"]);
        }

        let client = lab.ns("client");
        plug(&lab, &client, "eth0", &inet, "p-client");
        client.addr("eth0", &format!("{CLIENT}/24"));
        client.addr("eth0", &format!("{CLIENT6}/64"));
        client.ip(&["route", "add", "198.51.100.0/24", "via", NODE_FRONT]);
        client.ip(&["-6", "route", "add", "2001:db8:2::/64", "via", NODE_FRONT6]);

        let node = lab.ns("node");
        plug(&lab, &node, "front", &inet, "p-node");
        plug(&lab, &node, "back", &lan, "p-node");
        for a in [
            format!("{NODE_FRONT}/24"),
            format!("{VIP}/32"),
            format!("{DNS}/32"),
            format!("{NODE_FRONT6}/64"),
            format!("{VIP6}/128"),
        ] {
            node.addr("front", &a);
        }
        node.addr("back", &format!("{NODE_BACK}/24"));
        node.addr("back", &format!("{NODE_BACK6}/64"));
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);

        let mut hosts = PRIVATE_HOSTS.iter().map(|(role, v4, v6_host)| {
            let ns = lab.ns(role);
            plug(&lab, &ns, "eth0", &lan, &format!("p-{role}"));
            if role.starts_with("web") {
                // For DSR the web servers hold the VIP too, on loopback, and must not answer
                // ARP for it (IPVS direct routing's real-server setup).
                ns.addr("lo", &format!("{VIP}/32"));
                ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"]);
            }
            ns.addr("eth0", &format!("{v4}/24"));
            ns.addr("eth0", &format!("2001:db8:2::{v6_host}/64"));
            ns.ip(&["route", "add", "default", "via", NODE_BACK]);
            ns.ip(&["-6", "route", "add", "default", "via", NODE_BACK6]);
            ns
        });
        let mut next = || hosts.next().expect("five private hosts");
        let (web1, web2, app, db1, db2) = (next(), next(), next(), next(), next());
        drop(hosts);
        // The client and the app look names up through foobar's DNS, as the seeds' users do.
        client.use_nameserver(DNS);
        app.use_nameserver(DNS);
        Stack { client, node, web1, web2, app, db1, db2, inet, lab }
    }

    /// Every namespace with its role, for printing the tour.
    pub fn hosts(&self) -> [(&'static str, &Netns); 7] {
        [
            ("client", &self.client),
            ("node", &self.node),
            ("web1", &self.web1),
            ("web2", &self.web2),
            ("app", &self.app),
            ("db1", &self.db1),
            ("db2", &self.db2),
        ]
    }
}

/// The one-arm variant: client, node and web servers share one segment and the node has a
/// single interface, `eth0`, holding its front addresses and its back address (198.51.100.1).
/// Same addresses as [`Stack`]; NAT must send rewritten frames back out the interface they
/// came in on.
pub struct OneArm {
    pub client: Netns,
    pub node: Netns,
    pub web1: Netns,
    pub web2: Netns,
    pub lab: Lab,
}

impl OneArm {
    pub fn build() -> OneArm {
        let plug = |lab: &Lab, host: &Netns, name: &str, switch: &Netns, port: &str| {
            plug(lab, host, name, switch, port, Offloads::KernelDefaults)
        };
        let mut lab = Lab::new();
        let seg = lab.ns("seg");
        seg.ip(&["link", "add", "br0", "type", "bridge"]);
        seg.ip(&["link", "set", "br0", "up"]);
        let client = lab.ns("client");
        plug(&lab, &client, "eth0", &seg, "p-client");
        client.addr("eth0", &format!("{CLIENT}/24"));
        client.ip(&["route", "add", "198.51.100.0/24", "via", NODE_FRONT]);
        let node = lab.ns("node");
        plug(&lab, &node, "eth0", &seg, "p-node");
        for a in [format!("{NODE_FRONT}/24"), format!("{VIP}/32"), format!("{NODE_BACK}/24")] {
            node.addr("eth0", &a);
        }
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut web = |role: &str, addr: &str| {
            let ns = lab.ns(role);
            plug(&lab, &ns, "eth0", &seg, &format!("p-{role}"));
            ns.addr("eth0", &format!("{addr}/24"));
            ns.ip(&["route", "add", "default", "via", NODE_BACK]);
            ns
        };
        let web1 = web("web1", WEB1);
        let web2 = web("web2", WEB2);
        OneArm { client, node, web1, web2, lab }
    }
}

/// Connects `host`'s interface `name` to the bridge in `switch` through port `port`.
///
/// Tuned for native XDP, two veth peculiarities are set right here (see DESIGN.md):
/// - GRO on the switch side gives the port NAPI, without which frames that XDP redirects out
///   of the host's veth are dropped on arrival;
/// - checksum offload is off on the host side, so hosts put complete checksums on the wire as
///   real NICs do; with offload, veth carries partial checksums that no longer verify once
///   native NAT has patched the packet.
fn plug(lab: &Lab, host: &Netns, name: &str, switch: &Netns, port: &str, offloads: Offloads) {
    lab.veth(host, name, switch, port);
    switch.ip(&["link", "set", port, "master", "br0"]);
    if offloads == Offloads::TunedForNativeXdp {
        switch.exec(&["ethtool", "-K", port, "gro", "on"]);
        host.exec(&["ethtool", "-K", name, "tx", "off"]);
    }
}
