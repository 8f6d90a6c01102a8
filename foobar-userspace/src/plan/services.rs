//! The services as the data plane takes them.

use crate::{
    config::{
        Config,
        schema::{self, Proto},
    },
    dataplane::services::{Affinity, BackendSpec, Mode, Scheduler, ServiceSpec, SynProxy},
};

pub(super) fn compile(config: &Config) -> Vec<ServiceSpec> {
    config.services.iter().map(spec).collect()
}

fn spec(s: &schema::Service) -> ServiceSpec {
    ServiceSpec {
        reset_on_down: s.on_down == schema::OnDown::Reset,
        affinity: match s.affinity.as_ref().map(|a| *a.get_ref()) {
            None | Some(schema::Affinity::None) => Affinity::Connection,
            Some(schema::Affinity::Source) => Affinity::Source,
            Some(schema::Affinity::Network) => Affinity::Network,
        },
        name: s.name.get_ref().clone(),
        vip: *s.vip.get_ref(),
        ports: s.ports.clone(),
        protocol: match s.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        },
        mode: match s.mode {
            schema::ForwardMode::Nat => Mode::Nat,
            schema::ForwardMode::Dsr => Mode::Dsr,
            schema::ForwardMode::Dnat => Mode::Dnat,
        },
        scheduler: match s.scheduler {
            schema::Scheduler::RoundRobin => Scheduler::RoundRobin,
            schema::Scheduler::WeightedRoundRobin => Scheduler::WeightedRoundRobin,
            schema::Scheduler::Maglev => Scheduler::Maglev,
            schema::Scheduler::LeastConnections => Scheduler::LeastConnections,
        },
        syn_proxy: match (s.syn_proxy.as_ref().map(|p| *p.get_ref()), s.proto, s.mode) {
            (_, Proto::Udp | Proto::Icmp, _) => SynProxy::Off,
            (Some(schema::SynProxy::Always), ..) => SynProxy::Always,
            (Some(schema::SynProxy::UnderFlood), ..) => SynProxy::UnderFlood,
            (Some(schema::SynProxy::Off), ..) => SynProxy::Off,
            (None, _, schema::ForwardMode::Nat | schema::ForwardMode::Dnat) => SynProxy::Always,
            (None, _, schema::ForwardMode::Dsr) => SynProxy::UnderFlood,
        },
        backends: s
            .backends
            .iter()
            .map(|b| BackendSpec {
                name: b.name.get_ref().clone(),
                addr: b.address,
                weight: b.weight,
                backup: b.backup,
            })
            .collect(),
    }
}
