//! What survives the daemon: stateful maps and XDP links pinned under `daemon.pin_dir`.
//!
//! A new foobar process reuses the pinned maps (so tracked flows, NAT bindings, cursors and
//! counters carry on) and swaps its programs into the pinned links atomically, so forwarding
//! never stops across a restart or an upgrade. Maps holding configuration are not pinned: each
//! process fills fresh ones before its programs take over.

use std::{
    io,
    path::{Path, PathBuf},
};

use foobar_common::{
    STATS_MAP,
    counters::FAST_STATS_MAP,
    firewall::{RULE_HITS_MAP, SYN_TAT_MAP},
    lb::{BACKEND_STATS_MAP, CONNTRACK_MAP, CURSORS_MAP, NAT_MAP, SERVICE_STATS_MAP},
};
use tracing::info;

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
}

impl Pins {
    /// Makes sure `dir` exists on a BPF filesystem, mounting bpffs at /sys/fs/bpf if needed.
    pub fn prepare(dir: &Path) -> io::Result<Pins> {
        let root = Path::new("/sys/fs/bpf");
        if dir.starts_with(root) && !is_bpffs(root) {
            std::fs::create_dir_all(root)?;
            let ok = std::process::Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]).status()?.success();
            if !ok {
                return Err(io::Error::other("mounting bpffs at /sys/fs/bpf failed"));
            }
            info!("mounted bpffs at /sys/fs/bpf");
        }
        std::fs::create_dir_all(dir)?;
        if !is_bpffs(dir) {
            return Err(io::Error::other(format!("{} is not on a BPF filesystem (mount -t bpf)", dir.display())));
        }
        Ok(Pins { dir: dir.to_path_buf() })
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

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs writes into a zeroed struct we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
