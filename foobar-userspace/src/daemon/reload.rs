//! Reloading, all or nothing. The config file is read, validated and compiled into a plan,
//! and everything that can be known to fail is checked against the running daemon (routes to
//! new backends, capacities with the operator's blocks and retired backends counted): if any
//! of it is wrong, nothing changes. Then the difference between the two plans is applied, map
//! entry by map entry, so that flows in progress are not disturbed; if a step still fails,
//! every step before it is undone and the running plan stays exactly as it was.

use tracing::{info, warn};

use super::{Daemon, ReloadError};
use crate::{
    dataplane::{DataplaneError, firewall::Settings, rules::CompiledRules, services::source_towards},
    net::Cidr,
    plan::Plan,
};

/// A step applied to the firewall, and how to undo it.
enum Undo {
    Settings(Settings),
    Rules(CompiledRules),
    Denied(Cidr),
    Undenied(Cidr),
}

impl Daemon {
    /// Re-reads the config file and applies what changed; the message says what that was.
    /// Its outcome is kept for `/metrics`.
    pub(super) fn reload(&mut self) -> Result<String, ReloadError> {
        crate::notify::notify("RELOADING=1");
        let outcome = self.reload_config();
        match &outcome {
            Ok(_) => crate::notify::notify("READY=1\nSTATUS=serving: reloaded"),
            Err(e) => {
                crate::notify::notify(&format!("READY=1\nSTATUS=serving the previous config: reload refused: {e}"))
            }
        }
        self.last_config.successful = outcome.is_ok();
        if outcome.is_ok() {
            self.last_config.succeeded_at = std::time::SystemTime::now();
        }
        outcome
    }

    fn reload_config(&mut self) -> Result<String, ReloadError> {
        let path = self.source.clone().ok_or(ReloadError::NoSource)?;
        let new = Plan::load(&path)?;
        if let Some(what) = daemon_change(&self.plan, &new) {
            return Err(ReloadError::NeedsRestart { file: path, what });
        }
        // Read before anything changes, so an unreadable password file refuses the reload.
        let monitor = super::databases::settings(&new)?;
        self.prepare(&new)?;
        let retimed = new.lb != self.plan.lb;
        if retimed {
            self.dataplane.set_lb_settings(new.lb)?;
        }
        let before = self.services.begin();
        let mut undo = Vec::new();
        let mut changes = match self.apply(&new, &mut undo) {
            Ok(changes) => changes,
            Err(e) => {
                self.roll_back(before, undo);
                if retimed && let Err(undo) = self.dataplane.set_lb_settings(self.plan.lb) {
                    warn!(error = %undo, "cannot restore the connection table's settings");
                }
                return Err(e.into());
            }
        };
        if retimed {
            changes.push("conntrack settings".to_owned());
        }
        // Applied: what is left, deleting the withdrawn keys' flows, no longer changes what runs.
        if let Err(e) = self.services.commit(&mut self.dataplane) {
            warn!(error = %e, "cannot delete the flows of what the reload withdrew; they expire by themselves");
        }
        self.plan = new;
        self.added.follow(&self.plan.config);
        self.restart_checks();
        self.databases.run(monitor);
        self.follow_liveness();
        self.keep_state()?;
        let summary = if changes.is_empty() { "no changes".to_owned() } else { changes.join(", ") };
        info!(file = %path.display(), changes = summary, "config reloaded");
        Ok(format!("reloaded {}: {summary}", path.display()))
    }

    /// What `new` needs that the running daemon must have room or a route for.
    fn prepare(&self, new: &Plan) -> Result<(), ReloadError> {
        for spec in &new.services {
            let old = self.plan.service(&spec.name);
            for b in &spec.backends {
                let known = old.is_some_and(|o| o.backends.iter().any(|x| x.name == b.name && x.addr == b.addr));
                if !known {
                    source_towards(b.addr).map_err(|source| ReloadError::NoRoute {
                        service: spec.name.clone(),
                        backend: b.name.clone(),
                        addr: b.addr,
                        source,
                    })?;
                }
            }
        }
        let deny = &new.firewall.deny;
        for v4 in [true, false] {
            let entries =
                deny.iter().chain(self.blocked.iter().filter(|c| !deny.contains(c))).filter(|c| c.addr.is_ipv4() == v4);
            let n = entries.count();
            if n > new.capacity.deny_entries as usize {
                return Err(ReloadError::DenyCapacity { entries: n, capacity: new.capacity.deny_entries });
            }
        }
        Ok(())
    }

    /// Applies the difference between the running plan and `new`, noting each firewall step in
    /// `undo` (the services' own change undoes itself); the changes made, for the message.
    fn apply(&mut self, new: &Plan, undo: &mut Vec<Undo>) -> Result<Vec<String>, DataplaneError> {
        let mut changes = Vec::new();
        // Services: updated in place by name, new ones added, dropped ones withdrawn.
        for spec in &new.services {
            if self.plan.service(&spec.name) != Some(spec) {
                changes.push(format!("service {}", spec.name));
                self.services.update(&mut self.dataplane, spec.clone())?;
            }
        }
        for gone in self.plan.services.iter().filter(|s| new.service(&s.name).is_none()) {
            self.services.remove(&mut self.dataplane, &gone.name)?;
            changes.push(format!("service {} removed", gone.name));
        }
        // Operator states and health survive by name; push them onto the new backend sets.
        for spec in &new.services {
            for b in &spec.backends {
                let state = self.backends.get(&spec.name, &b.name).effective();
                self.services.set_state(&mut self.dataplane, &spec.name, &b.name, state)?;
            }
        }
        let (old_fw, fw) = (&self.plan.firewall, &new.firewall);
        if old_fw.settings != fw.settings {
            self.dataplane.set_firewall_settings(fw.settings)?;
            undo.push(Undo::Settings(old_fw.settings));
        }
        if old_fw.compiled != fw.compiled {
            self.dataplane.set_allow_rules(&fw.compiled)?;
            undo.push(Undo::Rules(old_fw.compiled.clone()));
            changes.push(format!("{} allow rules", fw.rules.len()));
        }
        // The deny list changes by the difference between the two files, so blocks made at
        // run time stay.
        for gone in old_fw.deny.iter().filter(|c| !fw.deny.contains(c) && !self.blocked.contains(c)) {
            self.dataplane.undeny_source(*gone)?;
            undo.push(Undo::Undenied(*gone));
            changes.push(format!("unblocked {gone}"));
        }
        for added in fw.deny.iter().filter(|c| !old_fw.deny.contains(c) && !self.blocked.contains(c)) {
            self.dataplane.deny_source(*added)?;
            undo.push(Undo::Denied(*added));
            changes.push(format!("blocked {added}"));
        }
        Ok(changes)
    }

    /// Undoes a failed reload's steps, the last first. A step that cannot be undone either is
    /// logged: the kernel refused the same kind of update twice in a row.
    fn roll_back(&mut self, before: crate::dataplane::services::Before, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match step {
                Undo::Settings(s) => self.dataplane.set_firewall_settings(s),
                Undo::Rules(r) => self.dataplane.set_allow_rules(&r),
                Undo::Denied(c) => self.dataplane.undeny_source(c).map(|_| ()),
                Undo::Undenied(c) => self.dataplane.deny_source(c),
            };
            if let Err(e) = result {
                warn!(error = %e, "cannot undo a step of the failed reload");
            }
        }
        if let Err(e) = self.services.roll_back(&mut self.dataplane, before) {
            warn!(error = %e, "cannot restore the services as they were before the failed reload");
        }
        info!("reload failed; every step it made was undone");
    }
}

/// The first setting that differs among those only a restart can change, if any.
fn daemon_change(old: &Plan, new: &Plan) -> Option<&'static str> {
    let (a, b) = (&old.config.daemon, &new.config.daemon);
    let (old_dns, new_dns) = (&old.config.dns, &new.config.dns);
    let names = |v: &Vec<toml::Spanned<String>>| v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    if names(&a.interfaces) != names(&b.interfaces) {
        Some("daemon.interfaces")
    } else if names(&a.untrusted) != names(&b.untrusted) {
        Some("daemon.untrusted")
    } else if a.xdp_mode != b.xdp_mode {
        Some("daemon.xdp_mode")
    } else if a.pin_dir != b.pin_dir {
        Some("daemon.pin_dir")
    } else if a.control_socket != b.control_socket {
        Some("daemon.control_socket")
    } else if a.state_file != b.state_file {
        Some("daemon.state_file")
    } else if a.metrics_listen != b.metrics_listen {
        Some("daemon.metrics_listen")
    } else if a.vip_interface.as_ref().map(|v| v.get_ref()) != b.vip_interface.as_ref().map(|v| v.get_ref()) {
        Some("daemon.vip_interface")
    } else if old.config.announce != new.config.announce {
        Some("announce.bird_socket or announce.command")
    } else if old.config.cluster != new.config.cluster {
        Some("cluster")
    } else if old.capacity != new.capacity {
        Some("capacity")
    } else if old_dns.as_ref().map(crate::dns::Settings::from) != new_dns.as_ref().map(crate::dns::Settings::from) {
        Some("dns.listen, allow_axfr, responses_per_second, slip, tcp_connections or tcp_idle_timeout")
    } else {
        None
    }
}
