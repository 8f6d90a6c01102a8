//! Sending hand-built frames out of an interface, as a misbehaving host on the wire would.

use std::io;

use crate::netns::Netns;

/// Sends each frame out of `iface` in namespace `ns` through an `AF_PACKET` socket.
pub fn send(ns: &Netns, iface: &str, frames: &[Vec<u8>]) -> io::Result<()> {
    let _inside = ns.enter();
    let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
    // SAFETY: plain libc calls on a socket this function owns and closes.
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
        let mut result = Ok(());
        'frames: for f in frames {
            // A full device queue (ENOBUFS) drains in microseconds: back off, up to a second.
            for _ in 0..1000 {
                let sent = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                if sent >= 0 {
                    continue 'frames;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ENOBUFS) {
                    result = Err(err);
                    break 'frames;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            result = Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            break;
        }
        libc::close(fd);
        result
    }
}
