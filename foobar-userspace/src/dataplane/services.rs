//! Load-balanced services in the data plane: which services and backends exist, their ids,
//! each backend's state, and publishing the set of backends new flows may use.
//!
//! Publishing writes the new ring into the service's idle ring half and then points the
//! service entry at it: the kernel sees the old set or the new one, never a mix. Flows already
//! tracked keep their backend whatever happens to the set; that is conntrack's job.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, UdpSocket},
};

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use foobar_common::{
    addr::{FAMILY_V4, FAMILY_V6},
    lb::{
        BACKEND_DEAD, BACKEND_DOWN, BACKEND_DRAINING, BACKEND_STATS_MAP, BACKEND_TIMEOUTS_MAP, BACKEND_UP,
        BACKENDS_MAP, Backend, MODE_DNAT, MODE_DSR, MODE_NAT, PICK_CURSOR, PICK_HASH, PICK_NETWORK, PICK_SOURCE,
        PROXY_ALWAYS, PROXY_OFF, PROXY_UNDER_FLOOD, RING_SIZE, RINGS_MAP, SERVICE_STATS_MAP, SERVICES_MAP, ServiceInfo,
        ServiceKey, TrafficStats,
    },
};

use super::{
    Capacity, Dataplane, DataplaneError, ServiceError, batch,
    ids::Ids,
    ring::{self, Member, RingSpace},
    vip_filter::VipFilter,
};
use crate::net::words;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Destination and source rewritten; replies come back through foobar.
    Nat,
    /// Only the MAC is rewritten; backends hold the VIP and answer clients directly.
    Dsr,
    /// Only the destination rewritten; backends see the client and reply through foobar.
    Dnat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    RoundRobin,
    WeightedRoundRobin,
    Maglev,
    /// The ring rebuilt from each flow census ([`Services::rebalance`]).
    LeastConnections,
}

/// Slots of a least-connections ring half: shares to within 1/128.
const LEAST_RING: u32 = 128;

/// When the SYN proxy answers a TCP service's new flows (see the data plane's `synproxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynProxy {
    /// Every SYN gets a cookie; only a client that answers it gets a flow.
    Always,
    /// Cookies while the service's new flows come faster than `flood_new_flows`; a DSR Maglev
    /// service then keeps no state instead (its hash picks the same backend for every packet).
    UnderFlood,
    Off,
}

/// Whether a backend takes new flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    Up,
    /// Keeps its flows, takes no new ones (an operator's drain).
    Draining,
    /// Failed its health checks: takes no new flows.
    Down,
}

impl BackendState {
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Draining => "draining",
            BackendState::Down => "down",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    pub name: String,
    pub addr: IpAddr,
    pub weight: u32,
    /// Takes new flows only while no primary backend is up (active-passive).
    pub backup: bool,
}

/// Which connections of a Maglev service share a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// None: each connection by its own five-tuple.
    Connection,
    /// A client's connections.
    Source,
    /// The connections of a client's IPv4 /24 or IPv6 /64.
    Network,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub vip: IpAddr,
    pub ports: Vec<u16>,
    pub protocol: u8,
    pub mode: Mode,
    pub scheduler: Scheduler,
    pub syn_proxy: SynProxy,
    /// Whether the flows of a backend that is down get a RST from XDP (else they are kept).
    pub reset_on_down: bool,
    /// What Maglev hashes besides the connection: the client's address or its network.
    pub affinity: Affinity,
    pub backends: Vec<BackendSpec>,
}

impl BackendSpec {
    /// A primary backend of weight 1.
    pub fn new(name: &str, addr: IpAddr) -> BackendSpec {
        BackendSpec { name: name.to_owned(), addr, weight: 1, backup: false }
    }
}

impl ServiceSpec {
    /// Slots one half of this service's ring may need: its backends for round-robin, their
    /// weights for weighted round-robin (at most a Maglev table's), a Maglev table.
    pub fn ring_half(&self) -> u32 {
        let n = match self.scheduler {
            Scheduler::RoundRobin => self.backends.len() as u32,
            Scheduler::WeightedRoundRobin => self.backends.iter().map(|b| b.weight).sum::<u32>().min(RING_SIZE),
            Scheduler::Maglev => RING_SIZE,
            Scheduler::LeastConnections => LEAST_RING,
        };
        n.max(1)
    }

    /// A TCP service on one port, balanced round-robin with NAT, without the SYN proxy (which
    /// the config turns on for such a service by default).
    pub fn tcp(name: &str, vip: IpAddr, port: u16, backends: Vec<BackendSpec>) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            vip,
            ports: vec![port],
            protocol: 6,
            mode: Mode::Nat,
            scheduler: Scheduler::RoundRobin,
            syn_proxy: SynProxy::Off,
            reset_on_down: false,
            affinity: Affinity::Connection,
            backends,
        }
    }
}

/// A service as registered: its spec, data-plane ids and backend states.
#[derive(Clone, Debug)]
pub struct Service {
    pub spec: ServiceSpec,
    pub id: u32,
    pub backend_ids: Vec<u32>,
    pub states: Vec<BackendState>,
    /// Indexes (into `spec.backends`) new flows currently go to.
    pub active: Vec<usize>,
    /// Which ring half is live.
    half: u32,
    /// Where its two ring halves start in the ring array, and the slots each has.
    ring: (u32, u32),
    /// Least-connections: live flows by backend id as the last census counted them, and the
    /// new flows expected before the next.
    loads: BTreeMap<u32, u64>,
    arrivals: u64,
}

/// Every registered service.
#[derive(Clone, Debug)]
pub struct Services {
    services: Vec<Service>,
    ids: Ids,
    vip_filter: VipFilter,
    capacity: Capacity,
    rings: RingSpace,
    /// Within a change ([`Services::begin`]): keys withdrawn so far, whose flows are deleted
    /// only when the change is committed (a rollback then loses none).
    withdrawn: Option<Vec<ServiceKey>>,
    /// A cluster node's own NAT address: the source of its NAT flows towards backends of its
    /// family, instead of the address the route towards each backend would pick.
    nat_address: Option<IpAddr>,
}

/// The services as they were before a change, to roll back to.
pub struct Before(Services);

impl Default for Services {
    fn default() -> Services {
        Services::sized(Capacity::default())
    }
}

impl Services {
    /// No services, for a data plane of the default capacity.
    pub fn new() -> Services {
        Services::default()
    }

    /// No services, for a data plane loaded with `capacity`.
    pub fn sized(capacity: Capacity) -> Services {
        Services::resuming(capacity, Ids::default())
    }

    /// No services yet, handing out the ids `ids` recorded (a restart keeps every id).
    pub fn resuming(capacity: Capacity, ids: Ids) -> Services {
        Services {
            services: Vec::new(),
            ids,
            vip_filter: VipFilter::default(),
            rings: RingSpace::new(capacity.ring_slots),
            capacity,
            withdrawn: None,
            nat_address: None,
        }
    }

    /// NATs towards backends of `addr`'s family from `addr` (a cluster node's own NAT address);
    /// set before any service is added.
    pub fn nat_from(mut self, addr: Option<IpAddr>) -> Services {
        self.nat_address = addr;
        self
    }

    /// The source NAT flows reach the backend at `addr` from.
    fn snat_towards(&self, addr: IpAddr) -> std::io::Result<IpAddr> {
        match self.nat_address {
            Some(own) if own.is_ipv4() == addr.is_ipv4() => Ok(own),
            _ => source_towards(addr),
        }
    }

    /// Starts a change of several steps: until [`Services::commit`], withdrawn services and
    /// ports keep their flows, so that [`Services::roll_back`] can restore exactly what was.
    pub fn begin(&mut self) -> Before {
        self.withdrawn = Some(Vec::new());
        Before(self.clone())
    }

    /// Ends the change: the flows of what it withdrew are deleted.
    pub fn commit(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        let withdrawn = self.withdrawn.take().unwrap_or_default();
        dp.forget_flows_to(&withdrawn)?;
        Ok(())
    }

    /// Undoes the change begun as `before`: every service, backend state and ring as it was,
    /// the keys only the change added withdrawn. Flows tracked meanwhile to those keys go too.
    pub fn roll_back(&mut self, dp: &mut Dataplane, before: Before) -> Result<(), DataplaneError> {
        let added: Vec<ServiceKey> = self.services.iter().flat_map(|s| keys(&s.spec)).collect();
        *self = before.0;
        self.withdrawn = None;
        let kept: Vec<ServiceKey> = self.services.iter().flat_map(|s| keys(&s.spec)).collect();
        let only_added: Vec<ServiceKey> = added.into_iter().filter(|k| !kept.contains(k)).collect();
        self.sync_vips(dp)?;
        for i in 0..self.services.len() {
            let svc = &self.services[i];
            let states: Vec<(u32, BackendState)> =
                svc.backend_ids.iter().copied().zip(svc.states.iter().copied()).collect();
            let reset = svc.spec.reset_on_down;
            for (id, state) in states {
                set_backend_state(dp, id, state, reset)?;
            }
            publish(dp, &mut self.services[i])?;
        }
        self.withdraw(dp, &only_added)?;
        Ok(())
    }

    /// Every id handed out, for the daemon to keep.
    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// Writes the entries of backends that left their service before a restart, so that the
    /// flows still tracked to them go on (they take no new flows).
    pub fn restore_retired(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        let retired: Vec<(u32, IpAddr)> = self.ids.retired().map(|b| (b.id, b.addr)).collect();
        for (id, addr) in retired {
            let snat = self.snat_towards(addr).map_err(|source| ServiceError::NoRoute {
                name: format!("(retired) {addr}"),
                addr,
                source,
            })?;
            write_backend(dp, id, addr, snat, BACKEND_DOWN)?;
        }
        Ok(())
    }

    /// Frees the ids of retired backends no tracked flow uses any more; `in_use` says which do.
    pub fn release_retired(&mut self, dp: &mut Dataplane, in_use: impl Fn(u32) -> bool) -> Result<(), DataplaneError> {
        for id in self.ids.release_retired(in_use) {
            let mut backends: Array<&mut MapData, Backend> = Array::try_from(dp.map_mut(BACKENDS_MAP)?)?;
            backends.set(id, Backend::default(), 0)?;
        }
        Ok(())
    }

    pub fn all(&self) -> &[Service] {
        &self.services
    }

    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.spec.name == name)
    }

    /// Registers `spec` with every backend up and publishes it.
    pub fn add(&mut self, dp: &mut Dataplane, spec: ServiceSpec) -> Result<u32, DataplaneError> {
        let most = self.capacity.services;
        let id = self.ids.service(&spec.name, most).ok_or(ServiceError::TooManyServices(most))?;
        let ring = self.ring_for(&spec)?;
        let backend_ids =
            spec.backends.iter().map(|b| self.new_backend(dp, &spec.name, b)).collect::<Result<Vec<_>, _>>()?;
        let states = vec![BackendState::Up; spec.backends.len()];
        self.services.push(Service {
            spec,
            id,
            backend_ids,
            states,
            active: Vec::new(),
            half: 1,
            ring,
            loads: BTreeMap::new(),
            arrivals: 0,
        });
        // The filter first: the kernel looks a destination up only where the filter says it
        // may be a VIP, so a VIP published before its filter slot would be missed meanwhile.
        self.sync_vips(dp)?;
        let last = self.services.len() - 1;
        publish(dp, &mut self.services[last])?;
        Ok(id)
    }

    /// Applies a changed `spec` to the service of the same name (or adds it).
    ///
    /// A backend keeps its id, and so its tracked flows and counters, while its name and
    /// address stay the same; a removed backend's entry stays behind so that its flows can
    /// finish. Ports no longer served are withdrawn; the rest switch to the new ring at once.
    pub fn update(&mut self, dp: &mut Dataplane, spec: ServiceSpec) -> Result<(), DataplaneError> {
        let Some(i) = self.services.iter().position(|s| s.spec.name == spec.name) else {
            return self.add(dp, spec).map(|_| ());
        };
        if self.services[i].spec == spec {
            return Ok(());
        }
        let old = self.services[i].clone();
        let mut ids = Vec::new();
        let mut states = Vec::new();
        for b in &spec.backends {
            match old.spec.backends.iter().position(|o| o.name == b.name && o.addr == b.addr) {
                Some(j) => {
                    ids.push(old.backend_ids[j]);
                    states.push(old.states[j]);
                }
                None => {
                    ids.push(self.new_backend(dp, &spec.name, b)?);
                    states.push(BackendState::Up);
                }
            }
        }
        let now = unix_now();
        for gone in
            old.spec.backends.iter().filter(|o| !spec.backends.iter().any(|b| b.name == o.name && b.addr == o.addr))
        {
            self.ids.retire(&spec.name, &gone.name, gone.addr, now);
        }
        let stale: Vec<ServiceKey> = keys(&old.spec).into_iter().filter(|k| !keys(&spec).contains(k)).collect();
        // A ring of another size gets a region of its own; the old one is freed once the
        // service points at the new.
        let moved = spec.ring_half() != old.ring.1;
        let ring = if moved { self.ring_for(&spec)? } else { old.ring };
        let svc = &mut self.services[i];
        svc.spec = spec;
        svc.backend_ids = ids;
        svc.states = states;
        svc.ring = ring;
        self.sync_vips(dp)?;
        publish(dp, &mut self.services[i])?;
        if moved {
            self.rings.free(old.ring.0);
        }
        self.withdraw(dp, &stale)
    }

    /// A region of the ring array for `spec`'s two ring halves.
    fn ring_for(&mut self, spec: &ServiceSpec) -> Result<(u32, u32), ServiceError> {
        let half = spec.ring_half();
        let start = self.rings.allocate(2 * half).ok_or(ServiceError::RingSlots {
            service: spec.name.clone(),
            needed: 2 * half,
            capacity: self.capacity.ring_slots,
        })?;
        Ok((start, half))
    }

    /// Stops balancing the named service (its tracked flows' packets then reach the stack).
    pub fn remove(&mut self, dp: &mut Dataplane, name: &str) -> Result<(), DataplaneError> {
        let Some(i) = self.services.iter().position(|s| s.spec.name == name) else { return Ok(()) };
        let svc = self.services.remove(i);
        self.rings.free(svc.ring.0);
        self.ids.release_service(name);
        self.withdraw(dp, &keys(&svc.spec))?;
        self.sync_vips(dp)
    }

    /// Points the VIP filter at the services' VIPs. Called before publishing, so the filter
    /// never hides a published VIP; a VIP it drops stops being balanced at once, as its
    /// withdrawal, which follows, would have it.
    fn sync_vips(&mut self, dp: &mut Dataplane) -> Result<(), DataplaneError> {
        let dnat = self.services.iter().any(|s| s.spec.mode == Mode::Dnat);
        self.vip_filter.sync(dp, self.services.iter().map(|s| words(s.spec.vip)), dnat)
    }

    /// Gives `b` of `service` its id (the one it had, or a free one) and writes its entry; a
    /// new id starts with its traffic counters at zero.
    fn new_backend(&mut self, dp: &mut Dataplane, service: &str, b: &BackendSpec) -> Result<u32, DataplaneError> {
        let snat = self.snat_towards(b.addr).map_err(|source| ServiceError::NoRoute {
            name: b.name.clone(),
            addr: b.addr,
            source,
        })?;
        let most = self.capacity.backends;
        let (bid, fresh) =
            self.ids.backend(service, &b.name, b.addr, most).ok_or(ServiceError::TooManyBackends(most))?;
        write_backend(dp, bid, b.addr, snat, BACKEND_UP)?;
        if fresh {
            zero_slot::<TrafficStats>(dp, BACKEND_STATS_MAP, bid)?;
            zero_slot::<u64>(dp, BACKEND_TIMEOUTS_MAP, bid)?;
        }
        Ok(bid)
    }

    /// Rebuilds every least-connections service's ring from `active` (a flow census: live
    /// flows by backend id), expecting `arrivals(service id)` new flows before the next.
    pub fn rebalance(
        &mut self,
        dp: &mut Dataplane,
        active: &std::collections::HashMap<u32, u64>,
        arrivals: impl Fn(u32) -> u64,
    ) -> Result<(), DataplaneError> {
        for svc in self.services.iter_mut().filter(|s| s.spec.scheduler == Scheduler::LeastConnections) {
            svc.loads = svc.backend_ids.iter().map(|id| (*id, active.get(id).copied().unwrap_or(0))).collect();
            svc.arrivals = arrivals(svc.id);
            publish(dp, svc)?;
        }
        Ok(())
    }

    /// Whether any service is balanced by least connections (and so wants a census a second).
    pub fn balances_by_load(&self) -> bool {
        self.services.iter().any(|s| s.spec.scheduler == Scheduler::LeastConnections)
    }

    /// Changes one backend's state and republishes its service's ring if that changes.
    pub fn set_state(
        &mut self,
        dp: &mut Dataplane,
        service: &str,
        backend: &str,
        state: BackendState,
    ) -> Result<BackendState, DataplaneError> {
        let svc = self
            .services
            .iter_mut()
            .find(|s| s.spec.name == service)
            .ok_or_else(|| ServiceError::NoService(service.to_owned()))?;
        let i = svc
            .spec
            .backends
            .iter()
            .position(|b| b.name == backend)
            .ok_or_else(|| ServiceError::NoBackend { service: service.to_owned(), backend: backend.to_owned() })?;
        let before = svc.states[i];
        if before != state {
            svc.states[i] = state;
            set_backend_state(dp, svc.backend_ids[i], state, svc.spec.reset_on_down)?;
            publish(dp, svc)?;
        }
        Ok(before)
    }
}

/// Writes backend `id`'s entry: where it is, the node's address towards it, its state.
fn write_backend(dp: &mut Dataplane, id: u32, addr: IpAddr, snat: IpAddr, state: u32) -> Result<(), DataplaneError> {
    let family = if addr.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
    let entry = Backend { addr: words(addr), snat: words(snat), family: u32::from(family), state };
    let mut backends: Array<&mut MapData, Backend> = Array::try_from(dp.map_mut(BACKENDS_MAP)?)?;
    backends.set(id, entry, 0)?;
    Ok(())
}

/// Sets slot `id` of the per-CPU counters `map` (of `T`) to zero on every CPU.
fn zero_slot<T: aya::Pod + Default + Clone>(
    dp: &mut Dataplane,
    map: &'static str,
    id: u32,
) -> Result<(), DataplaneError> {
    let mut counters: PerCpuArray<&mut MapData, T> = PerCpuArray::try_from(dp.map_mut(map)?)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?;
    let zeros = aya::maps::PerCpuValues::try_from(vec![T::default(); cpus]).map_err(DataplaneError::Cpus)?;
    counters.set(id, zeros, 0)?;
    Ok(())
}

/// Seconds since the epoch, as retirement times are kept.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Backends eligible for new flows: up primaries, or up backups while no primary is up.
pub fn eligible(spec: &ServiceSpec, states: &[BackendState]) -> Vec<usize> {
    let up = |backup: bool| -> Vec<usize> {
        spec.backends
            .iter()
            .enumerate()
            .filter(|(i, b)| b.backup == backup && states[*i] == BackendState::Up)
            .map(|(i, _)| i)
            .collect()
    };
    let primaries = up(false);
    if primaries.is_empty() { up(true) } else { primaries }
}

/// The data plane's keys for a service: one per port.
fn keys(spec: &ServiceSpec) -> Vec<ServiceKey> {
    let family = if spec.vip.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
    spec.ports.iter().map(|&port| ServiceKey { addr: words(spec.vip), port, protocol: spec.protocol, family }).collect()
}

impl Services {
    /// Removes service entries, then the flows tracked to them (at once, or when the change
    /// under way is committed): nothing to those keys is balanced any more.
    fn withdraw(&mut self, dp: &mut Dataplane, stale: &[ServiceKey]) -> Result<(), DataplaneError> {
        {
            let mut services: HashMap<&mut MapData, ServiceKey, ServiceInfo> =
                HashMap::try_from(dp.map_mut(SERVICES_MAP)?)?;
            for key in stale {
                match services.remove(key) {
                    Err(e) if super::firewall::is_not_found(&e) => {}
                    other => other?,
                }
            }
        }
        match &mut self.withdrawn {
            Some(later) => later.extend_from_slice(stale),
            None => {
                dp.forget_flows_to(stale)?;
            }
        }
        Ok(())
    }
}

/// Writes a backend's state into its entry; down is "dead" (its flows reset) with `reset`.
fn set_backend_state(dp: &mut Dataplane, id: u32, state: BackendState, reset: bool) -> Result<(), DataplaneError> {
    let mut backends: Array<&mut MapData, Backend> = Array::try_from(dp.map_mut(BACKENDS_MAP)?)?;
    let mut entry = backends.get(&id, 0)?;
    entry.state = match state {
        BackendState::Up => BACKEND_UP,
        BackendState::Draining => BACKEND_DRAINING,
        BackendState::Down if reset => BACKEND_DEAD,
        BackendState::Down => BACKEND_DOWN,
    };
    backends.set(id, entry, 0)?;
    Ok(())
}

/// Writes the service's ring into its idle half, then switches every port's entry to it.
fn publish(dp: &mut Dataplane, svc: &mut Service) -> Result<(), DataplaneError> {
    let active = eligible(&svc.spec, &svc.states);
    let members: Vec<Member> = active
        .iter()
        .map(|&i| Member {
            id: svc.backend_ids[i],
            name: svc.spec.backends[i].name.clone(),
            weight: svc.spec.backends[i].weight,
        })
        .collect();
    let (start, half_len) = svc.ring;
    let (slots, pick) = match svc.spec.scheduler {
        Scheduler::RoundRobin => (ring::round_robin(&members), PICK_CURSOR),
        Scheduler::WeightedRoundRobin => (ring::weighted(&members, half_len as usize), PICK_CURSOR),
        Scheduler::LeastConnections => {
            let loads: Vec<u64> = members.iter().map(|m| svc.loads.get(&m.id).copied().unwrap_or(0)).collect();
            (ring::least_connections(&members, &loads, svc.arrivals, half_len as usize), PICK_CURSOR)
        }
        Scheduler::Maglev => {
            let pick = match svc.spec.affinity {
                Affinity::Connection => PICK_HASH,
                Affinity::Source => PICK_SOURCE,
                Affinity::Network => PICK_NETWORK,
            };
            (ring::maglev(&members, RING_SIZE as usize), pick)
        }
    };
    let half = 1 - svc.half;
    let offset = start + half * half_len;
    batch::set_array_slots(dp.map_mut(RINGS_MAP)?, offset, &slots)?;
    let info = ServiceInfo {
        id: svc.id,
        mode: match svc.spec.mode {
            Mode::Nat => MODE_NAT,
            Mode::Dsr => MODE_DSR,
            Mode::Dnat => MODE_DNAT,
        },
        pick,
        ring_offset: offset,
        ring_len: slots.len() as u32,
        syn_proxy: match svc.spec.syn_proxy {
            SynProxy::Always => PROXY_ALWAYS,
            SynProxy::UnderFlood => PROXY_UNDER_FLOOD,
            SynProxy::Off => PROXY_OFF,
        },
    };
    let mut services: HashMap<&mut MapData, ServiceKey, ServiceInfo> = HashMap::try_from(dp.map_mut(SERVICES_MAP)?)?;
    for key in keys(&svc.spec) {
        services.insert(key, info, 0)?;
    }
    svc.half = half;
    svc.active = active;
    Ok(())
}

impl Dataplane {
    /// Traffic of a service (by data-plane id), summed over CPUs.
    pub fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        sum_stats(self.map(SERVICE_STATS_MAP)?, id)
    }

    /// Traffic of a backend (by data-plane id), summed over CPUs.
    pub fn backend_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        sum_stats(self.map(BACKEND_STATS_MAP)?, id)
    }

    /// Handshakes backend `id` left unanswered until a SYN was said again.
    pub fn backend_timeouts(&self, id: u32) -> Result<u64, DataplaneError> {
        let timeouts: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.map(BACKEND_TIMEOUTS_MAP)?)?;
        Ok(timeouts.get(&id, 0)?.iter().sum())
    }
}

fn sum_stats(map: &aya::maps::Map, id: u32) -> Result<TrafficStats, DataplaneError> {
    let stats: PerCpuArray<&MapData, TrafficStats> = PerCpuArray::try_from(map)?;
    Ok(stats.get(&id, 0)?.iter().fold(TrafficStats::default(), |a, s| TrafficStats {
        packets: a.packets + s.packets,
        bytes: a.bytes + s.bytes,
        new_flows: a.new_flows + s.new_flows,
        refused: a.refused + s.refused,
        reset_unanswered: a.reset_unanswered + s.reset_unanswered,
        unreachable: a.unreachable + s.unreachable,
    }))
}

/// The node's own address the kernel would send from towards `addr`; NAT uses it as the
/// source. One empty datagram to the discard port follows, so that the kernel resolves the
/// backend's MAC: XDP forwards only to neighbours the kernel already knows.
pub fn source_towards(addr: IpAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr =
        if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(bind)?;
    sock.connect((addr, 9))?;
    let _ = sock.send(&[]);
    Ok(sock.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(backups: &[bool]) -> ServiceSpec {
        let backends = backups
            .iter()
            .enumerate()
            .map(|(i, &backup)| BackendSpec {
                backup,
                ..BackendSpec::new(&format!("web{i}"), format!("198.51.100.{}", 11 + i).parse().expect("ip"))
            })
            .collect();
        ServiceSpec::tcp("www", "192.0.2.10".parse().expect("ip"), 80, backends)
    }

    #[test]
    fn backups_take_over_only_when_no_primary_is_up() {
        use BackendState::*;
        let s = spec(&[false, false, true]);
        assert_eq!(eligible(&s, &[Up, Up, Up]), [0, 1]);
        assert_eq!(eligible(&s, &[Down, Up, Up]), [1]);
        assert_eq!(eligible(&s, &[Down, Draining, Up]), [2]);
        assert_eq!(eligible(&s, &[Down, Down, Down]), Vec::<usize>::new());
    }
}
