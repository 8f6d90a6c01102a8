//! One foobar per pin directory, and where its pins live: a second `foobar run` is refused
//! without touching the first, and pins that cannot outlive the process are warned about.

use std::time::Duration;

use foobar::control::{
    client,
    protocol::{Request, Response},
};
use foobar_tests::{
    daemon::{DaemonProcess, RunningDaemon, lab_config, pin_dir, socket_path},
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
        gated("instance_lab::serving_keeps_only_the_capabilities_it_uses", &[Need::Root, Need::Bpf], capabilities),
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

/// A capability set of `/proc/<pid>/task/<tid>/status` (`CapEff`, `CapBnd`…) of every thread.
fn thread_caps(pid: u32, set: &str) -> Vec<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with(&format!("{set}:")))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .collect()
}

/// `foobar run` as root, as systemd runs it: once attached, every thread keeps only the
/// capabilities serving uses, and with those it still checks, reloads, and on stop detaches
/// and unpins; it tells the service manager READY, RELOADING and READY, STOPPING.
fn capabilities() {
    let stack = Stack::build();
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    let config = stack.node.scratch("caps.toml");
    std::fs::write(&config, lab_config(&stack.node, LAB_CONFIG, true)).expect("write config");
    // Run as systemd runs a Type=notify service: the readiness protocol's socket in the env.
    let notify_path = stack.node.scratch("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let said_to_systemd = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let env = format!("NOTIFY_SOCKET={}", notify_path.display());
    let daemon = DaemonProcess::start_under(&stack.node, Entry::Nsenter, &["env", &env], &config, "caps");
    let ready = said_to_systemd();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(daemon.logged().contains("serving"), "READY before serving: {}", daemon.logged());
    let kept = foobar::privileges::serving_set().expect("own capabilities");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let caps = thread_caps(daemon.process.pid(), set);
        assert!(
            caps.len() > 1 && caps.iter().all(|c| *c == kept),
            "{set}: {caps:x?}, expected {kept:x} on every thread"
        );
    }
    assert_eq!(
        thread_caps(daemon.process.pid(), "NoNewPrivs"),
        vec![1; thread_caps(daemon.process.pid(), "CapEff").len()]
    );
    let socket = socket_path(&stack.node);
    let status = || daemon.status(&socket);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !status().services[0].backends.iter().all(|b| b.state == "up") {
        assert!(std::time::Instant::now() < deadline, "backends not up: {:#?}\n{}", status(), daemon.logged());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A reload that changes the firewall and a backend's weight applies with what is left.
    let text = std::fs::read_to_string(&config).expect("config").replacen(
        "syn_rate_per_source = 200",
        "syn_rate_per_source = 300",
        1,
    );
    std::fs::write(&config, text).expect("rewrite config");
    match client::request(&socket, &Request::Reload) {
        Ok(Response::Done { .. }) => {}
        other => panic!("reload: {other:?}\n{}", daemon.logged()),
    }
    assert_eq!(said_to_systemd(), "RELOADING=1");
    assert!(said_to_systemd().starts_with("READY=1\nSTATUS=serving: reloaded"));
    let out = stack.client.output(&["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("web"), "{out:?}");
    let log = daemon.log.clone();
    drop(daemon);
    assert_eq!(said_to_systemd(), "STOPPING=1");
    let said = std::fs::read_to_string(&log).expect("log");
    assert!(said.contains("dropped every other capability") && said.contains("detached and unpinned"), "{said}");
    // (The lab has no databases here: the replication monitor's warnings are expected.)
    for refused in ["not permitted", "cannot", "ERROR"] {
        assert!(!said.contains(refused), "{refused}: {said}");
    }
    assert!(!pin_dir(&stack.node).join("links").exists(), "pins left behind");
}
