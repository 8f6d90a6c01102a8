//! The addresses foobar answers on: every service VIP and DNS listen address must be local to
//! the node, or the kernel would neither answer ARP/ND for them nor accept DNS queries. Those
//! missing are added to `daemon.vip_interface` (by default the first untrusted interface, or the
//! first interface if none is; nowhere with `"none"`); those the operator configured are left
//! alone; on a clean exit foobar removes only its own (marked as such, so that a later run and
//! `foobar cleanup` know them too).

use std::{collections::BTreeSet, net::IpAddr};

use tracing::{info, warn};

use crate::{config::Config, netlink};

/// Addresses foobar added and will remove again.
#[derive(Debug, Default)]
pub struct Added {
    entries: Vec<netlink::Address>,
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

/// Takes over the addresses an earlier run added and left (marked as foobar's), then adds what
/// `config` wants and is missing; returns what foobar has added, to remove again.
pub fn ensure(config: &Config) -> Added {
    let mut added = Added { entries: marked() };
    for a in &added.entries {
        info!(ip = %a.ip, "service address kept from an earlier run");
    }
    added.follow(config);
    added
}

/// Where foobar adds the addresses `config` wants (`None`: nowhere).
fn vip_interface(config: &Config) -> Option<String> {
    let d = &config.daemon;
    match &d.vip_interface {
        Some(v) if v.get_ref() == "none" => None,
        Some(v) => Some(v.get_ref().clone()),
        None => d.untrusted.first().or(d.interfaces.first()).map(|i| i.get_ref().clone()),
    }
}

/// The addresses in this namespace that foobar added (by its mark), on any interface.
pub fn marked() -> Vec<netlink::Address> {
    match netlink::addresses() {
        Ok(all) => all.into_iter().filter(|a| a.proto == netlink::FOOBAR_PROTO).collect(),
        Err(e) => {
            warn!(error = %e, "cannot list interface addresses");
            Vec::new()
        }
    }
}

impl Added {
    /// Adds the addresses `config` wants that are missing, and removes those foobar added that
    /// it no longer wants (a reload that adds or drops a VIP, a restart with another config).
    pub fn follow(&mut self, config: &Config) {
        let wanted = wanted(config);
        let (keep, stale): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.entries).into_iter().partition(|a| wanted.contains(&a.ip));
        self.entries = keep;
        Added { entries: stale }.remove();
        let Some(iface) = vip_interface(config) else { return };
        let present = local_addresses();
        for ip in wanted.into_iter().filter(|ip| !present.contains(ip)) {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            match netlink::add(&iface, ip, prefix).and_then(|()| netlink::index_of(&iface)) {
                Ok(index) => {
                    info!(%ip, interface = iface, "added service address");
                    self.entries.push(netlink::Address { ip, prefix, index, proto: netlink::FOOBAR_PROTO });
                }
                Err(e) => warn!(%ip, interface = iface, error = %e, "cannot add service address"),
            }
        }
    }

    /// Removes the addresses foobar added (and nothing else).
    pub fn remove(self) {
        for a in self.entries {
            match netlink::remove(&a) {
                Ok(()) => info!(ip = %a.ip, "removed service address"),
                Err(e) => warn!(error = %e, "cannot remove a service address"),
            }
        }
    }
}
