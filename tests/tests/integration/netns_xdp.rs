//! The data plane on a real interface: XDP attached in native mode to a veth inside a lab
//! namespace, real traffic sent across it, and the counters read back from the map.

use std::process::Command;

use aya::programs::XdpMode as KernelMode;
use foobar::{
    dataplane::{Dataplane, Trust},
    xdp_mode::XdpMode,
};
use foobar_common::{XDP_TRUSTED_PROGRAM, counters::Counter};
use foobar_tests::{
    gate::Need,
    netns::Lab,
    packet::{Frame, ip_offset},
    raw,
};
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    vec![
        gated("netns::lab_cleans_up_after_itself", &[Need::Root], lab_cleans_up),
        gated("netns::xdp_native_on_veth_counts_real_traffic", &[Need::Root, Need::Bpf], xdp_counts_traffic),
        gated("netns::auto_mode_falls_back_to_generic_xdp", &[Need::Root, Need::Bpf], auto_falls_back),
    ]
}

fn netns_names() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip netns list").stdout)
        .into_owned()
}

fn lab_cleans_up() {
    let name;
    {
        let mut lab = Lab::new();
        let a = lab.ns("a");
        let b = lab.ns("b");
        lab.veth(&a, "left", &b, "right");
        a.addr("left", "192.0.2.100/24");
        b.addr("right", "192.0.2.2/24");
        a.exec(&["ping", "-c", "1", "-W", "2", "192.0.2.2"]);
        name = a.name().to_owned();
        assert!(netns_names().contains(&name));
    }
    assert!(!netns_names().contains(&name), "namespace {name} outlived its lab");
}

fn xdp_counts_traffic() {
    let mut lab = Lab::new();
    let client = lab.ns("client");
    let node = lab.ns("node");
    lab.veth(&client, "eth0", &node, "front");
    client.addr("eth0", "192.0.2.100/24");
    node.addr("front", "192.0.2.2/24");

    // The data plane lives and dies inside the node's namespace, so that attach and detach
    // can only ever address the node's interfaces.
    let inside = node.enter();
    let mut dp = Dataplane::load().expect("load data plane");
    let attached = dp.attach("front", Trust::Trusted, XdpMode::Native).expect("attach in native mode");
    assert_eq!(attached.mode, KernelMode::Driver);

    let listed = Command::new("bpftool").args(["prog", "show", "name", XDP_TRUSTED_PROGRAM]).output().expect("bpftool");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("xdp  name {XDP_TRUSTED_PROGRAM}")),
        "bpftool does not list {XDP_TRUSTED_PROGRAM}: {listed}"
    );

    let before = dp.counters().expect("counters");
    client.exec(&["ping", "-c", "5", "-i", "0.05", "-W", "2", "192.0.2.2"]);
    let mut bad = Frame::udp4([192, 0, 2, 100], 1, [192, 0, 2, 2], 9).build();
    let at = ip_offset(&bad);
    bad[at] = 0x44;
    raw::send(&client, "eth0", &vec![bad; 7]).expect("send malformed frames");
    let after = dp.counters().expect("counters");

    assert!(after.since(&before, Counter::Icmp) >= 5, "echo requests not counted: {after:?}");
    assert!(after.since(&before, Counter::Arp) >= 1, "ARP not counted: {after:?}");
    assert_eq!(after.since(&before, Counter::BadIhl), 7, "malformed frames not all dropped and counted");
    // The malformed frames never reached the stack: the node's IP counters saw no header errors.
    let snmp = node.exec(&["cat", "/proc/net/snmp"]);
    let ip_in_hdr_errors = snmp
        .lines()
        .filter(|l| l.starts_with("Ip:"))
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("InHdrErrors in /proc/net/snmp");
    assert_eq!(ip_in_hdr_errors, "0");

    dp.detach_all().expect("detach");
    drop(dp);
    drop(inside);
}

/// A bridge device has no native XDP: `auto` must fall back to generic, and `native` must fail.
fn auto_falls_back() {
    let mut lab = Lab::new();
    let node = lab.ns("node");
    node.ip(&["link", "add", "dummy0", "type", "bridge"]);
    node.ip(&["link", "set", "dummy0", "up"]);
    let inside = node.enter();
    let mut dp = Dataplane::load().expect("load");
    let err = dp.attach("dummy0", Trust::Trusted, XdpMode::Native).map(|_| ()).expect_err("a bridge has no native XDP");
    assert!(err.to_string().starts_with("attaching XDP to interface dummy0 failed"), "{err}");
    let attached = dp.attach("dummy0", Trust::Trusted, XdpMode::Auto).expect("auto attaches");
    assert_eq!(attached.mode, KernelMode::Skb, "auto did not fall back to generic");
    dp.detach_all().expect("detach");
    drop(dp);
    drop(inside);
}
