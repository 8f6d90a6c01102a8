//! Datagrams in and out by the batch (recvmmsg, sendmmsg): under load one system call moves
//! up to [`BATCH`] queries or answers instead of one.

use std::{
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
};

use socket2::{SockAddr, SockAddrStorage};

/// Most datagrams moved by one call.
pub const BATCH: usize = 32;

/// Room for a batch of received datagrams and their senders.
pub struct Received {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<SockAddrStorage>,
    lens: Vec<usize>,
    senders: Vec<Option<SocketAddr>>,
    count: usize,
}

impl Received {
    /// Room for [`BATCH`] datagrams of up to `max` bytes.
    pub fn new(max: usize) -> Received {
        Received {
            bufs: vec![vec![0; max]; BATCH],
            addrs: (0..BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            lens: vec![0; BATCH],
            senders: vec![None; BATCH],
            count: 0,
        }
    }

    /// Reads what is waiting on `socket` without blocking (`WouldBlock` if nothing is).
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let fd: RawFd = socket.as_raw_fd();
        let mut iovs: Vec<libc::iovec> =
            self.bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        // SAFETY: zeroed mmsghdrs are valid; each is pointed at a live iovec and address below.
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &raw mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
            m.msg_hdr.msg_namelen = self.addrs[i].size_of();
        }
        // SAFETY: every buffer the headers name lives (in self and `iovs`) through the call.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (i, m) in msgs.iter().take(self.count).enumerate() {
            self.lens[i] = m.msg_len as usize;
            let storage = std::mem::replace(&mut self.addrs[i], SockAddrStorage::zeroed());
            // SAFETY: the kernel wrote a socket address of this length into the storage.
            self.senders[i] = unsafe { SockAddr::new(storage, m.msg_hdr.msg_namelen) }.as_socket();
        }
        Ok(self.count)
    }

    /// The `i`th datagram of the last read and its sender (`None` for one with no IP sender).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        Some((&self.bufs[i][..self.lens[i]], self.senders[i]?))
    }
}

/// Sends each `(datagram, to)` of `out` on `socket` in as few calls as it takes; a datagram
/// the kernel refuses is skipped (UDP promises nothing more).
pub fn send(socket: &impl AsRawFd, out: &[(&[u8], SocketAddr)]) {
    let fd = socket.as_raw_fd();
    let addrs: Vec<SockAddr> = out.iter().map(|(_, to)| SockAddr::from(*to)).collect();
    let mut iovs: Vec<libc::iovec> =
        out.iter().map(|(d, _)| libc::iovec { iov_base: d.as_ptr().cast_mut().cast(), iov_len: d.len() }).collect();
    // SAFETY: as in `recv`.
    let mut msgs: Vec<libc::mmsghdr> = (0..out.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (i, m) in msgs.iter_mut().enumerate() {
        m.msg_hdr.msg_iov = &raw mut iovs[i];
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_name = addrs[i].as_ptr().cast_mut().cast();
        m.msg_hdr.msg_namelen = addrs[i].len();
    }
    let mut sent = 0;
    while sent < msgs.len() {
        let left = (msgs.len() - sent) as libc::c_uint;
        // SAFETY: the headers name buffers and addresses that live through the call; the
        // kernel only reads them.
        let n = unsafe { libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), left, libc::MSG_DONTWAIT) };
        // Refused (a full buffer, an unreachable sender): skip that one and go on.
        sent += if n > 0 { n as usize } else { 1 };
    }
}
