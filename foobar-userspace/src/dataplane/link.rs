//! What the kernel says about an interface: its driver (which decides what `auto` tries) and
//! the XDP mode a program is attached in (what an adopted link really runs in).
//!
//! Both are asked of the calling thread's network namespace, through a socket made there:
//! sysfs shows the namespace it was mounted in, which a daemon entered with `nsenter --net`
//! does not share.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd},
};

use aya::programs::XdpMode as KernelMode;

/// `ETHTOOL_GDRVINFO` and the `struct ethtool_drvinfo` it fills (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ifreq` with the `ifr_data` member.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// The driver behind `interface` (`veth`, `mlx5_core`, `virtio_net`, ...), as `ethtool -i` names it.
pub fn driver(interface: &str) -> io::Result<String> {
    if interface.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: a datagram socket for the ioctl, closed when `sock` drops.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sock` is a fresh descriptor this function owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) };
    // SAFETY: all-zero is a valid `ethtool_drvinfo` to fill.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: (&raw mut info).cast(), _pad: [0; 16] };
    req.name[..interface.len()].copy_from_slice(interface.as_bytes());
    // SAFETY: SIOCETHTOOL reads `req` and writes `info`, both live for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// rtnetlink constants (linux/rtnetlink.h, linux/if_link.h).
const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const NLA_F_NESTED: u16 = 1 << 15;

#[repr(C)]
struct LinkRequest {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    _pad: u8,
    ifi_type: u16,
    index: i32,
    ifi_flags: u32,
    ifi_change: u32,
}

/// The mode the XDP program on interface `index` runs in, as the kernel reports it (`None`
/// when none is attached).
pub fn attached_mode(index: u32) -> io::Result<Option<KernelMode>> {
    // SAFETY: a netlink socket, closed when `sock` drops.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor this function owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    let req = LinkRequest {
        len: size_of::<LinkRequest>() as u32,
        kind: RTM_GETLINK,
        flags: NLM_F_REQUEST,
        seq: 1,
        pid: 0,
        family: libc::AF_UNSPEC as u8,
        _pad: 0,
        ifi_type: 0,
        index: index as i32,
        ifi_flags: 0,
        ifi_change: 0,
    };
    // SAFETY: sends the request struct, which lives for the call.
    let sent = unsafe { libc::send(sock.as_raw_fd(), (&raw const req).cast(), size_of::<LinkRequest>(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: receives into `buf`, which is as long as it says.
    let got = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let reply = &buf[..got as usize];
    let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    if u16_at(reply, 4) != Some(RTM_NEWLINK) {
        return Err(io::Error::other("rtnetlink answered something other than the link"));
    }
    // nlmsghdr (16 bytes) + ifinfomsg (16 bytes), then attributes, each 4-byte aligned.
    let attr = find_attr(&reply[32.min(reply.len())..], IFLA_XDP);
    let Some(xdp) = attr else { return Ok(None) };
    let attached = find_attr(xdp, IFLA_XDP_ATTACHED).and_then(|v| v.first().copied());
    Ok(match attached {
        Some(XDP_ATTACHED_DRV) => Some(KernelMode::Driver),
        Some(XDP_ATTACHED_SKB) => Some(KernelMode::Skb),
        Some(XDP_ATTACHED_HW) => Some(KernelMode::Hardware),
        _ => None,
    })
}

/// The payload of the netlink attribute of type `kind` in `attrs`.
fn find_attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == kind {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    None
}
