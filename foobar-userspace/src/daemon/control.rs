//! The control socket's requests, answered by the event loop (the one owner of the data plane).

use tracing::info;

use super::{ControlError, Daemon, backends::Admin};
use crate::{
    control::protocol::{BackendAction, DenyEntry, NodeAction, Request, Response},
    dataplane::ServiceError,
    net::Cidr,
};

impl Daemon {
    /// Answers one control request (the socket's requests all come through here).
    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Status => return Response::Status(Box::new(self.status())),
            Request::FirewallList => {
                return match self.dataplane.denied_sources() {
                    Ok(list) => Response::Firewall { denied: list.iter().map(|c| self.deny_entry(*c)).collect() },
                    Err(e) => Response::Error { message: e.to_string() },
                };
            }
            Request::Backend { service, backend, action } => self.steer(&service, &backend, action),
            Request::FirewallBlock { cidr } => self.block(&cidr),
            Request::FirewallUnblock { cidr } => self.unblock(&cidr),
            Request::Reload => self.reload().map_err(ControlError::from),
            Request::Node { action } => self.node(action),
            Request::DbSwitchover { .. } => {
                Err(ControlError::Elsewhere("a switchover goes to the replication monitor, through the control socket"))
            }
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(e) => Response::Error { message: e.to_string() },
        }
    }

    /// Drains or enables the node: its announcements follow at once, and a restart keeps it.
    fn node(&mut self, action: NodeAction) -> Result<String, ControlError> {
        self.node_drained = action == NodeAction::Drain;
        self.keep_state()?;
        self.follow_liveness();
        info!(drained = self.node_drained, "node state set by the operator");
        Ok(match (action, self.announcer.is_some()) {
            (NodeAction::Drain, true) => "node drained: every announced VIP is being withdrawn".to_owned(),
            (NodeAction::Enable, true) => "node enabled: services with a backend are announced again".to_owned(),
            (_, false) => {
                format!("node {action:?}: recorded, but no [announce] is configured, so nothing is announced")
            }
        })
    }

    /// What a run-time change's message ends with: it holds on this node alone (the other
    /// nodes of a cluster keep their own), so an operator of several runs it on each.
    fn on_this_node(&self) -> String {
        format!("on this node ({}) only", self.plan.node)
    }

    /// Drains, enables or disables one backend; nothing is kept for names that do not exist.
    fn steer(&mut self, service: &str, backend: &str, action: BackendAction) -> Result<String, ControlError> {
        let Some(spec) = self.plan.service(service) else {
            return Err(ControlError::Dataplane(ServiceError::NoService(service.to_owned()).into()));
        };
        if !spec.backends.iter().any(|b| b.name == backend) {
            let missing = ServiceError::NoBackend { service: service.to_owned(), backend: backend.to_owned() };
            return Err(ControlError::Dataplane(missing.into()));
        }
        self.backends.entry(service, backend).admin = Admin::from(action);
        self.publish(service, backend, "operator")?;
        self.keep_state()?;
        Ok(format!("{service}/{backend}: {action:?} {}", self.on_this_node()))
    }

    fn block(&mut self, text: &str) -> Result<String, ControlError> {
        let cidr: Cidr = text.parse()?;
        self.dataplane.deny_source(cidr)?;
        self.blocked.insert(cidr);
        info!(%cidr, "source blocked");
        self.keep_state()?;
        Ok(format!("{cidr} blocked {}", self.on_this_node()))
    }

    fn unblock(&mut self, text: &str) -> Result<String, ControlError> {
        let cidr: Cidr = text.parse()?;
        if !self.blocked.contains(&cidr) {
            let in_config = self.plan.firewall.deny.contains(&cidr);
            return Err(if in_config { ControlError::DeniedByConfig(cidr) } else { ControlError::NotBlocked(cidr) });
        }
        if !self.plan.firewall.deny.contains(&cidr) {
            self.dataplane.undeny_source(cidr)?;
        }
        self.blocked.remove(&cidr);
        info!(%cidr, "source unblocked");
        self.keep_state()?;
        Ok(format!("{cidr} unblocked {}", self.on_this_node()))
    }

    /// A deny-list prefix with where it came from.
    fn deny_entry(&self, cidr: Cidr) -> DenyEntry {
        let origin = match (self.plan.firewall.deny.contains(&cidr), self.blocked.contains(&cidr)) {
            (true, true) => "config, operator",
            (true, false) => "config",
            (false, _) => "operator",
        };
        DenyEntry { cidr: cidr.to_string(), origin: origin.to_owned() }
    }
}
