//! The daemon's lifecycle, separate from signals and the command line so tests run the
//! very code `foobar run` does: [`Daemon::start`] loads and configures everything,
//! [`Daemon::serve`] runs until its shutdown future resolves, [`Daemon::stop`] cleans up.

use std::future::Future;

use tracing::{info, warn};

use crate::{
    apply,
    config::Config,
    dataplane::{
        Dataplane, DataplaneError,
        services::{BackendState, Services},
    },
};

/// A running foobar: the loaded data plane, its services and the config it runs.
pub struct Daemon {
    dataplane: Dataplane,
    services: Services,
    config: Config,
}

impl Daemon {
    /// Loads the XDP programs, fills the maps from `config`, then attaches to its interfaces.
    ///
    /// Rules go in before any attach, so an untrusted interface never runs with an empty firewall.
    pub fn start(config: Config) -> Result<Daemon, DataplaneError> {
        let mut dataplane = Dataplane::load()?;
        apply::firewall(&mut dataplane, &config.firewall)?;
        let services = apply::services(&mut dataplane, &config)?;
        for (iface, role) in apply::interface_roles(&config) {
            if !config.services.is_empty() {
                enable_forwarding(&iface);
            }
            dataplane.attach(&iface, role, config.daemon.xdp_mode)?;
        }
        if config.dns.is_some() || config.replication.is_some() {
            warn!("this build does not yet run DNS or the replication monitor from the config");
        }
        info!(interfaces = dataplane.attachments().len(), services = services.all().len(), "data plane running");
        Ok(Daemon { dataplane, services, config })
    }

    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    pub fn dataplane_mut(&mut self) -> &mut Dataplane {
        &mut self.dataplane
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Sets a backend's state (drain, enable, or a health verdict); returns the previous one.
    pub fn set_backend_state(
        &mut self,
        service: &str,
        backend: &str,
        state: BackendState,
    ) -> Result<BackendState, DataplaneError> {
        let before = self.services.set_state(&mut self.dataplane, service, backend, state)?;
        if before != state {
            info!(service, backend, from = before.name(), to = state.name(), "backend state changed");
        }
        Ok(before)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs until `shutdown` resolves, then stops.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), DataplaneError> {
        shutdown.await;
        self.stop()
    }

    /// Logs the final counters and detaches from every interface.
    pub fn stop(mut self) -> Result<(), DataplaneError> {
        match self.dataplane.counters() {
            Ok(c) => {
                for (counter, value) in c.nonzero() {
                    info!(counter = counter.name(), value, "final count");
                }
            }
            Err(e) => warn!(error = %e, "cannot read counters"),
        }
        self.dataplane.detach_all()
    }
}

/// The kernel's FIB lookup, which the XDP load balancer asks for next hops, answers only for
/// interfaces that forward (as IPVS needs `ip_forward`). Turned on per interface, not globally.
fn enable_forwarding(iface: &str) {
    for (family, key) in [("ipv4", "forwarding"), ("ipv6", "forwarding")] {
        let path = format!("/proc/sys/net/{family}/conf/{iface}/{key}");
        match std::fs::read_to_string(&path) {
            Ok(v) if v.trim() == "1" => {}
            _ => match std::fs::write(&path, "1") {
                Ok(()) => info!(interface = iface, family, "enabled forwarding for the load balancer"),
                Err(e) => {
                    warn!(interface = iface, family, error = %e, "cannot enable forwarding; balanced traffic will be dropped as lb_no_route")
                }
            },
        }
    }
}
