//! The open-file limit, raised at start to the hard limit: a default soft limit of 1024 is
//! less than the DNS, metrics and control listeners may hold at once plus the sockets health
//! checks and the database monitor open, and running out of descriptors fails all of them.

use tracing::info;

/// Descriptors kept free beyond the listeners' caps: health probes, the database monitor,
/// BPF maps and programs, logs.
const RESERVE: u64 = 512;

/// The open-file limit that is too low for the connection caps configured.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-file limit is {have} (hard limit {hard}) but dns.tcp_connections and the other listeners need \
     {need}: raise it (LimitNOFILE= in the systemd unit, `ulimit -n`) or lower dns.tcp_connections"
)]
pub struct FdLimitError {
    pub have: u64,
    pub hard: u64,
    pub need: u64,
}

/// Raises the soft limit to the hard one and checks it covers `connections` (every
/// listener's cap) and the reserve.
pub fn raise(connections: u64) -> Result<u64, FdLimitError> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the rlimit struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                info!(from = limit.rlim_cur, to = raised.rlim_cur, "raised the open-file limit");
                limit = raised;
            }
        }
    }
    let need = connections + RESERVE;
    if limit.rlim_cur < need {
        return Err(FdLimitError { have: limit.rlim_cur, hard: limit.rlim_max, need });
    }
    Ok(limit.rlim_cur)
}
