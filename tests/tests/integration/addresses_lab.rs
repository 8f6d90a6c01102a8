//! The addresses foobar adds for VIPs: made local when a reload adds a service and removed
//! when one drops it, left by a crashed run, and removed by `foobar cleanup`; an address the
//! operator configured is never touched.

use std::{process::Command, time::Duration};

use foobar::control::{
    client,
    protocol::{Request, Response},
};
use foobar_tests::{
    daemon::{DaemonProcess, foobar_binary, lab_config, socket_path},
    gate::Need,
    netns::{Entry, Netns},
    topology::*,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![gated(
        "addresses_lab::vip_addresses_follow_reloads_and_cleanup_removes_a_crashed_runs",
        &[Need::Root, Need::Bpf],
        follow,
    )]
}

/// A service on `vip` (TCP 8080, to web1), appended to a config.
fn service(vip: &str) -> String {
    let name = vip.replace('.', "-");
    format!(
        "\n[[service]]\nname = \"extra-{name}\"\nvip = \"{vip}\"\nports = [8080]\nproto = \"tcp\"\n\n\
         [[service.backend]]\nname = \"web1\"\naddress = \"{WEB1}\"\n"
    )
}

fn on_front(node: &Netns, ip: &str) -> bool {
    node.exec(&["ip", "-o", "addr", "show", "dev", "front"]).contains(&format!(" {ip}/32 "))
}

fn reload(node: &Netns) {
    match client::request(&socket_path(node), &Request::Reload) {
        Ok(Response::Done { .. }) => {}
        other => panic!("reload: {other:?}"),
    }
}

fn follow() {
    const OURS: &str = "192.0.2.11";
    const OPERATORS: &str = "192.0.2.12";
    let stack = Stack::build();
    stack.node.addr("front", &format!("{OPERATORS}/32"));
    let base = lab_config(&stack.node, LAB_CONFIG, false);
    let file = stack.node.scratch("addresses.toml");
    std::fs::write(&file, format!("{base}{}", service(OPERATORS))).expect("config");
    let mut daemon = DaemonProcess::start(&stack.node, Entry::Nsenter, &file, "addresses");
    daemon.wait_for_log("serving", Duration::from_secs(10));
    assert!(!on_front(&stack.node, OURS));

    // A reload that adds a service makes its VIP local; one that drops it removes it.
    std::fs::write(&file, format!("{base}{}{}", service(OPERATORS), service(OURS))).expect("config");
    reload(&stack.node);
    assert!(on_front(&stack.node, OURS), "the reload did not add {OURS}: {}", daemon.logged());
    std::fs::write(&file, format!("{base}{}", service(OPERATORS))).expect("config");
    reload(&stack.node);
    assert!(!on_front(&stack.node, OURS), "the reload left {OURS}");
    std::fs::write(&file, format!("{base}{}{}", service(OPERATORS), service(OURS))).expect("config");
    reload(&stack.node);
    assert!(on_front(&stack.node, OURS));

    // A crash leaves it; `foobar cleanup` removes it, and only it.
    daemon.process.kill();
    assert!(on_front(&stack.node, OURS), "gone with the crash");
    let netns = format!("--net=/run/netns/{}", stack.node.name());
    let out = Command::new("nsenter")
        .arg(&netns)
        .arg(foobar_binary())
        .args(["cleanup", "--config", file.to_str().expect("utf-8 path")])
        .output()
        .expect("run foobar cleanup");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cleanup: {said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("removed the address {OURS} foobar added")), "{said}");
    assert!(!on_front(&stack.node, OURS), "cleanup left {OURS}: {said}");
    assert!(on_front(&stack.node, OPERATORS), "cleanup removed the operator's {OPERATORS}");
    for ip in [VIP, DNS] {
        assert!(on_front(&stack.node, ip), "cleanup removed the lab's {ip}");
    }
}
