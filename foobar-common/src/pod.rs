//! `aya::Pod` for the map keys and values userspace reads and writes (the `user` feature).
//! Each type is `#[repr(C)]`, has no padding and accepts every bit pattern (bytemuck checks it).

use crate::{
    dns::{Answer, AnswerKey, ListenKey, NxTemplate, RrlBucket, RrlKey, Settings as DnsSettings},
    firewall::{FirewallSettings, RuleSet, SourceKey},
    lb::{
        Backend, FloodWindow, Flow, FlowKey, LbSettings, NatKey, NatTarget, Proxied, ServiceInfo, ServiceKey,
        TrafficStats,
    },
};

macro_rules! aya_pod {
    ($($t:ty),+) => {
        $(
            // SAFETY: bytemuck::Pod is derived for the type, which proves the same contract.
            unsafe impl aya::Pod for $t {}
        )+
    };
}

aya_pod!(
    RuleSet,
    FirewallSettings,
    SourceKey,
    ServiceKey,
    ServiceInfo,
    Backend,
    FlowKey,
    Flow,
    NatKey,
    NatTarget,
    Proxied,
    FloodWindow,
    LbSettings,
    TrafficStats,
    ListenKey,
    AnswerKey,
    Answer,
    DnsSettings,
    RrlKey,
    RrlBucket,
    NxTemplate
);
