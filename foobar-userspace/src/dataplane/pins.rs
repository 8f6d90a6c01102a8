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

use aya::maps::{MapData, MapInfo, MapType};
use foobar_common::{
    LAYOUT_MAP, LAYOUT_VERSION, PROXY_STEPS_MAP, STATS_MAP, XDP_PROXY_PROGRAMS,
    counters::{COUNTER_SLOTS, FAST_KINDS, FAST_STATS_MAP},
    firewall::{MAX_RULES, RULE_HITS_MAP, SYN_TAT_MAP, SYN_TRACKED_SOURCES, SourceKey},
    lb::{
        BACKEND_STATS_MAP, BACKEND_TIMEOUTS_MAP, CONNTRACK_MAP, CURSORS_MAP, DNAT_MAP, Flow, FlowKey, HANDOFF_MAP,
        Handoff, NAT_CURSOR_MAP, NAT_MAP, NatKey, NatTarget, SERVICE_STATS_MAP, SYN_KEY_MAP, TrafficStats,
    },
};
use tracing::{info, warn};

use super::{DataplaneError, capacity::Capacity};

/// How many entries a pinned map has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entries {
    Fixed(u32),
    /// Set by the config's `[capacity]`.
    Capacity,
    /// A counter array: one slot per counter this build counts; an older build's shorter
    /// array is adopted (its missing counters read 0).
    Counters(u32),
}

/// A map whose contents must outlive a process: its name, kind, key and value sizes, entries.
struct Pinned {
    name: &'static str,
    kind: MapType,
    key: usize,
    value: usize,
    entries: Entries,
}

/// Every map whose contents must outlive a process, as this build makes them.
const PINNED: &[Pinned] = &[
    Pinned {
        name: CONNTRACK_MAP,
        kind: MapType::LruHash,
        key: size_of::<FlowKey>(),
        value: size_of::<Flow>(),
        entries: Entries::Capacity,
    },
    Pinned {
        name: NAT_MAP,
        kind: MapType::Hash,
        key: size_of::<NatKey>(),
        value: size_of::<NatTarget>(),
        entries: Entries::Capacity,
    },
    Pinned { name: NAT_CURSOR_MAP, kind: MapType::Array, key: 4, value: 8, entries: Entries::Fixed(1) },
    Pinned {
        name: DNAT_MAP,
        kind: MapType::LruHash,
        key: size_of::<FlowKey>(),
        value: size_of::<NatTarget>(),
        entries: Entries::Capacity,
    },
    // Cookies sent before a restart still check after it.
    Pinned { name: SYN_KEY_MAP, kind: MapType::Array, key: 4, value: 16, entries: Entries::Fixed(1) },
    Pinned { name: CURSORS_MAP, kind: MapType::Array, key: 4, value: 8, entries: Entries::Capacity },
    Pinned {
        name: SYN_TAT_MAP,
        kind: MapType::LruHash,
        key: size_of::<SourceKey>(),
        value: 8,
        entries: Entries::Fixed(SYN_TRACKED_SOURCES),
    },
    Pinned { name: STATS_MAP, kind: MapType::PerCpuArray, key: 4, value: 8, entries: Entries::Counters(COUNTER_SLOTS) },
    Pinned {
        name: FAST_STATS_MAP,
        kind: MapType::PerCpuArray,
        key: 4,
        value: 8,
        entries: Entries::Counters(FAST_KINDS),
    },
    Pinned { name: RULE_HITS_MAP, kind: MapType::PerCpuArray, key: 4, value: 8, entries: Entries::Fixed(MAX_RULES) },
    Pinned {
        name: SERVICE_STATS_MAP,
        kind: MapType::PerCpuArray,
        key: 4,
        value: size_of::<TrafficStats>(),
        entries: Entries::Capacity,
    },
    Pinned {
        name: BACKEND_STATS_MAP,
        kind: MapType::PerCpuArray,
        key: 4,
        value: size_of::<TrafficStats>(),
        entries: Entries::Capacity,
    },
    Pinned { name: BACKEND_TIMEOUTS_MAP, kind: MapType::PerCpuArray, key: 4, value: 8, entries: Entries::Capacity },
    Pinned { name: LAYOUT_MAP, kind: MapType::Array, key: 4, value: 8, entries: Entries::Fixed(1) },
    // The SYN proxy's steps and what they are handed: a kept data plane's programs call them.
    Pinned {
        name: PROXY_STEPS_MAP,
        kind: MapType::ProgramArray,
        key: 4,
        value: 4,
        entries: Entries::Fixed(XDP_PROXY_PROGRAMS.len() as u32),
    },
    Pinned {
        name: HANDOFF_MAP,
        kind: MapType::PerCpuArray,
        key: 4,
        value: size_of::<Handoff>(),
        entries: Entries::Fixed(1),
    },
];

/// The names of the maps that are pinned.
pub fn pinned_maps() -> impl Iterator<Item = &'static str> {
    PINNED.iter().map(|p| p.name)
}

/// A pinned map's shape, for messages: `1048576 entries of 40 + 48 bytes (LruHash)`.
fn shape(kind: MapType, key: u32, value: u32, entries: u32) -> String {
    format!("{entries} entries of {key} + {value} bytes ({kind:?})")
}

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
            // SAFETY: mount(2) with NUL-terminated literals and no data.
            let rc =
                unsafe { libc::mount(c"bpf".as_ptr(), c"/sys/fs/bpf".as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null()) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("mounting bpffs at /sys/fs/bpf: {e}")));
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

    /// Checks that every map pinned here is one this build, under `capacity`, would make, and
    /// that their layout version is this build's: adopting anything else would misread it.
    pub fn check_layout(&self, capacity: &Capacity) -> Result<(), DataplaneError> {
        for p in PINNED {
            let path = self.map(p.name);
            if !path.exists() {
                continue;
            }
            let info = MapInfo::from_pin(&path)?;
            let (entries, capacity_key) = match p.entries {
                Entries::Fixed(n) | Entries::Counters(n) => (n, None),
                Entries::Capacity => {
                    let (n, key) = capacity.of(p.name).ok_or(DataplaneError::MissingMap(p.name))?;
                    (n, Some(key))
                }
            };
            let kind = info.map_type()?;
            let sizes_match =
                kind == p.kind && info.key_size() as usize == p.key && info.value_size() as usize == p.value;
            let entries_match = match p.entries {
                Entries::Counters(n) => info.max_entries() <= n,
                _ => info.max_entries() == entries,
            };
            if sizes_match && entries_match {
                continue;
            }
            let found = shape(kind, info.key_size(), info.value_size(), info.max_entries());
            let wanted = shape(p.kind, p.key as u32, p.value as u32, entries);
            return Err(match (sizes_match, capacity_key) {
                (true, Some(key)) => DataplaneError::PinnedCapacity {
                    map: p.name,
                    path,
                    key,
                    pinned: info.max_entries(),
                    wanted: entries,
                },
                _ => DataplaneError::PinnedLayout { map: p.name, path, found, wanted },
            });
        }
        let layout = self.map(LAYOUT_MAP);
        if layout.exists() {
            let data = MapData::from_pin(&layout)?;
            let map = aya::maps::Map::Array(data);
            let array: aya::maps::Array<&aya::maps::MapData, u64> = aya::maps::Array::try_from(&map)?;
            let version = array.get(&0, 0)?;
            if version != LAYOUT_VERSION {
                return Err(DataplaneError::PinnedVersion {
                    path: self.dir.clone(),
                    pinned: version,
                    wanted: LAYOUT_VERSION,
                });
            }
        }
        Ok(())
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
