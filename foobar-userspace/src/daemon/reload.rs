//! Reloading: the config file is read and validated in full first; if anything is wrong the
//! running config stays as it is. A good config is applied as a difference, map entry by map
//! entry, so flows in progress are not disturbed.

use tracing::info;

use super::Daemon;
use crate::{
    apply,
    config::{self, Config},
};

impl Daemon {
    /// Re-reads the config file and applies what changed; the message says what that was.
    pub(super) fn reload(&mut self) -> Result<String, String> {
        let path = self.source.clone().ok_or("this daemon was not started from a config file")?;
        let new = config::load(&path).map_err(|e| e.to_string())?;
        if let Some(what) = daemon_change(&self.config, &new) {
            return Err(format!(
                "{}: {what} changed, which needs a restart (`systemctl restart foobar` or stop and `foobar run` again); nothing was changed",
                path.display()
            ));
        }
        // Read before anything changes, so an unreadable password file refuses the reload.
        let monitor = super::databases::settings(&new)?;
        let mut changes = Vec::new();
        // Firewall: settings and allow rules replace the old; the deny list changes by the
        // difference between the two files, so blocks made at run time stay.
        let fw = &new.firewall;
        self.dataplane.set_firewall_settings(apply::firewall_settings(fw)).map_err(|e| e.to_string())?;
        for gone in self.config.firewall.deny_sources.iter().filter(|c| !fw.deny_sources.contains(c)) {
            self.dataplane.undeny_source(*gone).map_err(|e| e.to_string())?;
            changes.push(format!("unblocked {gone}"));
        }
        for added in fw.deny_sources.iter().filter(|c| !self.config.firewall.deny_sources.contains(c)) {
            self.dataplane.deny_source(*added).map_err(|e| e.to_string())?;
            changes.push(format!("blocked {added}"));
        }
        if apply::allow_rules(&self.config.firewall) != apply::allow_rules(fw) {
            self.dataplane.set_allow_rules(&apply::allow_rules(fw)).map_err(|e| e.to_string())?;
            changes.push(format!("{} allow rules", fw.allow.len()));
        }
        // Services: updated in place by name, new ones added, dropped ones withdrawn.
        for s in &new.services {
            let spec = apply::service_spec(s);
            if self.services.get(&spec.name).is_none_or(|old| old.spec != spec) {
                changes.push(format!("service {}", spec.name));
                self.services.update(&mut self.dataplane, spec).map_err(|e| e.to_string())?;
            }
        }
        let gone: Vec<String> = self
            .services
            .all()
            .iter()
            .map(|s| s.spec.name.clone())
            .filter(|n| !new.services.iter().any(|s| s.name.get_ref() == n))
            .collect();
        for name in gone {
            self.services.remove(&mut self.dataplane, &name).map_err(|e| e.to_string())?;
            changes.push(format!("service {name} removed"));
        }
        self.config = new;
        // Operator states and health survive by name; push them onto the new backend sets.
        let pairs: Vec<(String, String)> = self
            .services
            .all()
            .iter()
            .flat_map(|s| s.spec.backends.iter().map(|b| (s.spec.name.clone(), b.name.clone())))
            .collect();
        for (service, backend) in pairs {
            self.publish(&service, &backend, "reload")?;
        }
        self.restart_checks();
        self.databases.run(monitor);
        self.refresh_dns();
        let summary = if changes.is_empty() { "no changes".to_owned() } else { changes.join(", ") };
        info!(file = %path.display(), changes = summary, "config reloaded");
        Ok(format!("reloaded {}: {summary}", path.display()))
    }
}

/// The first `[daemon]` setting that differs (those need a restart), if any.
fn daemon_change(old: &Config, new: &Config) -> Option<&'static str> {
    let (a, b) = (&old.daemon, &new.daemon);
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
    } else if a.metrics_listen != b.metrics_listen {
        Some("daemon.metrics_listen")
    } else if old.dns.as_ref().map(|d| &d.listen) != new.dns.as_ref().map(|d| &d.listen) {
        Some("dns.listen")
    } else if old.dns.as_ref().map(|d| (d.allow_axfr, d.responses_per_second))
        != new.dns.as_ref().map(|d| (d.allow_axfr, d.responses_per_second))
    {
        Some("dns.allow_axfr or dns.responses_per_second")
    } else {
        None
    }
}
