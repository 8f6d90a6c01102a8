//! Types and pure packet logic shared by foobar's XDP programs and its daemon.
//!
//! Everything here is `no_std` and free of kernel helpers so that the exact code the
//! kernel runs can be unit-tested, property-tested and fuzzed on the host.
//!
//! # Layout
//! - [`bytes`]: the [`bytes::PacketBytes`] trait, the parser's only window on a packet.
//! - [`parse`]: Ethernet / VLAN / IPv4 / IPv6 / TCP / UDP / ICMP parsing into a [`parse::Parsed`]
//!   summary, or the [`parse::Malformed`] reason a packet was refused.
//! - [`addr`]: addresses as map keys hold them, and prefix matching.
//! - [`firewall`]: the firewall's map layouts, rule sets and the GCRA SYN limiter.
//! - [`lb`]: the load balancer's maps, flow keys, the flow hash and expiry.
//! - [`csum`]: incremental checksum updates for NAT.
//! - [`counters`]: the catalogue of per-CPU counters the data plane keeps and their names.
//! - [`dns`]: DNS answered from XDP: its maps and the reading of a query.
//! - [`cookie`] (over [`siphash`]): SYN cookies; [`tcpopt`]: TCP options read and written.
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod bytes;
pub mod cookie;
pub mod counters;
pub mod csum;
pub mod dns;
pub mod firewall;
pub mod lb;
pub mod parse;
#[cfg(feature = "user")]
mod pod;
pub mod siphash;
pub mod tcpopt;

/// XDP program for trusted interfaces, as `bpftool prog show` lists it.
pub const XDP_TRUSTED_PROGRAM: &str = "xdp_trusted";
/// XDP program for untrusted interfaces (`daemon.untrusted`): the same path with the firewall
/// in front.
pub const XDP_UNTRUSTED_PROGRAM: &str = "xdp_untrusted";
/// The SYN proxy's steps, XDP programs reached by tail call from the two above, in the order
/// of their slots in [`PROXY_STEPS_MAP`].
pub const XDP_PROXY_PROGRAMS: [&str; 4] = ["xdp_proxy_syn", "xdp_proxy_ack", "xdp_proxy_hold", "xdp_proxy_backend"];
/// The program array the proxy's steps are called through.
pub const PROXY_STEPS_MAP: &str = "LB_PROXY_STEPS";
/// A pass-everything XDP program: the floor benchmarks compare against.
pub const XDP_FLOOR_PROGRAM: &str = "xdp_floor";
/// Name of the per-CPU counter array in the eBPF object.
pub const STATS_MAP: &str = "FOOBAR_STATS";
/// A one-slot array pinned with the stateful maps, holding [`LAYOUT_VERSION`].
pub const LAYOUT_MAP: &str = "FOOBAR_LAYOUT";
/// The meaning of the pinned maps' contents. Bumped when a pinned map keeps its sizes but its
/// fields change meaning, so that a build never adopts pins it would misread (size changes are
/// caught by comparing sizes). Pins from before this map existed are version 1.
pub const LAYOUT_VERSION: u64 = 1;
