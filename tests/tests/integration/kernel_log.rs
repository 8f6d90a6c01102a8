//! Kernel-side messages (aya-log) reach the daemon's log: a new flow whose next hop the
//! kernel cannot resolve is dropped, counted, and explained.

use std::sync::Mutex;

use foobar::dataplane::{
    Dataplane, Trust,
    services::{BackendSpec, ServiceSpec, Services},
};
use foobar_common::counters::Counter::*;
use foobar_tests::{
    gate::Need,
    netns::Lab,
    packet::{CLIENT_MAC, Frame, TcpFlags},
    router::Router,
};
use libtest_mimic::Trial;

use crate::{
    fixtures::{Case, XDP_DROP, run_cases},
    gated,
};

pub fn trials() -> Vec<Trial> {
    vec![gated("kernel_log::a_failed_next_hop_is_explained_in_the_log", &[Need::Root, Need::Bpf], no_next_hop)]
}

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The process's `log` logger in this test binary: keeps every message.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut c) = CAPTURED.lock() {
            c.push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

fn no_next_hop() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    let mut lab = Lab::new();
    let r = Router::build(&mut lab);
    let _inside = r.ns.enter();
    let mut dp = Dataplane::load().expect("load");
    // On the back segment, so routed, but no such host: no neighbour entry ever forms.
    let ghost = ServiceSpec::tcp(
        "ghost",
        "192.0.2.10".parse().expect("ip"),
        9000,
        vec![BackendSpec::new("ghost", "198.51.100.99".parse().expect("ip"))],
    );
    Services::new().add(&mut dp, ghost).expect("service");
    let mut syn = Frame::tcp4([192, 0, 2, 100], 40000, [192, 0, 2, 10], 9000).flags(TcpFlags::SYN);
    syn.src_mac = CLIENT_MAC;
    syn.dst_mac = r.front_mac;
    run_cases(
        &dp,
        Trust::Trusted,
        vec![Case {
            name: "new flow to a backend with no neighbour entry",
            ingress: Some(r.front),
            frame: syn.build(),
            verdict: XDP_DROP,
            output: None,
            counters: &[Ipv4, Tcp, LbNewFlow, LbNoRoute],
        }],
    );
    let mut kernel_log = dp.take_kernel_log().expect("kernel log reader");
    kernel_log.flush();
    let captured = CAPTURED.lock().expect("captured").clone();
    assert!(
        captured.iter().any(|m| m.starts_with("WARN no next hop towards 198.51.100.99: bpf_fib_lookup returned 7")),
        "kernel message missing: {captured:?}"
    );
}
