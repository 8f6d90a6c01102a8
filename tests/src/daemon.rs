//! The real daemon, event loop and all, running on its own thread inside a lab namespace,
//! reachable through its control socket like `foobar status` reaches it.

use std::{
    path::PathBuf,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use foobar::{
    control::{
        client,
        protocol::{Request, Response, StatusReport},
    },
    daemon::Daemon,
    plan::Plan,
};
use tokio::sync::oneshot;

use crate::netns::{Entry, Netns, Spawned};

/// A daemon serving in `ns`; stopped (cleanly, detaching XDP) on drop.
pub struct RunningDaemon {
    pub socket: PathBuf,
    /// The config file it runs (and re-reads on `Request::Reload`).
    pub config_file: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningDaemon {
    /// Starts the daemon in `ns` with config `text` (made private to this lab by [`lab_config`],
    /// detaching on exit), and waits until it answers.
    pub fn start(ns: &Netns, text: &str) -> RunningDaemon {
        RunningDaemon::start_with(ns, &lab_config(ns, text, true))
    }

    /// Starts the daemon with `text` exactly as given.
    pub fn start_with(ns: &Netns, text: &str) -> RunningDaemon {
        let socket = socket_path(ns);
        let config_file = ns.scratch("foobar.toml");
        std::fs::write(&config_file, text).expect("write config file");
        let file = config_file.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let ns = ns.clone();
        let thread = std::thread::spawn(move || {
            let _inside = ns.enter();
            let plan = Plan::load(&file).expect("config");
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let daemon = Daemon::start(plan).expect("daemon starts").watching(file);
                let stop = async {
                    let _ = stopped.await;
                };
                daemon.serve(stop, None).await.expect("daemon serves");
            });
        });
        let d = RunningDaemon { socket, config_file, stop: Some(stop), thread: Some(thread) };
        // Loading verifies about a million BPF instructions: seconds on a quiet machine, more on a
        // CI machine whose other tests run three daemons and floods at the same time.
        let deadline = Instant::now() + Duration::from_secs(30);
        while client::request(&d.socket, &Request::Status).is_err() {
            assert!(Instant::now() < deadline, "the daemon did not answer on {} within 30 s", d.socket.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn request(&self, request: Request) -> Response {
        client::request(&self.socket, &request).expect("control request")
    }

    pub fn status(&self) -> StatusReport {
        match self.request(Request::Status) {
            Response::Status(r) => *r,
            other => panic!("status answered {other:?}"),
        }
    }

    /// Polls `status` until `pred` holds, for up to `within`; panics with the last report.
    pub fn wait_for(&self, within: Duration, what: &str, pred: impl Fn(&StatusReport) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let report = self.status();
            if pred(&report) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "{what} did not happen within {within:?}: {report:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Scrapes `/metrics` on `ns`'s loopback (where lab.toml puts it) and checks it has every one
/// of `lines` (each a whole sample or a prefix of one); returns the scrape.
pub fn assert_metrics(ns: &Netns, lines: &[&str]) -> String {
    let metrics = ns.exec(&["curl", "-sS", "--max-time", "3", "http://127.0.0.1:9469/metrics"]);
    for line in lines {
        assert!(metrics.contains(line), "/metrics lacks {line:?}:\n{metrics}");
    }
    metrics
}

/// The control socket a lab's daemon listens on.
pub fn socket_path(ns: &Netns) -> PathBuf {
    ns.scratch("control.sock")
}

/// The pin directory a lab's daemon uses (so parallel labs never share pinned state).
pub fn pin_dir(ns: &Netns) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/{}", ns.name()))
}

/// Where a lab's daemon reads the replication monitor's password.
pub fn password_file(ns: &Netns) -> PathBuf {
    ns.scratch("monitor.pass")
}

/// `text` (a config in `examples/lab.toml`'s shape) with its control socket, state file, pin
/// directory and monitor password file moved to paths of this lab's own (the lab's monitor password written
/// there), and `detach_on_exit` as given.
pub fn lab_config(ns: &Netns, text: &str, detach_on_exit: bool) -> String {
    let socket = socket_path(ns).display().to_string();
    let pins = pin_dir(ns).display().to_string();
    let password = password_file(ns);
    crate::mariadb::write_password_file(&password);
    let state = ns.scratch("state.json").display().to_string();
    text.replacen(r#"control_socket = "/run/foobar/control.sock""#, &format!("control_socket = {socket:?}"), 1)
        .replacen(r#"state_file = "/var/lib/foobar/state.json""#, &format!("state_file = {state:?}"), 1)
        .replacen(
            r#"password_file = "/etc/foobar/mysql-monitor.pass""#,
            &format!("password_file = {:?}", password.display().to_string()),
            1,
        )
        .replacen(
            r#"pin_dir = "/sys/fs/bpf/foobar""#,
            &format!("pin_dir = {pins:?}\ndetach_on_exit = {detach_on_exit}"),
            1,
        )
}

/// The `foobar` binary cargo built beside the test binaries (`cargo xtask test` builds it
/// first): for what only a separate process shows, its exit code, its log, its pid.
pub fn foobar_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/integration-… → target/debug/foobar
    let bin = exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("foobar")).expect("target dir");
    assert!(bin.exists(), "{} is missing: run `cargo build --bin foobar` (cargo xtask test does)", bin.display());
    bin
}

/// A `foobar run` process in a lab namespace, its log in the lab's scratch space.
pub struct DaemonProcess {
    pub process: Spawned,
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Starts `foobar run --config <config_file>` in `ns`, entered as `entry` says.
    pub fn start(ns: &Netns, entry: Entry, config_file: &std::path::Path, name: &str) -> DaemonProcess {
        DaemonProcess::start_under(ns, entry, &[], config_file, name)
    }

    /// [`DaemonProcess::start`], run by `wrapper` (e.g. `prlimit` and its options).
    pub fn start_under(
        ns: &Netns,
        entry: Entry,
        wrapper: &[&str],
        config_file: &std::path::Path,
        name: &str,
    ) -> DaemonProcess {
        DaemonProcess::spawn(ns, entry, wrapper, &foobar_binary(), config_file, name)
    }

    /// [`DaemonProcess::start_under`] with the `foobar` binary at `bin`.
    pub fn spawn(
        ns: &Netns,
        entry: Entry,
        wrapper: &[&str],
        bin: &std::path::Path,
        config_file: &std::path::Path,
        name: &str,
    ) -> DaemonProcess {
        let log = ns.scratch(&format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = wrapper.to_vec();
        cmd.extend([bin.to_str().expect("utf-8 path"), "run", "--config", config_file.to_str().expect("utf-8 path")]);
        DaemonProcess { process: ns.spawn_via(entry, &cmd, &log), log }
    }

    /// `foobar status` from it over its control socket `socket`; panics with its log if none.
    pub fn status(&self, socket: &std::path::Path) -> StatusReport {
        match client::request(socket, &Request::Status) {
            Ok(Response::Status(r)) => *r,
            other => panic!("status: {other:?}\n{}", self.logged()),
        }
    }

    /// Everything it logged so far.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `within` for its log to contain `needle`; panics with the log otherwise.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logged().contains(needle) {
            assert!(Instant::now() < deadline, "foobar did not log {needle:?} within {within:?}:\n{}", self.logged());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
