//! Dropping privileges once the data plane is loaded and attached: the daemon keeps only the
//! capabilities it uses while serving, so the DNS parser, the HTTP checks and the MySQL
//! client never run with the rest of root's (reading any file, loading kernel modules,
//! tracing other processes). Called before any other thread exists: capabilities are per
//! thread, and threads started later inherit these.

use tracing::info;

/// What serving needs: changing addresses, XDP links and socket buffers (`NET_ADMIN`),
/// binding DNS on port 53 (`NET_BIND_SERVICE`), and BPF map and link operations (`BPF`; on
/// kernels before 5.8, which lack it, `SYS_ADMIN` instead).
const NET_BIND_SERVICE: u32 = 10;
const NET_ADMIN: u32 = 12;
const SYS_ADMIN: u32 = 21;
const BPF: u32 = 39;

fn name(cap: u32) -> &'static str {
    match cap {
        NET_BIND_SERVICE => "CAP_NET_BIND_SERVICE",
        NET_ADMIN => "CAP_NET_ADMIN",
        SYS_ADMIN => "CAP_SYS_ADMIN",
        BPF => "CAP_BPF",
        _ => "?",
    }
}

/// The highest capability number this build knows (CAP_CHECKPOINT_RESTORE).
const LAST_CAP: u32 = 40;

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Why privileges could not be dropped (the daemon then refuses to go on).
#[derive(Debug, thiserror::Error)]
#[error("dropping privileges: {what}: {source}")]
pub struct PrivilegeError {
    what: &'static str,
    source: std::io::Error,
}

/// The capabilities serving keeps, of those `permitted`.
fn serving(permitted: u64) -> u64 {
    let bpf = if permitted & 1 << BPF != 0 { BPF } else { SYS_ADMIN };
    permitted & (1 << NET_BIND_SERVICE | 1 << NET_ADMIN | 1 << bpf)
}

/// This thread's permitted set and the raw capability data, as capget gives them.
fn current() -> Result<(u64, [Data; 2]), PrivilegeError> {
    let mut header = Header { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two Data structs (version 3) into the array it is given.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(error("capget"));
    }
    Ok((u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32, data))
}

/// The set [`drop_to_serving`] keeps, for this process as it is now.
pub fn serving_set() -> Result<u64, PrivilegeError> {
    current().map(|(permitted, _)| serving(permitted))
}

/// Keeps only what serving needs (of what this process has) in the effective, permitted
/// and bounding sets, clears the inheritable and ambient sets, and forbids gaining
/// privileges by exec. Without any capability (not root) there is nothing to drop.
pub fn drop_to_serving() -> Result<(), PrivilegeError> {
    let (permitted, mut data) = current()?;
    if permitted == 0 {
        return Ok(());
    }
    let keep = serving(permitted);
    for cap in 0..=LAST_CAP {
        // SAFETY: prctl with integer arguments only. EINVAL: the kernel does not know `cap`.
        if keep & 1 << cap == 0 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(PrivilegeError { what: "PR_CAPBSET_DROP", source: e });
            }
        }
    }
    let words = [keep as u32, (keep >> 32) as u32];
    for (d, w) in data.iter_mut().zip(words) {
        *d = Data { effective: w, permitted: w, inheritable: 0 };
    }
    let mut header = Header { version: CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: capset reads the header and two Data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } != 0 {
        return Err(error("capset"));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 {
            return Err(error("PR_CAP_AMBIENT_CLEAR_ALL"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(error("PR_SET_NO_NEW_PRIVS"));
        }
    }
    let names: Vec<&str> = (0..=LAST_CAP).filter(|c| keep & 1 << c != 0).map(name).collect();
    info!(kept = ?names, "dropped every other capability");
    Ok(())
}

fn error(what: &'static str) -> PrivilegeError {
    PrivilegeError { what, source: std::io::Error::last_os_error() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_keeps_bpf_or_else_sys_admin() {
        let all = (1u64 << (LAST_CAP + 1)) - 1;
        assert_eq!(serving(all), 1 << 10 | 1 << 12 | 1 << 39);
        let before_5_8 = (1u64 << 38) - 1;
        assert_eq!(serving(before_5_8), 1 << 10 | 1 << 12 | 1 << 21);
        assert_eq!(serving(0), 0);
    }
}
