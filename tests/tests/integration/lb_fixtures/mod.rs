//! The load balancer through `BPF_PROG_TEST_RUN`: input frame → verdict and the exact frame
//! that leaves, one file per scenario (as Katran's fixture headers are): NAT both ways, DSR,
//! DNAT, IPv6, ICMP errors, refusals, NAT ports, draining, scheduling, tracked flows behind the
//! firewall, UDP checksums, the fast path's flow cache, the SYN proxy, TTL and MTU errors, and the next hops new flows reuse.
//!
//! The runs happen in a [`Router`](foobar_tests::router::Router) namespace, so the kernel's FIB
//! lookup, and with it every output byte, is fixed.

mod cache;
mod dnat;
mod drain;
mod dsr;
mod firewall;
mod flows;
mod hop_cache;
mod hops;
mod icmp;
mod ipv6;
mod lab;
mod lifecycle;
mod ports;
mod refuse;
mod scheduling;
mod synproxy;
mod udp;
mod untouched;
mod validation;

use foobar_tests::gate::Need;
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    let needs = &[Need::Root, Need::Bpf];
    vec![
        gated("lb_fixtures::nat_dsr_ipv6_and_flow_lifecycle", needs, lifecycle::run),
        gated("lb_fixtures::weighted_maglev_and_backup_scheduling", needs, scheduling::run),
        gated("lb_fixtures::active_flows_are_counted_over_the_whole_table", needs, scheduling::active_count),
        gated("lb_fixtures::a_closed_flows_nat_port_goes_to_the_next_flow", needs, ports::run),
        gated("lb_fixtures::a_reused_tuple_leaves_a_draining_backend", needs, drain::run),
        gated("lb_fixtures::tracked_flows_skip_the_allow_rules", needs, firewall::run),
        gated("lb_fixtures::udp_nat_patches_or_keeps_the_checksum", needs, udp::run),
        gated("lb_fixtures::dnat_keeps_the_client_and_translates_replies_back", needs, dnat::run),
        gated("lb_fixtures::cached_flows_follow_the_table_on_every_cpu", needs, cache::run),
        gated("lb_fixtures::syn_proxy_handshake_and_translation_ipv4", needs, synproxy::run_v4),
        gated("lb_fixtures::syn_proxy_handshake_ipv6", needs, synproxy::run_v6),
        gated("lb_fixtures::syn_proxy_reused_port_meets_no_stale_copy", needs, synproxy::reuse_on_another_cpu),
        gated("lb_fixtures::rst_fin_and_icmp_must_be_near_the_flow", needs, validation::run),
        gated("lb_fixtures::expired_ttl_and_too_big_are_answered_with_icmp", needs, hops::run),
        gated("lb_fixtures::new_flows_see_a_neighbour_change_within_a_second", needs, hop_cache::run),
        gated(
            "lb_fixtures::a_flood_to_dsr_keeps_no_state_and_routes_by_source_rules",
            needs,
            hop_cache::stateless_flood_hops,
        ),
    ]
}
