//! An RAII lab of network namespaces joined by veth pairs.
//!
//! Every namespace is named `fb<pid>x<n>-<role>`: the pid and a per-process counter keep
//! parallel tests and parallel runs apart, and let [`Lab::new`] sweep namespaces left by runs
//! whose process is gone, and only those. Interfaces are created directly inside the lab's
//! namespaces; the root namespace's interfaces and routes are never touched. Dropping the
//! [`Lab`] (also while unwinding from a failed assertion) deletes its namespaces, which
//! destroys their veths, and the files its namespaces' servers kept ([`Netns::scratch`]).

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);
const PREFIX: &str = "fb";

/// A set of namespaces that live exactly as long as this value.
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

/// One namespace of a [`Lab`]. Cheap to clone; the lab owns its lifetime.
#[derive(Clone, Debug)]
pub struct Netns {
    name: String,
}

impl Lab {
    /// Starts a lab, first removing namespaces that earlier, dead runs of foobar's tests left.
    pub fn new() -> Lab {
        sweep_stale();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        Lab { tag: format!("{PREFIX}{}x{n}", std::process::id()), namespaces: Vec::new() }
    }

    /// Creates namespace `<tag>-<role>` with loopback up.
    pub fn ns(&mut self, role: &str) -> Netns {
        let name = format!("{}-{role}", self.tag);
        run(Command::new("ip").args(["netns", "add", &name]));
        self.namespaces.push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Joins `a`'s interface `a_if` to `b`'s interface `b_if` with a veth pair, both up.
    pub fn veth(&self, a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
        a.ip(&["link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
        a.ip(&["link", "set", a_if, "up"]);
        b.ip(&["link", "set", b_if, "up"]);
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            let _ = std::fs::remove_dir_all(etc_dir(&name));
        }
        // The namespaces' scratch files: `<tag>-<role>-<what>` in the temporary directory.
        remove_temp_entries(|entry| entry.starts_with(&format!("{}-", self.tag)));
    }
}

/// Removes the entries of the temporary directory whose names `doomed` picks, files and
/// directories alike (a database's data directory is over 100 MB).
fn remove_temp_entries(doomed: impl Fn(&str) -> bool) {
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        if doomed(&e.file_name().to_string_lossy()) {
            let path = e.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// Where `ip netns exec` finds files to bind over `/etc` for namespace `name`.
fn etc_dir(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name)
}

impl Netns {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where a server or tool run in this namespace keeps `what` (a file or a directory):
    /// `<namespace>-<what>` in the temporary directory, removed with the lab (or, if the
    /// process died first, by the next lab's sweep).
    pub fn scratch(&self, what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{what}", self.name))
    }

    /// Runs `ip -n <ns> ARGS`, panicking with its stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Adds `cidr` (e.g. `192.0.2.2/24`) to `iface`. IPv6 addresses skip DAD so they work at once.
    pub fn addr(&self, iface: &str, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", iface];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args);
    }

    /// The MAC address of `iface`.
    pub fn mac(&self, iface: &str) -> [u8; 6] {
        let out = self.ip(&["link", "show", "dev", iface]);
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("{iface} in {} has no MAC: {out}", self.name));
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(part, 16).expect("hex MAC");
        }
        mac
    }

    /// Makes programs run in this namespace resolve names through `server` only: `ip netns exec`
    /// binds `/etc/netns/<name>/resolv.conf` over `/etc/resolv.conf` (removed with the lab).
    pub fn use_nameserver(&self, server: &str) {
        let dir = etc_dir(&self.name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let conf = format!("nameserver {server}\noptions timeout:1 attempts:2\n");
        std::fs::write(dir.join("resolv.conf"), conf).expect("write resolv.conf");
    }

    /// Runs a command inside the namespace and returns its output, whatever its status.
    pub fn output(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?} in {}: {e}", self.name))
    }

    /// Runs a command inside the namespace, panicking unless it succeeds; returns its stdout.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let out = self.output(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} in {} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running command inside the namespace, its output appended to `log`;
    /// it is ended, by its pid, on drop.
    pub fn spawn(&self, cmd: &[&str], log: &std::path::Path) -> Spawned {
        self.spawn_via(Entry::IpNetnsExec, cmd, log)
    }

    /// [`Netns::spawn`], entering the namespace the way `entry` says.
    pub fn spawn_via(&self, entry: Entry, cmd: &[&str], log: &std::path::Path) -> Spawned {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        let netns = format!("--net=/run/netns/{}", self.name);
        let mut command = match entry {
            Entry::IpNetnsExec => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.name]);
                c
            }
            Entry::Nsenter => {
                let mut c = Command::new("nsenter");
                c.arg(&netns);
                c
            }
        };
        let child = command
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} in {}: {e}", self.name));
        Spawned { child }
    }

    /// Moves the calling thread into this namespace until the guard drops.
    ///
    /// Sockets, netlink requests and BPF attach calls made meanwhile act inside the namespace.
    pub fn enter(&self) -> Entered {
        let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let target =
            File::open(format!("/run/netns/{}", self.name)).unwrap_or_else(|e| panic!("open netns {}: {e}", self.name));
        // SAFETY: setns on valid namespace fds only changes this thread's network namespace.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {}: {}", self.name, std::io::Error::last_os_error());
        Entered { original }
    }
}

/// How a process is put into a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `ip netns exec`: a private mount namespace with a fresh /sys (and no bpffs of the host's).
    IpNetnsExec,
    /// `nsenter --net`: the network namespace only, in the host's mount namespace, as a
    /// daemon that must restart without a gap is run.
    Nsenter,
}

/// The calling thread's stay in a namespace; dropping it returns the thread to where it was.
pub struct Entered {
    original: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: `original` is the thread's own earlier network namespace.
        let rc = unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            // Staying in the lab namespace would leak it into later tests on this thread.
            std::process::abort();
        }
    }
}

/// A process started in a namespace; terminated by pid (TERM, then KILL after 2 s) on drop.
pub struct Spawned {
    child: Child,
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Ends the process at once with SIGKILL (a crash, as far as it can tell) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit code, once it has ended (`None` while running or when a signal ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// Waits up to `within` for the process to end by itself; whether it did.
    pub fn wait_done(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Reaped already (ended or killed): its pid may belong to someone else by now.
        if !self.running() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the pid of a child we started and have not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes `fb<pid>x<n>-*` namespaces, and pin directories and `/etc/netns` files of the same
/// names, whose creating process no longer exists.
pub fn sweep_stale() {
    for e in std::fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
        if left_behind(&e.file_name().to_string_lossy()) {
            let _ = foobar::dataplane::Pins::remove_all(&e.path());
        }
    }
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if left_behind(name) {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }
    for e in std::fs::read_dir("/etc/netns").into_iter().flatten().flatten() {
        if left_behind(&e.file_name().to_string_lossy()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    remove_temp_entries(left_behind);
}

/// A lab name whose creating process is gone.
fn left_behind(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The pid encoded in a lab namespace name, or `None` for names that are not the lab's.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let (n, _role) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn only_lab_names_are_swept() {
        assert_eq!(owner_pid("fb123x0-client"), Some(123));
        assert_eq!(owner_pid("fb123x0"), None);
        assert_eq!(owner_pid("fbxyz-client"), None);
        assert_eq!(owner_pid("fb12ax3-node"), None);
        assert_eq!(owner_pid("docker-1"), None);
    }
}
