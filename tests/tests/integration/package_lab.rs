//! The Debian package as a user gets it (`cargo xtask package`, which `cargo xtask test`
//! builds first): what it installs, a systemd unit that verifies, and its binary, unpacked,
//! running the packaged config on a two-NIC node (a namespace with eth0 and eth1).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use foobar_tests::{gate::Need, netns::Lab};
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    vec![gated("package_lab::the_deb_installs_foobar_its_unit_and_config", &[Need::Root, Need::Bpf], deb)]
}

fn deb_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let deb = root.join(format!("target/foobar_{}_amd64.deb", env!("CARGO_PKG_VERSION")));
    assert!(deb.exists(), "{} is missing: run `cargo xtask package` (cargo xtask test does)", deb.display());
    deb
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb() {
    let deb = deb_path();
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/sbin/foobar",
        "./lib/systemd/system/foobar.service",
        "./etc/foobar/foobar.toml",
        "./usr/share/man/man8/foobar.8",
        "./usr/share/man/man8/foobar-run.8",
        "./usr/share/bash-completion/completions/foobar",
        "./usr/share/doc/foobar/examples/monitoring/foobar.rules.yml",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "the package lacks {path}:\n{listing}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/foobar/foobar.toml", "a config the user edits must be a conffile");

    let mut lab = Lab::new();
    let node = lab.ns("pkg");
    let root = node.scratch("installed");
    let _ = std::fs::remove_dir_all(&root);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let foobar = root.join("usr/sbin/foobar");
    let version = run(Command::new(&foobar).arg("--version"));
    assert_eq!(version.trim(), format!("foobar {}", env!("CARGO_PKG_VERSION")));

    // The unit verifies, with its commands pointing at the unpacked binary.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/foobar.service")).expect("unit");
    let local = node.scratch("foobar.service");
    std::fs::write(&local, unit.replace("/usr/sbin/foobar", foobar.to_str().expect("utf-8"))).expect("unit copy");
    let verify =
        Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&local).output().expect("systemd-analyze");
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    // Away from its node (no eth0 here) the packaged config checks with warnings; with
    // --strict, as the unit runs it before start, that is an error naming the line and key.
    let config = root.join("etc/foobar/foobar.toml");
    let (bin, conf) = (foobar.to_str().expect("utf-8"), config.to_str().expect("utf-8"));
    let said = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let away = node.output(&[bin, "check", "--config", conf]);
    assert!(
        away.status.success()
            && said(&away).contains("warning: ")
            && said(&away).contains("ok, but for the interfaces"),
        "{}",
        said(&away)
    );
    let strict = node.output(&[bin, "check", "--strict", "--config", conf]);
    assert!(
        !strict.status.success() && said(&strict).contains("daemon.interfaces: no interface `eth0` exists here"),
        "{}",
        said(&strict)
    );
    let broken = node.scratch("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&config).expect("config").replacen("ttl = 30", "ttl = \"long\"", 1),
    )
    .expect("broken");
    let refused = node.output(&[bin, "check", "--config", broken.to_str().expect("utf-8")]);
    assert!(
        !refused.status.success() && said(&refused).contains("dns.ttl"),
        "a real problem is an error away from the node too: {}",
        said(&refused)
    );

    // A two-NIC node: the packaged binary runs the packaged config (its eBPF object embedded).
    let peer = lab.ns("pkg-peer");
    lab.veth(&node, "eth0", &peer, "p0");
    lab.veth(&node, "eth1", &peer, "p1");
    node.addr("eth0", "192.0.2.2/24");
    node.addr("eth1", "198.51.100.1/24");
    let own = |what: &str| node.scratch(what).display().to_string();
    let text = std::fs::read_to_string(&config).expect("config").replacen(
        "[daemon]\n",
        &format!(
            "[daemon]\npin_dir = {:?}\ncontrol_socket = {:?}\nstate_file = {:?}\ndetach_on_exit = true\n",
            format!("/sys/fs/bpf/{}", node.name()),
            own("control.sock"),
            own("state.json")
        ),
        1,
    );
    let ours = node.scratch("foobar.toml");
    std::fs::write(&ours, text).expect("config copy");
    let log = node.scratch("installed.log");
    let bin = foobar.to_str().expect("utf-8");
    let process = node.spawn_via(
        foobar_tests::netns::Entry::Nsenter,
        &[bin, "run", "--config", ours.to_str().expect("utf-8")],
        &log,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("serving") {
        assert!(std::time::Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        said.contains("XDP attached interface=\"eth0\"") && said.contains("XDP attached interface=\"eth1\""),
        "{said}"
    );
    drop(process);
}
