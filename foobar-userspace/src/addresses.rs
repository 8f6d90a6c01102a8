//! The addresses foobar answers on: every service VIP and DNS listen address must be local to
//! the node, or the kernel would neither answer ARP/ND for them nor accept DNS queries. Those
//! missing are added to `daemon.vip_interface` (by default the first untrusted interface, or the
//! first interface if none is; nowhere with `"none"`); those the operator configured are left
//! alone; on a clean exit foobar removes only its own.

use std::{collections::BTreeSet, net::IpAddr, process::Command};

use tracing::{info, warn};

use crate::config::Config;

/// Addresses foobar added and will remove again.
#[derive(Debug, Default)]
pub struct Added {
    entries: Vec<(IpAddr, String)>,
}

/// The node's addresses, on any interface, in the calling thread's namespace.
pub fn local_addresses() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.insert(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.insert(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Every address the config says foobar answers on.
pub fn wanted(config: &Config) -> BTreeSet<IpAddr> {
    let mut out: BTreeSet<IpAddr> = config.services.iter().map(|s| *s.vip.get_ref()).collect();
    if let Some(dns) = &config.dns {
        out.extend(dns.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()));
    }
    out
}

/// Adds the wanted addresses that are missing; returns what it added.
pub fn ensure(config: &Config) -> Added {
    let d = &config.daemon;
    let iface = match &d.vip_interface {
        Some(v) if v.get_ref() == "none" => return Added::default(),
        Some(v) => v.get_ref().clone(),
        None => match d.untrusted.first().or(d.interfaces.first()) {
            Some(i) => i.get_ref().clone(),
            None => return Added::default(),
        },
    };
    let present = local_addresses();
    let mut added = Added::default();
    for ip in wanted(config).into_iter().filter(|ip| !present.contains(ip)) {
        let prefix = if ip.is_ipv4() { "32" } else { "128" };
        let mut cmd = Command::new("ip");
        cmd.args(["addr", "add", &format!("{ip}/{prefix}"), "dev", &iface]);
        if ip.is_ipv6() {
            cmd.arg("nodad");
        }
        match cmd.output() {
            Ok(o) if o.status.success() => {
                info!(%ip, interface = iface, "added service address");
                added.entries.push((ip, iface.clone()));
            }
            Ok(o) => {
                warn!(%ip, interface = iface, error = %String::from_utf8_lossy(&o.stderr).trim(), "cannot add service address")
            }
            Err(e) => warn!(%ip, error = %e, "cannot run `ip` to add a service address"),
        }
    }
    added
}

impl Added {
    /// Removes the addresses foobar added (and nothing else).
    pub fn remove(self) {
        for (ip, iface) in self.entries {
            let prefix = if ip.is_ipv4() { "32" } else { "128" };
            let ok = Command::new("ip")
                .args(["addr", "del", &format!("{ip}/{prefix}"), "dev", &iface])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                info!(%ip, interface = iface, "removed service address");
            }
        }
    }
}
