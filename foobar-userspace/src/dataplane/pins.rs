//! What survives the daemon: stateful maps and XDP links pinned under `daemon.pin_dir`.
//!
//! A new foobar process reuses the pinned maps (so tracked flows, NAT bindings, cursors and
//! counters carry on) and swaps its programs into the pinned links atomically, so forwarding
//! never stops across a restart or an upgrade. Maps holding configuration are not pinned: each
//! process fills fresh ones before its programs take over.

use std::{
    fs::File,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use foobar_common::{
    STATS_MAP,
    counters::FAST_STATS_MAP,
    firewall::{RULE_HITS_MAP, SYN_TAT_MAP},
    lb::{BACKEND_STATS_MAP, CONNTRACK_MAP, CURSORS_MAP, NAT_MAP, SERVICE_STATS_MAP},
};
use tracing::{info, warn};

use super::DataplaneError;

/// Maps whose contents must outlive a process.
pub const PINNED_MAPS: &[&str] = &[
    CONNTRACK_MAP,
    NAT_MAP,
    "LB_NAT_CURSOR",
    CURSORS_MAP,
    SYN_TAT_MAP,
    STATS_MAP,
    FAST_STATS_MAP,
    RULE_HITS_MAP,
    SERVICE_STATS_MAP,
    BACKEND_STATS_MAP,
];

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A pin directory: `<dir>/<MAP>` for maps, `<dir>/link-<interface>` for XDP links.
#[derive(Clone, Debug)]
pub struct Pins {
    pub dir: PathBuf,
    /// Whether the pins live in a bpffs private to this mount namespace, so that they die with
    /// it and the next start cannot take them over.
    pub private: bool,
}

/// A pin directory held by this process: one foobar per pin directory. The lock is an
/// advisory `flock` on the directory itself, released when the holder exits however it exits.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

/// Where bpffs is mounted on a standard host.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

impl Pins {
    /// Makes sure `dir` exists on a BPF filesystem, mounting bpffs at /sys/fs/bpf if needed.
    pub fn prepare(dir: &Path) -> io::Result<Pins> {
        let root = Path::new(BPFFS_ROOT);
        if dir.starts_with(root) && !is_bpffs(root) {
            std::fs::create_dir_all(root)?;
            let ok = std::process::Command::new("mount").args(["-t", "bpf", "bpf", BPFFS_ROOT]).status()?.success();
            if !ok {
                return Err(io::Error::other("mounting bpffs at /sys/fs/bpf failed"));
            }
            info!("mounted bpffs at /sys/fs/bpf");
        }
        std::fs::create_dir_all(dir)?;
        if !is_bpffs(dir) {
            return Err(io::Error::other(format!("{} is not on a BPF filesystem (mount -t bpf)", dir.display())));
        }
        let private = is_private_bpffs(dir);
        if private {
            warn!(
                pins = %dir.display(),
                "the pins are in a bpffs private to this mount namespace (foobar started under `ip netns exec`, \
                 or in a container without the host's /sys/fs/bpf): they die with it, so the next start attaches \
                 afresh and resets every open connection. Run foobar in the host's mount namespace \
                 (`nsenter --net=/var/run/netns/NAME foobar run ...`) or bind-mount the host's /sys/fs/bpf"
            );
        }
        Ok(Pins { dir: dir.to_path_buf(), private })
    }

    /// Takes the pin directory for this process, or says who has it.
    pub fn lock(&self) -> Result<PinLock, DataplaneError> {
        let dir_error = |source| DataplaneError::PinDir { path: self.dir.clone(), source };
        let dir = File::open(&self.dir).map_err(dir_error)?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(DataplaneError::AlreadyRunning { pin_dir: self.dir.clone(), pid: lock_holder(&dir) });
            }
            return Err(dir_error(err));
        }
        Ok(PinLock { _dir: dir })
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn link(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("link-{interface}"))
    }

    /// Removes every pin (links detach when their last pin and fd go), then the directory.
    pub fn remove_all(dir: &Path) -> io::Result<usize> {
        let mut removed = 0;
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    std::fs::remove_file(e.path())?;
                    removed += 1;
                }
                std::fs::remove_dir(dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(removed)
    }
}

/// The pid holding an flock on `file`, from /proc/locks (`1: FLOCK ADVISORY WRITE <pid>
/// <major>:<minor>:<inode> 0 EOF`, device numbers in hex).
fn lock_holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let id = format!("{:02x}:{:02x}:{}", libc::major(dev), libc::minor(dev), meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&id.as_str())).then(|| fields.get(4)?.parse().ok())?
    })
}

/// Whether `dir`'s bpffs is private to this process's mount namespace: the nearest ancestor
/// in another mount namespace (one `ip netns exec` or `unshare -m` left behind) sees another
/// filesystem at that path, so the pins die with this namespace. Unknown (false) when no
/// ancestor in another mount namespace can be read.
fn is_private_bpffs(dir: &Path) -> bool {
    let mount_ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|m| m.ino()).ok();
    let (Some(ours), Ok(pins)) = (mount_ns("self"), std::fs::metadata(dir)) else { return false };
    let mut pid = parent_of("self");
    for _ in 0..32 {
        let Some(p) = pid else { return false };
        match mount_ns(&p.to_string()) {
            Some(ns) if ns != ours => {
                let theirs = std::fs::metadata(format!("/proc/{p}/root{}", dir.display()));
                return theirs.map_or(true, |m| m.dev() != pins.dev());
            }
            Some(_) if p > 1 => pid = parent_of(&p.to_string()),
            _ => return false,
        }
    }
    false
}

/// The parent pid of `pid` (`self` or a number), from `/proc/<pid>/stat`.
fn parent_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so read after the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs writes into a zeroed struct we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
