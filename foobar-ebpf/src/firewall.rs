//! The firewall on untrusted interfaces: deny list (checked on sight, before the full parse),
//! control ICMP, allow rules with a per-source SYN limit, then the default policy. Every
//! outcome is counted.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple},
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_sk_lookup_udp, bpf_sk_release, bpf_skc_lookup_tcp},
    },
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use foobar_common::{
    counters::{Counter, FastKind},
    firewall::{
        ALLOW_FIXED_BITS, ALLOW_MAX_ENTRIES, AllowDataV4, AllowDataV6, DEFAULT_DENY_ENTRIES, DENY_COVERS,
        DENY_FILTER_WORDS, DENY_REACHES, FirewallSettings, MAX_RULES, RuleSet, SYN_TRACKED_SOURCES, SourceKey,
        allow_data_v4, allow_data_v6, deny_filter_slot, gcra,
    },
    parse::{
        Fragment, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3, Parsed, TCP_ACK, TCP_SYN, source_of,
    },
};

use crate::{
    atomic, lb,
    packet::Frame,
    stats::{count, count_fast},
};

#[map(name = "FW_DENY_V4")]
static DENY_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(DEFAULT_DENY_ENTRIES, 0);
/// Which /24s the IPv4 deny list reaches into, and which it covers (see `DENY_FILTER_WORDS`).
#[map(name = "FW_DENY_V4_FILTER")]
static DENY_V4_FILTER: Array<u64> = Array::with_max_entries(DENY_FILTER_WORDS, 0);
/// Keyed by the address as four words (the same sixteen bytes userspace writes).
#[map(name = "FW_DENY_V6")]
static DENY_V6: LpmTrie<[u32; 4], u32> = LpmTrie::with_max_entries(DEFAULT_DENY_ENTRIES, 0);
#[map(name = "FW_ALLOW_V4")]
static ALLOW_V4: LpmTrie<AllowDataV4, RuleSet> = LpmTrie::with_max_entries(ALLOW_MAX_ENTRIES, 0);
#[map(name = "FW_ALLOW_V6")]
static ALLOW_V6: LpmTrie<AllowDataV6, RuleSet> = LpmTrie::with_max_entries(ALLOW_MAX_ENTRIES, 0);
/// The deny-list lookup keys, one pair per CPU. Kept off the stack on purpose: the check
/// runs inline before the parse, and keys left on the stack by some of its paths (IPv4, IPv6,
/// neither) made the verifier carry each path through the rest of the program separately,
/// near its 1M-instruction budget (see the headroom test).
pub struct DenyKeys {
    v4: Key<[u8; 4]>,
    v6: WordKey,
}

/// An IPv6 deny-list key with aligned words, stored four words at a time (packed `Key`
/// fields are written a byte at a time, and LLVM then spilled all sixteen bytes).
#[repr(C)]
pub struct WordKey {
    prefix_len: u32,
    data: [u32; 4],
}

#[map(name = "FW_DENY_KEYS")]
static DENY_KEYS: PerCpuArray<DenyKeys> = PerCpuArray::with_max_entries(1, 0);
#[map(name = "FW_SETTINGS")]
static SETTINGS: Array<FirewallSettings> = Array::with_max_entries(1, 0);
#[map(name = "FW_RULE_HITS")]
static RULE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_SYN_TAT")]
static SYN_TAT: LruHashMap<SourceKey, u64> = LruHashMap::with_max_entries(SYN_TRACKED_SOURCES, 0);

/// Whether the firewall lets `p` through (it has already counted the outcome).
#[inline(never)]
pub fn admits(ctx: &XdpContext, p: &Parsed) -> bool {
    let v4 = match p.l3 {
        L3::Ipv4 => true,
        L3::Ipv6 => false,
        // ARP and other non-IP frames carry nothing the rules speak about.
        L3::Arp | L3::Other(_) => return true,
    };
    if is_control_icmp(p) {
        count(Counter::FwIcmpControl);
        return true;
    }
    let settings = match SETTINGS.get(0) {
        Some(s) => *s,
        None => FirewallSettings::default(),
    };
    match allowed_by(p, v4) {
        Some(rule) => {
            if let Some(hits) = RULE_HITS.get_ptr_mut(rule) {
                // SAFETY: this CPU's slot of a per-CPU array; nothing else writes it.
                unsafe { *hits += 1 };
            }
            if is_new_tcp(p) {
                if let Some(limit) = syn_over(p, v4, &settings) {
                    count(limit);
                    return false;
                }
            }
            count(Counter::FwAllowed);
            true
        }
        // Replies to flows the load balancer translated are allowed like a stateful firewall's
        // established traffic (a one-arm node gets them on its untrusted interface).
        None if settings.default_drop != 0 && lb::is_nat_reply(p) => {
            count(Counter::FwTrackedReply);
            true
        }
        // So are packets of the node's own connections (its health checks, the database
        // monitor): a one-arm node gets their replies on its untrusted interface.
        None if settings.default_drop != 0 && local_connection(ctx, p) => {
            count(Counter::FwLocalReply);
            true
        }
        None if settings.default_drop != 0 => {
            count(Counter::FwDefaultDrop);
            false
        }
        None => {
            count(Counter::FwDefaultAccept);
            true
        }
    }
}

/// Linux's TCP states (include/net/tcp_states.h) that a packet from outside must not reach
/// through this check: a listener (that is what the rules are for) and half-open children.
const TCP_SYN_RECV: u32 = 3;
const TCP_LISTEN: u32 = 10;
const TCP_NEW_SYN_RECV: u32 = 12;
/// A UDP socket `connect`ed to its peer carries this state.
const TCP_ESTABLISHED: u32 = 1;

/// Whether a socket of this network namespace holds `p`'s tuple as a connection: a TCP
/// socket past the handshake's listening side, or a connected UDP socket. A listening or
/// unconnected socket does not count, so nothing the rules keep out gets in this way.
#[inline(never)]
fn local_connection(ctx: &XdpContext, p: &Parsed) -> bool {
    if p.fragment == Fragment::Later || (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP) {
        return false;
    }
    // SAFETY: an all-zero tuple is a valid value of the plain-data union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size = match p.l3 {
        L3::Ipv4 => {
            // SAFETY: writing the IPv4 member of a union of plain data.
            let t = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
            t.saddr = p.src[0];
            t.daddr = p.dst[0];
            t.sport = p.src_port.to_be();
            t.dport = p.dst_port.to_be();
            size_of::<u32>() * 2 + size_of::<u16>() * 2
        }
        L3::Ipv6 => {
            // SAFETY: writing the IPv6 member of a union of plain data.
            let t = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
            t.saddr = p.src;
            t.daddr = p.dst;
            t.sport = p.src_port.to_be();
            t.dport = p.dst_port.to_be();
            size_of::<[u32; 4]>() * 2 + size_of::<u16>() * 2
        }
        L3::Arp | L3::Other(_) => return false,
    };
    let netns = BPF_F_CURRENT_NETNS as u64;
    // SAFETY: the helpers read `size` bytes of the tuple on this stack; a socket they return
    // is released below before this function returns, as the verifier insists.
    unsafe {
        let ctx = ctx.as_ptr();
        let sk: *mut bpf_sock = if p.protocol == IPPROTO_TCP {
            bpf_skc_lookup_tcp(ctx, &raw mut tuple, size as u32, netns, 0)
        } else {
            bpf_sk_lookup_udp(ctx, &raw mut tuple, size as u32, netns, 0)
        };
        if sk.is_null() {
            return false;
        }
        let state = (*sk).state;
        bpf_sk_release(sk.cast());
        if p.protocol == IPPROTO_TCP {
            state != TCP_LISTEN && state != TCP_NEW_SYN_RECV && state != TCP_SYN_RECV
        } else {
            state == TCP_ESTABLISHED
        }
    }
}

/// Whether the frame comes from a denied source: read from the IP header alone (the rest
/// is not even parsed), counted as received and denied.
#[inline(always)]
pub fn denied_on_sight(frame: &Frame) -> bool {
    // The key slot first: asked for after the packet reads, it made LLVM keep an IPv6
    // source in sixteen stack slots across the lookup.
    let Some(keys) = DENY_KEYS.get_ptr_mut(0) else { return false };
    let Some((l3, src)) = source_of(frame) else { return false };
    // SAFETY: this CPU's slot for the program run (XDP is not preempted on its CPU).
    let denied = unsafe {
        if l3 == L3::Ipv4 {
            // Nearly every source's /24 holds no deny entry, and a flood's often lies in a denied
            // network: one array read settles both (see `DENY_FILTER_WORDS`).
            let (word, shift) = deny_filter_slot(src[0]);
            let bits = DENY_V4_FILTER.get(word).map_or(DENY_REACHES, |w| (w >> shift) & 3);
            if bits & DENY_REACHES == 0 {
                return false;
            }
            if bits & DENY_COVERS != 0 {
                true
            } else {
                (*keys).v4.prefix_len = 32;
                (*keys).v4.data = src[0].to_ne_bytes();
                DENY_V4.get(&(*keys).v4).is_some()
            }
        } else {
            (*keys).v6 = WordKey { prefix_len: 128, data: src };
            // SAFETY: `WordKey` has `Key<[u32; 4]>`'s layout (a u32, then four; no padding).
            DENY_V6.get(&*(&raw const (*keys).v6).cast::<Key<[u32; 4]>>()).is_some()
        }
    };
    if denied {
        count_fast(FastKind::DeniedSource);
    }
    denied
}

/// Neighbour discovery, and the ICMP errors path-MTU discovery depends on.
#[inline(always)]
fn is_control_icmp(p: &Parsed) -> bool {
    if p.fragment == Fragment::Later {
        return false;
    }
    let (kind, code) = (p.src_port, p.dst_port);
    match p.protocol {
        // Destination unreachable / fragmentation needed.
        IPPROTO_ICMP => kind == 3 && code == 4,
        // Packet too big, and router/neighbour solicitation/advertisement, redirect.
        IPPROTO_ICMPV6 => kind == 2 || (133..=137).contains(&kind),
        _ => false,
    }
}

/// The id of the first allow rule admitting `p`: its own port first, then any-port rules.
#[inline(always)]
fn allowed_by(p: &Parsed, v4: bool) -> Option<u32> {
    // Later fragments carry no ports: only any-port rules can admit them.
    let port = if p.fragment == Fragment::Later { 0 } else { p.dst_port };
    if port != 0 {
        if let Some(id) = lookup_allow(p, v4, port) {
            return Some(id);
        }
    }
    lookup_allow(p, v4, 0)
}

#[inline(always)]
fn lookup_allow(p: &Parsed, v4: bool, port: u16) -> Option<u32> {
    let set = if v4 {
        ALLOW_V4.get(Key::new(ALLOW_FIXED_BITS + 32, allow_data_v4(p.protocol, port, p.dst[0])))
    } else {
        ALLOW_V6.get(Key::new(ALLOW_FIXED_BITS + 128, allow_data_v6(p.protocol, port, &p.dst)))
    }?;
    set.matching(&p.src)
}

#[inline(always)]
fn is_new_tcp(p: &Parsed) -> bool {
    p.protocol == IPPROTO_TCP && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

/// Charges one SYN to its source's bucket and, for IPv4, to its /24's; the counter of the
/// limit it is over, if any.
#[inline(always)]
fn syn_over(p: &Parsed, v4: bool, s: &FirewallSettings) -> Option<Counter> {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if s.syn_interval_ns != 0 && !charge(&SourceKey::source(&p.src, v4), now, s.syn_interval_ns, s.syn_tolerance_ns) {
        return Some(Counter::FwSynRateLimited);
    }
    if v4 && s.net_interval_ns != 0 && !charge(&SourceKey::net24(&p.src), now, s.net_interval_ns, s.net_tolerance_ns) {
        return Some(Counter::FwSynNetLimited);
    }
    None
}

/// Charges one SYN to `key`'s bucket; false when it is over its rate.
#[inline(always)]
fn charge(key: &SourceKey, now: u64, interval: u64, tolerance: u64) -> bool {
    let Some(slot) = SYN_TAT.get_ptr_mut(key) else {
        // The first SYN: a full bucket. A racing insert from another CPU may win; either way
        // one SYN is charged.
        let _ = SYN_TAT.insert(key, &(now + interval), 0);
        return true;
    };
    for _ in 0..4 {
        // SAFETY: `slot` is the key's aligned u64 map value; all writers use `atomic`.
        let old = unsafe { atomic::load(slot) };
        let Some(new) = gcra(old, now, interval, tolerance) else {
            return false;
        };
        // SAFETY: as above.
        if unsafe { atomic::compare_swap(slot, old, new) } {
            return true;
        }
    }
    // Four lost races in a row means a flood from this source on several CPUs at once.
    false
}
