//! One foobar per pin directory, and where its pins live: a second `foobar run` is refused
//! without touching the first, and pins that cannot outlive the process are warned about.

use std::time::Duration;

use foobar_tests::{
    daemon::{DaemonProcess, RunningDaemon, lab_config},
    gate::Need,
    netns::Entry,
    nginx,
    topology::*,
};
use libtest_mimic::Trial;

use crate::{firewall_lab::LAB_CONFIG, gated};

pub fn trials() -> Vec<Trial> {
    vec![
        gated(
            "instance_lab::a_second_run_is_refused_and_the_first_keeps_checking",
            &[Need::Root, Need::Bpf],
            second_run,
        ),
        gated(
            "instance_lab::pins_private_to_a_mount_namespace_are_warned_about",
            &[Need::Root, Need::Bpf],
            private_pins,
        ),
    ]
}

fn second_run() {
    let stack = Stack::build();
    let web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let first = RunningDaemon::start(&stack.node, LAB_CONFIG);
    first.wait_for(Duration::from_secs(3), "first health checks", |r| {
        r.services[0].backends.iter().all(|b| b.health.as_ref().is_some_and(|h| h.last == "HTTP 200"))
    });

    // The same config again, as a separate process in the host's mount namespace.
    let mut second = DaemonProcess::start(&stack.node, Entry::Nsenter, &first.config_file, "second");
    assert!(second.process.wait_done(Duration::from_secs(10)), "a second foobar run kept running");
    assert_eq!(second.process.exit_code(), Some(1), "{}", second.logged());
    let said = second.logged();
    let pid = std::process::id();
    assert!(said.contains("foobar is already running") && said.contains(&format!("(pid {pid})")), "{said}");
    assert!(!said.contains("XDP attached") && !said.contains("took over"), "the second run touched XDP: {said}");

    // The first one still answers, and its health checks still steer its own data plane.
    assert!(first.config_file.exists());
    drop(web1);
    let took = first.wait_for(Duration::from_secs(3), "web1 out of rotation", |r| {
        r.services[0].backends.iter().any(|b| b.name == "web1" && b.state == "down")
    });
    eprintln!("web1 out of rotation {took:?} after it stopped (fall 3 × interval 500ms)");
    for _ in 0..4 {
        let out = stack.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("web2"), "{out:?}");
    }
}

fn private_pins() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let config = stack.node.scratch("private.toml");
    std::fs::write(&config, lab_config(&stack.node, LAB_CONFIG, true)).expect("write config");
    let warning = "in a bpffs private to this mount namespace";
    // Under `ip netns exec` the pins would die with the process: said at start, loudly.
    let private = DaemonProcess::start(&stack.node, Entry::IpNetnsExec, &config, "private");
    private.wait_for_log("serving", Duration::from_secs(15));
    assert!(private.logged().contains(warning), "{}", private.logged());
    drop(private);
    // In the host's mount namespace they are kept, and nothing is said.
    let host = DaemonProcess::start(&stack.node, Entry::Nsenter, &config, "host");
    host.wait_for_log("serving", Duration::from_secs(15));
    assert!(!host.logged().contains(warning), "{}", host.logged());
}
