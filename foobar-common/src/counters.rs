//! The data plane's counters: one slot per event in a per-CPU array map.
//!
//! Per-CPU slots mean the kernel increments without atomics and userspace sums the CPUs
//! on read. The enum's discriminant is the slot index, so kernel and daemon agree by
//! construction; [`Counter::ALL`] and [`Counter::name`] let the daemon print every slot.

macro_rules! counters {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, )+) => {
        /// One per-CPU counter slot.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Counter {
            /// Every counter, in slot order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)+];

            /// The counter's metric-style name (`snake_case`, stable across releases).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Counter::$variant => $name, )+
                }
            }

            /// What it counts: its doc comment (each line starts with a space).
            pub const fn help(self) -> &'static str {
                match self {
                    $( Counter::$variant => concat!($($doc),+), )+
                }
            }
        }
    };
}

counters! {
    /// Frames the program saw at all.
    Received = "received",
    /// ARP frames (always passed).
    Arp = "arp",
    /// IPv4 packets that parsed cleanly.
    Ipv4 = "ipv4",
    /// IPv6 packets that parsed cleanly.
    Ipv6 = "ipv6",
    /// Frames of other ethertypes (passed untouched).
    OtherEthertype = "other_ethertype",
    /// Frames that carried at least one 802.1Q/802.1ad tag.
    Vlan = "vlan",
    /// TCP segments.
    Tcp = "tcp",
    /// UDP datagrams.
    Udp = "udp",
    /// ICMP messages.
    Icmp = "icmp",
    /// ICMPv6 messages.
    Icmpv6 = "icmpv6",
    /// Other IP protocols.
    OtherL4 = "other_l4",
    /// Non-first IP fragments (no transport header to look at).
    Fragment = "fragment",
    /// Dropped: shorter than an Ethernet header.
    TruncatedEthernet = "malformed_truncated_ethernet",
    /// Dropped: a VLAN tag cut short.
    TruncatedVlan = "malformed_truncated_vlan",
    /// Dropped: more than two stacked VLAN tags.
    TooManyVlans = "malformed_too_many_vlans",
    /// Dropped: IPv4 header cut short.
    TruncatedIpv4 = "malformed_truncated_ipv4",
    /// Dropped: IPv4 version field is not 4.
    BadIpVersion = "malformed_bad_ip_version",
    /// Dropped: IPv4 IHL below 5 words.
    BadIhl = "malformed_bad_ihl",
    /// Dropped: IP total/payload length disagrees with the frame.
    BadIpLength = "malformed_bad_ip_length",
    /// Dropped: IPv6 header cut short.
    TruncatedIpv6 = "malformed_truncated_ipv6",
    /// Dropped: an IPv6 extension header cut short.
    TruncatedExtHeader = "malformed_truncated_ext_header",
    /// Dropped: more IPv6 extension headers than the parser follows.
    TooManyExtHeaders = "malformed_too_many_ext_headers",
    /// Dropped: TCP header cut short.
    TruncatedTcp = "malformed_truncated_tcp",
    /// Dropped: TCP data offset below 5 words or past the packet.
    BadTcpOffset = "malformed_bad_tcp_offset",
    /// Dropped: UDP header cut short.
    TruncatedUdp = "malformed_truncated_udp",
    /// Dropped: UDP length field below 8 or past the IP payload.
    BadUdpLength = "malformed_bad_udp_length",
    /// Dropped: ICMP/ICMPv6 header cut short.
    TruncatedIcmp = "malformed_truncated_icmp",
    /// Firewall, dropped: source on the deny list.
    FwDeniedSource = "firewall_denied_source",
    /// Firewall, passed: neighbour discovery or an ICMP error PMTU discovery needs.
    FwIcmpControl = "firewall_icmp_control",
    /// Firewall, passed: an allow rule matched (per-rule counts are in their own map).
    FwAllowed = "firewall_allowed",
    /// Firewall, dropped: a SYN over its source's rate limit (an IPv4 address, an IPv6 /64).
    FwSynRateLimited = "firewall_syn_rate_limited",
    /// Firewall, passed: no rule allowed it, but it is a backend's reply to a NAT flow.
    FwTrackedReply = "firewall_tracked_reply",
    /// Firewall, passed: no rule allowed it, but it belongs to a connection of the node's own
    /// (a health check's reply, say).
    FwLocalReply = "firewall_local_reply",
    /// Firewall, dropped: no rule allowed it and the default policy is drop.
    FwDefaultDrop = "firewall_default_drop",
    /// Firewall, passed: no rule allowed it but the default policy is accept.
    FwDefaultAccept = "firewall_default_accept",
    /// Load balancer: a new flow was given a backend.
    LbNewFlow = "lb_new_flows",
    /// Load balancer: a packet of a tracked flow was forwarded.
    LbEstablished = "lb_established",
    /// Load balancer: a backend's reply was translated back to its client (NAT).
    LbNatReply = "lb_nat_replies",
    /// Load balancer, dropped: a new flow to a service with no available backend.
    LbNoBackend = "lb_no_backend",
    /// Load balancer: a packet of a flow whose backend is down was answered with a RST (TCP)
    /// or dropped, and the flow forgotten (`on_down = "reset"`).
    LbDeadBackendReset = "lb_dead_backend_resets",
    /// Load balancer: a new TCP connection to a service with no backend was answered with a RST.
    LbRefused = "lb_refused_with_rst",
    /// Load balancer, dropped: no route or neighbour towards the next hop yet.
    LbNoRoute = "lb_no_route",
    /// Load balancer, dropped: no free NAT source port towards the backend.
    LbNatPortsExhausted = "lb_nat_ports_exhausted",
    /// Load balancer: a FIN or RST marked a flow closing.
    LbFlowClosing = "lb_flows_closing",
    /// Load balancer: an ICMP error about a balanced flow was sent to the flow's backend.
    LbIcmpToBackend = "lb_icmp_errors_to_backend",
    /// Load balancer, passed untouched: VLAN-tagged traffic to a VIP (not balanced).
    LbTagged = "lb_vlan_tagged_passed",
    /// Firewall, passed: a packet of a flow the load balancer tracks, let through without
    /// consulting the allow rules again (they admitted the flow's first packet).
    FwEstablished = "firewall_established",
    /// Load balancer: a packet of a tracked flow forwarded from this CPU's copy of the flow
    /// (the fast path's flow cache), without the connection table's lookup; also counted in
    /// `lb_established`. Its share of `lb_established` is the cache's hit rate.
    LbFlowCacheHit = "lb_flow_cache_hits",
    /// SYN proxy: a SYN answered with a cookie SYN-ACK, nothing kept.
    LbSynCookieSent = "lb_syn_cookies_sent",
    /// SYN proxy: an ACK whose cookie checked out: the flow begins, its backend gets a SYN.
    LbSynCookieValid = "lb_syn_cookies_valid",
    /// SYN proxy, dropped: a segment of no flow whose acknowledgement is no valid cookie.
    LbSynCookieInvalid = "lb_syn_cookies_invalid",
    /// SYN proxy: a backend's SYN-ACK answered, its side of the handshake done.
    LbProxiedHandshake = "lb_proxied_handshakes",
    /// SYN proxy: data the client sent before its backend answered, held and sent with the
    /// proxy's ACK to the backend.
    LbEarlyData = "lb_early_data_held",
    /// Load balancer, dropped: a TCP segment other than a SYN belonging to no flow (nothing
    /// allocated for it).
    LbStateRefused = "lb_state_refused",
    /// Load balancer: a new flow of a DSR Maglev service under flood, sent by its hash with no
    /// entry kept.
    LbStateless = "lb_stateless_forwards",
    /// SYN proxy: the backend answered the proxy's SYN for a connection it still holds in
    /// TIME_WAIT (its NAT port was used before); it was sent the reset a client's stack sends,
    /// and the proxy's next SYN (when the client retries) opens the connection.
    LbBackendTimeWait = "lb_backend_time_wait_resets",
    /// SYN proxy: the proxy's SYN said again to a backend that had not answered when the
    /// client retried.
    LbSynResent = "lb_backend_syns_resent",
    /// Load balancer: a client's RST or FIN whose sequence number is far from its flow's (a
    /// blind guess at the tuple, or a stale segment): passed on for the backend to judge, but
    /// the flow is not closed.
    LbEndOutOfWindow = "lb_rst_fin_out_of_window",
    /// Load balancer, dropped: an ICMP error quoting a tracked TCP flow with a sequence number
    /// far from the flow's (a forged "fragmentation needed" would lower the path MTU of every
    /// client behind the NAT address).
    LbIcmpOutOfWindow = "lb_icmp_errors_out_of_window",
    /// Load balancer, dropped: a SYN-proxy step's program was missing from the step table (a
    /// data plane loaded without them).
    LbStepMissing = "lb_proxy_step_missing",
    /// Load balancer: a packet whose TTL (hop limit) ran out here, answered with ICMP time
    /// exceeded (or dropped where it could not be answered).
    LbTimeExceeded = "lb_time_exceeded",
    /// Load balancer: a packet too big for the egress link, answered with ICMP fragmentation
    /// needed / packet too big (an IPv4 one without DF is dropped: XDP cannot fragment).
    LbTooBig = "lb_too_big",
    /// Firewall, dropped: a SYN over the rate of its IPv4 /24 (`syn_rate_per_net`): a flood
    /// spread over a network, each source under its own limit.
    FwSynNetLimited = "firewall_syn_net_limited",
    /// DNS: queries answered in XDP from the rendered zone.
    DnsXdpAnswered = "dns_xdp_answered",
    /// DNS: queries to a listen address passed to the userspace server (unusual, not
    /// rendered, or too big for the client).
    DnsXdpPassed = "dns_xdp_passed",
    /// DNS, dropped: an answer over RRL's limit, in XDP.
    DnsXdpRateLimited = "dns_xdp_rate_limited",
    /// DNS: an answer over RRL's limit sent empty with TC, in XDP (counted in rate_limited too).
    DnsXdpSlipped = "dns_xdp_slipped",
    /// Load balancer, dropped: a DNAT flow's tuple towards its backend is held by the client's
    /// live flow to another VIP on the same backend port.
    LbDnatTupleTaken = "lb_dnat_tuple_taken",
}

/// Number of counter slots (the per-CPU array's size).
pub const COUNTER_SLOTS: u32 = Counter::ALL.len() as u32;

/// Packets the fast path forwarded (or the firewall dropped on sight), by kind, in a per-CPU
/// array of their own (slot = discriminant).
///
/// The full path counts such a packet four or five times (received, IPv4, TCP or UDP, then
/// established and, on untrusted interfaces, firewall-established; or NAT reply; a deny-list
/// drop twice, received and denied). The fast path counts one slot here instead, and userspace
/// adds each slot to the counters it stands for ([`FastKind::counters`]) when it reads them, so
/// readers see one set of counters whichever path a packet took.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastKind {
    Tcp,
    Udp,
    TcpUntrusted,
    UdpUntrusted,
    TcpReply,
    UdpReply,
    /// A frame dropped on sight for its denied source (`firewall::denied_on_sight`).
    DeniedSource,
}

pub const FAST_STATS_MAP: &str = "FOOBAR_FAST_STATS";

impl FastKind {
    pub const ALL: &'static [FastKind] = &[
        FastKind::Tcp,
        FastKind::Udp,
        FastKind::TcpUntrusted,
        FastKind::UdpUntrusted,
        FastKind::TcpReply,
        FastKind::UdpReply,
        FastKind::DeniedSource,
    ];

    /// The kind of an established TCP (else UDP) packet, on an untrusted interface or not.
    #[inline(always)]
    pub const fn of(tcp: bool, untrusted: bool) -> FastKind {
        match (tcp, untrusted) {
            (true, false) => FastKind::Tcp,
            (false, false) => FastKind::Udp,
            (true, true) => FastKind::TcpUntrusted,
            (false, true) => FastKind::UdpUntrusted,
        }
    }

    /// The kind of a backend's NAT reply over TCP (else UDP).
    #[inline(always)]
    pub const fn reply(tcp: bool) -> FastKind {
        if tcp { FastKind::TcpReply } else { FastKind::UdpReply }
    }

    /// The counters one packet of this kind adds to: what the full path counts for it.
    pub const fn counters(self) -> &'static [Counter] {
        use Counter::*;
        match self {
            FastKind::Tcp => &[Received, Ipv4, Tcp, LbEstablished],
            FastKind::Udp => &[Received, Ipv4, Udp, LbEstablished],
            FastKind::TcpUntrusted => &[Received, Ipv4, Tcp, LbEstablished, FwEstablished],
            FastKind::UdpUntrusted => &[Received, Ipv4, Udp, LbEstablished, FwEstablished],
            FastKind::TcpReply => &[Received, Ipv4, Tcp, LbNatReply],
            FastKind::UdpReply => &[Received, Ipv4, Udp, LbNatReply],
            FastKind::DeniedSource => &[Received, FwDeniedSource],
        }
    }
}

pub const FAST_KINDS: u32 = FastKind::ALL.len() as u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_kinds_are_dense_and_found_by_of() {
        for (i, &k) in FastKind::ALL.iter().enumerate() {
            assert_eq!(k as usize, i);
        }
        for tcp in [true, false] {
            for untrusted in [true, false] {
                let c = FastKind::of(tcp, untrusted).counters();
                assert_eq!(c.contains(&Counter::Tcp), tcp);
                assert_eq!(c.contains(&Counter::Udp), !tcp);
                assert_eq!(c.contains(&Counter::FwEstablished), untrusted);
            }
            let r = FastKind::reply(tcp).counters();
            assert_eq!((r.contains(&Counter::Tcp), r.contains(&Counter::LbNatReply)), (tcp, true));
        }
    }

    #[test]
    fn slots_are_dense_and_names_unique() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            for other in &Counter::ALL[i + 1..] {
                assert_ne!(c.name(), other.name());
            }
        }
    }
}
