//! `cargo xtask lab --nodes N`: the cluster lab. A router namespace running BIRD 2 (ECMP,
//! BFD) in front of N foobar nodes, each with its own BIRD announcing the VIP while it can
//! serve (`examples/cluster.toml`), and the web servers behind them. Prints a tour and waits
//! for Ctrl-C; `--demo` runs the drills (traffic spread, a drain, an uplink cut) and ends.
//! `--nat`: the nodes NAT and sync their flows (`examples/cluster-nat.toml`); the demo's cut
//! is made with kept-alive connections running, and says how many of them went on.

use std::{sync::mpsc, time::Duration};

use anyhow::{Context, bail};
use foobar::control::protocol::NodeAction;
use foobar_tests::{
    cluster::{Cluster, node_uplink},
    http, nginx,
    topology::VIP,
};

use crate::{build_ebpf, lab, setup, step::timed};

pub fn up(nodes: usize, demo: bool, nat: bool) -> anyhow::Result<()> {
    if !foobar_tests::gate::is_root() {
        bail!(
            "the lab creates network namespaces and loads XDP: run it as root (`sudo -E cargo xtask lab --nodes {nodes}`)"
        );
    }
    if !(2..=3).contains(&nodes) {
        bail!("--nodes takes 2 or 3 (the uplink's addresses are 192.0.2.131 to .133)");
    }
    if !setup::is_complete() {
        setup::run()?;
    }
    let object = build_ebpf::run()?;
    let foobar = timed("build foobar", || lab::build_foobar(&object))?;
    std::fs::create_dir_all(lab::state_dir())?;
    std::fs::write(lab::pid_file(), std::process::id().to_string())?;
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("install Ctrl-C handler")?;
    let c = timed("namespaces: client, router, nodes, web1, web2", || Ok(Cluster::build(nodes)))?;
    let _web1 = timed("nginx on web1", || Ok(nginx::start(&c.web1, "web1")))?;
    let _web2 = timed("nginx on web2", || Ok(nginx::start(&c.web2, "web2")))?;
    let example = if nat { "examples/cluster-nat.toml" } else { "examples/cluster.toml" };
    let config = std::fs::read_to_string(crate::step::workspace_root().join(example))?;
    let (_router, running) = timed("BIRD on the router and the nodes, foobar on the nodes", || {
        Ok(if nat { c.start_nat_nodes(&foobar, &config) } else { c.start_nodes(&foobar, &config) })
    })?;
    let all: Vec<String> = (0..nodes).map(node_uplink).collect();
    let took = c.wait_next_hops(&all, Duration::from_secs(20));
    println!("\nthe router's route to the VIP {VIP}, {took:?} after the nodes served:");
    println!("{}", c.router.ip(&["route", "show", &format!("{VIP}/32")]));
    for _ in 0..30 {
        let _ = c.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    }
    let flows: Vec<u64> = running.iter().map(|n| n.status().services[0].new_flows).collect();
    println!("30 connections from the client: new flows per node {flows:?}");
    if demo {
        running[0].node(NodeAction::Drain);
        let took = c.wait_next_hops(&all[1..], Duration::from_secs(5));
        println!("foobar node drain on node1: its route left the router in {took:?}");
        running[0].node(NodeAction::Enable);
        c.wait_next_hops(&all, Duration::from_secs(5));
        let vip = std::net::SocketAddr::from(([192, 0, 2, 10], 80));
        let asking = http::keep_asking(&c.client, vip, 24, Duration::from_secs(4));
        std::thread::sleep(Duration::from_secs(2));
        running[nodes - 1].ns.ip(&["link", "set", "front", "down"]);
        let took = c.wait_next_hops(&all[..nodes - 1], Duration::from_secs(3));
        println!("node{nodes}'s uplink cut: BFD took its route away in {took:?}");
        let held: Vec<http::Held> = asking.into_iter().filter_map(|t| t.join().ok()).collect();
        let failed = held.iter().filter(|h| h.failed.is_some()).count();
        println!("24 kept-alive connections asking every 20 ms across the cut: {failed} failed");
        println!("\n==> demo done; tearing the lab down");
        let _ = std::fs::remove_file(lab::pid_file());
        return Ok(());
    }
    println!(
        "\ntry:  sudo ip netns exec {} curl http://{VIP}/\n      sudo foobar --socket {} node drain\n      sudo ip netns exec {} ip route show {VIP}\nCtrl-C (or `cargo xtask lab down`) tears it down.",
        c.client.name(),
        running[0].socket.display(),
        c.router.name()
    );
    let _ = stop_rx.recv();
    println!("==> tearing the lab down");
    let _ = std::fs::remove_file(lab::pid_file());
    Ok(())
}
