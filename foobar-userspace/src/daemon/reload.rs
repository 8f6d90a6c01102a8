//! Reloading: the config file is read, validated and compiled into a plan in full first; if
//! anything is wrong the running plan stays as it is. A good plan is applied as its difference
//! from the running one, map entry by map entry, so flows in progress are not disturbed.

use tracing::info;

use super::{Daemon, ReloadError};
use crate::plan::Plan;

impl Daemon {
    /// Re-reads the config file and applies what changed; the message says what that was.
    pub(super) fn reload(&mut self) -> Result<String, ReloadError> {
        let path = self.source.clone().ok_or(ReloadError::NoSource)?;
        let new = Plan::load(&path)?;
        if let Some(what) = daemon_change(&self.plan, &new) {
            return Err(ReloadError::NeedsRestart { file: path, what });
        }
        // Read before anything changes, so an unreadable password file refuses the reload.
        let monitor = super::databases::settings(&new.config)?;
        let mut changes = Vec::new();
        let (old_fw, fw) = (&self.plan.firewall, &new.firewall);
        if old_fw.settings != fw.settings {
            self.dataplane.set_firewall_settings(fw.settings)?;
        }
        // The deny list changes by the difference between the two files, so blocks made at
        // run time stay.
        for gone in old_fw.deny.iter().filter(|c| !fw.deny.contains(c) && !self.blocked.contains(c)) {
            self.dataplane.undeny_source(*gone)?;
            changes.push(format!("unblocked {gone}"));
        }
        for added in fw.deny.iter().filter(|c| !old_fw.deny.contains(c)) {
            self.dataplane.deny_source(*added)?;
            changes.push(format!("blocked {added}"));
        }
        if old_fw.compiled != fw.compiled {
            self.dataplane.set_allow_rules(&fw.compiled)?;
            changes.push(format!("{} allow rules", fw.rules.len()));
        }
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
        self.plan = new;
        // Operator states and health survive by name; push them onto the new backend sets.
        let pairs: Vec<(String, String)> = self
            .plan
            .services
            .iter()
            .flat_map(|s| s.backends.iter().map(|b| (s.name.clone(), b.name.clone())))
            .collect();
        for (service, backend) in pairs {
            self.publish(&service, &backend, "reload")?;
        }
        self.restart_checks();
        self.databases.run(monitor);
        self.refresh_dns();
        self.keep_state()?;
        let summary = if changes.is_empty() { "no changes".to_owned() } else { changes.join(", ") };
        info!(file = %path.display(), changes = summary, "config reloaded");
        Ok(format!("reloaded {}: {summary}", path.display()))
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
    } else if old.capacity != new.capacity {
        Some("capacity")
    } else if old_dns.as_ref().map(|d| &d.listen) != new_dns.as_ref().map(|d| &d.listen) {
        Some("dns.listen")
    } else if old_dns.as_ref().map(|d| (d.allow_axfr, d.responses_per_second))
        != new_dns.as_ref().map(|d| (d.allow_axfr, d.responses_per_second))
    {
        Some("dns.allow_axfr or dns.responses_per_second")
    } else {
        None
    }
}
