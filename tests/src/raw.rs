//! Sending hand-built frames out of an interface, as a misbehaving host on the wire would.

use std::{io, time::Instant};

use crate::netns::Netns;

/// An `AF_PACKET` socket bound for sending out of one interface (closed on drop).
struct Raw {
    fd: libc::c_int,
    addr: libc::sockaddr_ll,
}

impl Raw {
    /// Opens the socket; the caller must already be inside the interface's namespace.
    fn open(iface: &str) -> io::Result<Raw> {
        let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
        // SAFETY: plain libc calls; the fd is owned by the returned value, which closes it.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr());
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            Ok(Raw { fd, addr })
        }
    }

    /// Sends one frame; `Ok(false)` when the device queue is full (ENOBUFS) right now.
    fn send(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: the buffer and address outlive the call; the fd is open.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const self.addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent >= 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOBUFS) { Ok(false) } else { Err(err) }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: closing the fd this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Sends each frame out of `iface` in namespace `ns`, waiting out a full queue (ENOBUFS
/// drains in microseconds) for up to a second per frame.
pub fn send(ns: &Netns, iface: &str, frames: &[Vec<u8>]) -> io::Result<()> {
    let _inside = ns.enter();
    let raw = Raw::open(iface)?;
    for f in frames {
        let mut tries = 0;
        while !raw.send(f)? {
            tries += 1;
            if tries == 1000 {
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Sends `frames` round and round out of `iface` in `ns` at `per_second` (in 1 ms batches)
/// until `until`; how many went out. A full queue is not waited for: a flood just loses them.
pub fn flood(ns: &Netns, iface: &str, frames: &[Vec<u8>], per_second: u64, until: Instant) -> io::Result<u64> {
    let _inside = ns.enter();
    let raw = Raw::open(iface)?;
    let batch = (per_second / 1000).max(1);
    let started = Instant::now();
    let mut next = frames.iter().cycle();
    let (mut sent, mut tick) = (0u64, 0u32);
    while Instant::now() < until {
        for f in next.by_ref().take(batch as usize) {
            if raw.send(f)? {
                sent += 1;
            }
        }
        tick += 1;
        let due = started + std::time::Duration::from_millis(u64::from(tick));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(sent)
}
