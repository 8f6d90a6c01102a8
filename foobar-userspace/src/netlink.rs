//! Interface addresses over rtnetlink: adding, removing and listing them, with the kernel's
//! errno as a typed error (where `ip addr` would have been a subprocess and its stderr). The
//! addresses foobar adds carry its mark in `IFA_PROTO` (Linux 6.1+; older kernels ignore
//! it), so `foobar cleanup` and the next run can tell them from the operator's. Also whether
//! IPv4 routing rules look at the source (what the data plane's next-hop cache keys on).

use std::{io, net::IpAddr};

/// The `IFA_PROTO` value on the addresses foobar adds (`ip -d addr` shows `proto 0xfb`).
pub const FOOBAR_PROTO: u8 = 0xfb;

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_GETRULE: u16 = 34;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_PROTO: u16 = 11;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_PERMANENT: u32 = 0x80;
const HEADER: usize = 16;
const IFADDRMSG: usize = 8;

/// An address on an interface, as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: u8,
    pub index: u32,
    /// `IFA_PROTO`: who added it (0: not said).
    pub proto: u8,
}

/// A netlink request the kernel refused, or a socket that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("no interface named {0}")]
    NoInterface(String),
    #[error("{what} {ip}: {source}")]
    Refused { what: &'static str, ip: IpAddr, source: io::Error },
    #[error("rtnetlink: {0}")]
    Socket(#[from] io::Error),
}

/// Adds `ip/prefix` to `interface`, marked as foobar's; IPv6 without duplicate detection, so
/// it answers at once.
pub fn add(interface: &str, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
    let index = index_of(interface)?;
    let mut msg = ifaddr(ip, prefix, index);
    attr(&mut msg, IFA_LOCAL, &octets(ip));
    attr(&mut msg, IFA_ADDRESS, &octets(ip));
    let flags = IFA_F_PERMANENT | if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
    attr(&mut msg, IFA_FLAGS, &flags.to_ne_bytes());
    attr(&mut msg, IFA_PROTO, &[FOOBAR_PROTO]);
    let socket = Socket::open()?;
    socket.ack(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &msg).map_err(|source| NetlinkError::Refused {
        what: "add address",
        ip,
        source,
    })
}

/// Removes `address` from its interface.
pub fn remove(address: &Address) -> Result<(), NetlinkError> {
    let mut msg = ifaddr(address.ip, address.prefix, address.index);
    attr(&mut msg, IFA_LOCAL, &octets(address.ip));
    attr(&mut msg, IFA_ADDRESS, &octets(address.ip));
    let socket = Socket::open()?;
    socket.ack(RTM_DELADDR, 0, &msg).map_err(|source| NetlinkError::Refused {
        what: "remove address",
        ip: address.ip,
        source,
    })
}

/// Every address in the calling thread's network namespace.
pub fn addresses() -> Result<Vec<Address>, NetlinkError> {
    let socket = Socket::open()?;
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let msg = vec![family as u8, 0, 0, 0, 0, 0, 0, 0];
        socket.dump(RTM_GETADDR, &msg, &mut |body| {
            if let Some(a) = parse_address(body) {
                out.push(a);
            }
        })?;
    }
    Ok(out)
}

/// Whether any IPv4 routing rule of this namespace selects by source prefix (`ip rule add
/// from ...`): only then can the route towards a backend depend on who the packet is from.
pub fn ipv4_rules_select_by_source() -> Result<bool, NetlinkError> {
    let socket = Socket::open()?;
    // A `fib_rule_hdr`: family, dst_len, src_len, tos, table, two reserved, action, flags.
    let msg = vec![libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut by_source = false;
    socket.dump(RTM_GETRULE, &msg, &mut |body| by_source |= body.get(2).is_some_and(|&src_len| src_len > 0))?;
    Ok(by_source)
}

/// The index of `interface` in this namespace.
pub fn index_of(interface: &str) -> Result<u32, NetlinkError> {
    let missing = || NetlinkError::NoInterface(interface.to_owned());
    let name = std::ffi::CString::new(interface).map_err(|_| missing())?;
    // SAFETY: if_nametoindex reads a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(missing()),
        i => Ok(i),
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// An `ifaddrmsg`: family, prefix length, flags, scope (universe), interface index.
fn ifaddr(ip: IpAddr, prefix: u8, index: u32) -> Vec<u8> {
    let family = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 } as u8;
    let mut msg = vec![family, prefix, 0, 0];
    msg.extend_from_slice(&index.to_ne_bytes());
    msg
}

/// Appends one attribute, padded to four bytes.
fn attr(msg: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(data);
    msg.resize(msg.len().next_multiple_of(4), 0);
}

/// One `RTM_NEWADDR` body of a dump: its address, prefix, interface and mark.
fn parse_address(body: &[u8]) -> Option<Address> {
    let head = body.get(..IFADDRMSG)?;
    let (family, prefix) = (i32::from(head[0]), head[1]);
    let index = u32::from_ne_bytes(head[4..8].try_into().ok()?);
    let (mut local, mut address, mut proto) = (None, None, 0);
    let mut rest = &body[IFADDRMSG..];
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        let data = rest.get(4..len.max(4))?;
        if len < 4 {
            return None;
        }
        let ip = match (family, data.len()) {
            (libc::AF_INET, 4) => <[u8; 4]>::try_from(data).ok().map(IpAddr::from),
            (libc::AF_INET6, 16) => <[u8; 16]>::try_from(data).ok().map(IpAddr::from),
            _ => None,
        };
        match kind {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            IFA_PROTO => proto = data.first().copied().unwrap_or(0),
            _ => {}
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Some(Address { ip: local.or(address)?, prefix, index, proto })
}

/// Takes each received message's type and body; `Some` ends the reading with its result.
type Reader<'a> = dyn FnMut(u16, &[u8]) -> Option<io::Result<()>> + 'a;

/// A route netlink socket, closed on drop.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        use std::os::fd::FromRawFd;
        // SAFETY: a plain socket call; the fd is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is not owned elsewhere.
        let socket = Socket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let timeout = libc::timeval { tv_sec: 2, tv_usec: 0 };
        // SAFETY: setsockopt reads `timeout` for its size; a failure leaves reads unbounded.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(socket)
    }

    fn send(&self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut msg = Vec::with_capacity(HEADER + body.len());
        msg.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: sends `msg` from a live buffer to the kernel (the default destination).
        let sent = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Reads one datagram's messages, handing each (type, body) to `each` until it says stop.
    fn receive(&self, each: &mut Reader<'_>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: receives into `buf`, of the length given.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n.unsigned_abs()];
            while rest.len() >= HEADER {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let Some(body) = rest.get(HEADER..len.max(HEADER)).filter(|_| len >= HEADER) else { break };
                if let Some(done) = each(kind, body) {
                    return done;
                }
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            }
        }
    }

    /// Sends a request that wants an acknowledgement, and returns the kernel's answer.
    fn ack(&self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.send(kind, flags | NLM_F_ACK, body)?;
        self.receive(&mut |kind, body| (kind == NLMSG_ERROR).then(|| errno(body)))
    }

    /// Sends a dump request, handing each answer's body to `each`.
    fn dump(&self, kind: u16, body: &[u8], each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        self.send(kind, NLM_F_DUMP, body)?;
        self.receive(&mut |kind, body| match kind {
            NLMSG_DONE => Some(Ok(())),
            NLMSG_ERROR => Some(errno(body)),
            _ => {
                each(body);
                None
            }
        })
    }
}

/// An `NLMSG_ERROR` body: 0 is the acknowledgement, a negative errno the refusal.
fn errno(body: &[u8]) -> io::Result<()> {
    let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-code)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_an_address_reads_back() {
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        let mut msg = ifaddr(ip, 32, 7);
        attr(&mut msg, IFA_LOCAL, &octets(ip));
        attr(&mut msg, IFA_PROTO, &[FOOBAR_PROTO]);
        assert_eq!(msg.len(), 8 + 8 + 8, "a one-byte attribute takes eight");
        assert_eq!(parse_address(&msg), Some(Address { ip, prefix: 32, index: 7, proto: FOOBAR_PROTO }));
        assert!(parse_address(&msg[..5]).is_none(), "a short message is no address");
        assert!(errno(&(-17i32).to_ne_bytes()).is_err_and(|e| e.raw_os_error() == Some(17)));
    }
}
