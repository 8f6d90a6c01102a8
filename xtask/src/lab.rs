//! `cargo xtask lab`: the seeds' stack in network namespaces with foobar in front.
//!
//! Builds everything it needs first, brings the topology up (see `foobar_tests::topology`),
//! starts nginx on web1 and web2 and the daemon on the node with `examples/lab.toml`, prints
//! a tour, and tears it all down on Ctrl-C or SIGTERM (which is what `lab down` sends).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use foobar_tests::{
    netns::{self, Entry},
    nginx,
    topology::{self, Stack},
};

use crate::{
    build_ebpf, setup,
    step::{self, timed, workspace_root},
};

pub fn state_dir() -> PathBuf {
    workspace_root().join("target/lab")
}

pub fn pid_file() -> PathBuf {
    state_dir().join("lab.pid")
}

pub fn up(demo: bool) -> anyhow::Result<()> {
    if !foobar_tests::gate::is_root() {
        bail!("the lab creates network namespaces and loads XDP: run it as root (`sudo -E cargo xtask lab`)");
    }
    let started = Instant::now();
    if !setup::is_complete() {
        setup::run()?;
    }
    let object = build_ebpf::run()?;
    let foobar = timed("build foobar and the lab's demo app", || build_foobar(&object))?;
    std::fs::create_dir_all(state_dir())?;
    std::fs::write(pid_file(), std::process::id().to_string())?;

    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("install Ctrl-C handler")?;

    let stack = timed("namespaces and veths (client, node, web1, web2, app, db1, db2)", || Ok(Stack::build()))?;
    let ca = timed("lab certificate authority and www.foobar.com certificate", || {
        Ok(foobar_tests::tls::LabCa::create(&state_dir().join("tls")))
    })?;
    let mut web1 = Some(timed("nginx on web1 (HTTP and HTTPS)", || Ok(nginx::start_tls(&stack.web1, "web1", &ca)))?);
    let _web2 = timed("nginx on web2 (HTTP and HTTPS)", || Ok(nginx::start_tls(&stack.web2, "web2", &ca)))?;
    let db = timed("MariaDB primary on db1 replicating to db2 (GTID)", || {
        Ok(foobar_tests::mariadb::Replication::start(&stack.db1, topology::DB1, &stack.db2, topology::DB2))
    })?;
    let _app = timed("demo app on app (db-write / db-read by name through foobar's DNS)", || {
        Ok(foobar_tests::app::start(&stack.app, &workspace_root().join("target/release/lab-app")))
    })?;
    let log = state_dir().join("foobar.log");
    let _ = std::fs::remove_file(&log);
    let config = workspace_root().join("examples/lab.toml");
    let _password = MonitorPassword::install(&config)?;
    let mut daemon = timed("foobar daemon on the node (examples/lab.toml)", || {
        // In the host's mount namespace, as a daemon is run that must restart without a gap.
        let run = [path_str(&foobar)?, "run", "--config", path_str(&config)?, "--detach-on-exit"];
        let d = stack.node.spawn_via(Entry::Nsenter, &run, &log);
        wait_for_log(&log, "data plane running", Duration::from_secs(10))?;
        Ok(d)
    })?;
    eprintln!("    lab up in {:.1}s", started.elapsed().as_secs_f64());
    if demo {
        crate::demo::run(&stack, &foobar, &ca, &mut web1, &db);
        eprintln!("\n==> demo done; tearing the lab down");
        drop(daemon);
        let _ = std::fs::remove_file(pid_file());
        return Ok(());
    }
    print_tour(&stack, &log, &foobar, &ca.ca_cert, &db.replica.dir);

    loop {
        match stop_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if !daemon.running() => {
                eprintln!("the foobar daemon exited; see {}", log.display());
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    eprintln!("==> tearing the lab down");
    drop(daemon);
    drop(web1);
    drop(db);
    let _ = std::fs::remove_file(pid_file());
    Ok(())
}

/// Stops a lab started by `cargo xtask lab` (by the pid it recorded) and sweeps leftovers.
pub fn down() -> anyhow::Result<()> {
    if let Ok(pid) = std::fs::read_to_string(pid_file()) {
        let pid: i32 = pid.trim().parse().context("corrupt lab pid file")?;
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.contains("xtask") {
            eprintln!("==> stopping lab process {pid}");
            // SAFETY: signalling the lab process this task started and recorded.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_file(pid_file());
    }
    netns::sweep_stale();
    eprintln!("lab is down");
    Ok(())
}

/// Builds `foobar` and the lab's demo app (`lab-app`, lab code) into target/release.
pub fn build_foobar(object: &Path) -> anyhow::Result<PathBuf> {
    step::run(
        Command::new("cargo")
            .current_dir(workspace_root())
            .args(["build", "--release", "--package", "foobar-userspace", "--package", "foobar-tests"])
            .args(["--bin", "foobar", "--bin", "lab-app"])
            .env("FOOBAR_REQUIRE_BPF", "1")
            .env("FOOBAR_BPF_OBJECT", object),
    )?;
    Ok(workspace_root().join("target/release/foobar"))
}

/// The lab monitor user's password, where the config's `replication.password_file` says;
/// removed at teardown when the lab put it there (an operator's own file is left alone).
struct MonitorPassword {
    file: Option<PathBuf>,
    /// Its directory, when the lab created that too.
    dir: Option<PathBuf>,
}

impl MonitorPassword {
    fn install(config: &Path) -> anyhow::Result<MonitorPassword> {
        let text = std::fs::read_to_string(config).with_context(|| format!("read {}", config.display()))?;
        // Interfaces exist only inside the node's namespace: the daemon checks those itself.
        let cfg = foobar::config::parse(config, &text, &|_| true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut made = MonitorPassword { file: None, dir: None };
        let Some(path) = cfg.replication.map(|r| r.password_file) else { return Ok(made) };
        if path.exists() {
            return Ok(made);
        }
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            made.dir = Some(dir.to_owned());
        }
        foobar_tests::mariadb::write_password_file(&path);
        made.file = Some(path);
        Ok(made)
    }
}

impl Drop for MonitorPassword {
    fn drop(&mut self) {
        if let Some(p) = &self.file {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("path {} is not UTF-8", p.display()))
}

fn wait_for_log(log: &Path, needle: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::read_to_string(log).is_ok_and(|s| s.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    bail!("foobar did not start within {timeout:?}; its log:\n{text}")
}

fn print_tour(stack: &Stack, log: &Path, foobar: &Path, ca_cert: &Path, replica_dir: &Path) {
    let name = |role: &str| {
        stack.hosts().iter().find(|(r, _)| *r == role).map(|(_, n)| n.name().to_owned()).unwrap_or_default()
    };
    let client = name("client");
    let hosts = stack.hosts().iter().map(|(r, n)| format!("{r}={}", n.name())).collect::<Vec<_>>().join(" ");
    let lines = [
        String::new(),
        "The lab is up. Every host is a network namespace; run commands in one with `ip netns exec`.".to_owned(),
        format!("  namespaces: {hosts}"),
        String::new(),
        "  # the client resolves through foobar's DNS; new connections alternate between web1 and web2".to_owned(),
        "  # (they see the node's NAT address), and /app goes on to the app server and the databases:".to_owned(),
        format!("  for i in 1 2 3 4; do sudo ip netns exec {client} curl -s http://www.foobar.com/; done"),
        format!("  sudo ip netns exec {client} curl -s http://www.foobar.com/app"),
        String::new(),
        "  # foobar's DNS answers for the zone, and HTTPS goes through the VIP end to end (lab CA):".to_owned(),
        format!("  sudo ip netns exec {client} dig @{} www.foobar.com", topology::DNS),
        format!(
            "  sudo ip netns exec {client} curl -s --cacert {} --resolve www.foobar.com:443:{} https://www.foobar.com/",
            ca_cert.display(),
            topology::VIP
        ),
        String::new(),
        "  # the database tier: db2 replicates db1; foobar watches both (status) and DNS follows:".to_owned(),
        format!("  sudo ip netns exec {client} dig @{} +short db-read.foobar.com", topology::DNS),
        format!(
            "  sudo ip netns exec {} mariadb --socket={}/mysqld.sock -uroot -e 'SHOW SLAVE STATUS\\G'",
            name("db2"),
            replica_dir.display()
        ),
        "  # stop replication and watch db2 turn broken and db-read move to db1 (START SLAVE undoes it):".to_owned(),
        format!(
            "  sudo ip netns exec {} mariadb --socket={}/mysqld.sock -uroot -e 'STOP SLAVE SQL_THREAD'",
            name("db2"),
            replica_dir.display()
        ),
        String::new(),
        "  # the firewall hides everything else: web1 directly, or the VIP on a port no rule allows:".to_owned(),
        format!("  sudo ip netns exec {client} curl -s --connect-timeout 1 http://{}/", topology::WEB1),
        format!("  sudo ip netns exec {client} curl -s --connect-timeout 1 http://{}:22/", topology::VIP),
        String::new(),
        "  # what foobar is doing: services, backends with health and traffic, rule hits, databases, counters;"
            .to_owned(),
        "  # and the same as Prometheus metrics on the node's loopback (examples/lab.toml's metrics_listen):"
            .to_owned(),
        format!("  sudo {} status", foobar.display()),
        format!("  sudo ip netns exec {} curl -s http://127.0.0.1:9469/metrics | grep -v '^#'", name("node")),
        String::new(),
        "  # break things and watch: stop web1's nginx (health checks take it out within 1.5 s),".to_owned(),
        "  # take a backend out by hand, or block the client:".to_owned(),
        format!("  sudo kill $(cat /tmp/{}-nginx/nginx.pid)", name("web1")),
        format!("  sudo {} backend disable www web2     # and: backend enable www web2", foobar.display()),
        format!(
            "  sudo {} firewall block {}   # and: firewall unblock {}",
            foobar.display(),
            topology::CLIENT,
            topology::CLIENT
        ),
        String::new(),
        "  # the daemon's log (it writes the final counters there when the lab stops):".to_owned(),
        format!("  tail -f {}", log.display()),
        String::new(),
        "Stop with Ctrl-C here, or `sudo cargo xtask lab down` from another terminal.".to_owned(),
    ];
    println!("{}", lines.join("\n"));
}
