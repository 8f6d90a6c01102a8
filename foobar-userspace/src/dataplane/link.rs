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
    let sock = ioctl_socket()?;
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

/// `struct ifreq` with the `ifr_mtu` member.
#[repr(C)]
struct IfMtuReq {
    name: [u8; libc::IFNAMSIZ],
    mtu: libc::c_int,
    _pad: [u8; 20],
}

/// The smallest MTU of the namespace's interfaces (loopback's is never the smallest); 0 when
/// there is none. An interface that goes away while they are asked is skipped.
pub fn mtu_floor() -> io::Result<u32> {
    let sock = ioctl_socket()?;
    // SAFETY: if_nameindex returns an array ended by an all-zero entry, or null on failure.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut floor: Option<u32> = None;
    let mut result = Ok(());
    let mut at = list;
    loop {
        // SAFETY: `at` walks the array no further than its terminating entry.
        let entry = unsafe { &*at };
        if entry.if_index == 0 {
            break;
        }
        // SAFETY: each entry's name is a C string the array owns.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.if_name) }.to_bytes();
        let n = name.len().min(libc::IFNAMSIZ - 1);
        let mut req = IfMtuReq { name: [0; libc::IFNAMSIZ], mtu: 0, _pad: [0; 20] };
        req.name[..n].copy_from_slice(&name[..n]);
        // SAFETY: SIOCGIFMTU reads the name in `req` and writes its MTU, live for the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &raw mut req) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODEV) {
                result = Err(e);
                break;
            }
        } else {
            let mtu = u32::try_from(req.mtu).unwrap_or(0);
            floor = Some(floor.map_or(mtu, |f| f.min(mtu)));
        }
        // SAFETY: the terminating entry was not reached, so the next one is in the array.
        at = unsafe { at.add(1) };
    }
    // SAFETY: `list` came from if_nameindex and is freed once.
    unsafe { libc::if_freenameindex(list) };
    result.map(|()| floor.unwrap_or(0))
}

/// A datagram socket for interface ioctls, made in the calling thread's namespace.
fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: a plain socket call; the descriptor is owned by what it returns.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sock` is a fresh descriptor nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) })
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
