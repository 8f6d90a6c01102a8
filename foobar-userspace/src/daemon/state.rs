//! What the operator changed at run time, kept across restarts in `daemon.state_file` (as
//! HAProxy's server-state file keeps servers' states): blocked prefixes, drained and disabled
//! backends, the data plane's ids, and where the database primary was moved. Written whole after every change, atomically (a new file
//! renamed over the old), so a crash leaves the old state or the new, never half of one.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::backends::Admin;
use crate::{dataplane::ids::Ids, net::Cidr};

/// This build's state-file format.
const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Prefixes `foobar firewall block` added, kept until `foobar firewall unblock`.
    #[serde(default)]
    pub blocked: BTreeSet<String>,
    /// Backends not enabled: service → backend → draining or disabled.
    #[serde(default)]
    pub backends: BTreeMap<String, BTreeMap<String, Stance>>,
    #[serde(default)]
    pub ids: Ids,
    /// `foobar node drain`: this node announces nothing until `foobar node enable`.
    #[serde(default)]
    pub node_drained: bool,
    /// Where a failover or switchover moved the database primary.
    #[serde(default)]
    pub replication: crate::replication::Topology,
}

/// An operator's word on a backend, as the file spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    Draining,
    Disabled,
}

impl From<Stance> for Admin {
    fn from(s: Stance) -> Admin {
        match s {
            Stance::Draining => Admin::Draining,
            Stance::Disabled => Admin::Disabled,
        }
    }
}

impl Stance {
    /// How `admin` is kept; `None` for enabled (the default, not written).
    pub fn of(admin: Admin) -> Option<Stance> {
        match admin {
            Admin::Enabled => None,
            Admin::Draining => Some(Stance::Draining),
            Admin::Disabled => Some(Stance::Disabled),
        }
    }
}

/// The state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the state file {} is not foobar state ({source}): move it away to start without the operator's \
         blocks, drains and ids (open connections then may go to other backends after this start)",
        path.display()
    )]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("the state file {} was written by a newer foobar (format {found}, this one reads {VERSION})", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write the state file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl State {
    /// The state kept at `path`; empty when there is none yet.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State { version: VERSION, ..State::default() });
            }
            Err(source) => return Err(StateError::Read { path: path.to_path_buf(), source }),
        };
        let state: State =
            serde_json::from_str(&text).map_err(|source| StateError::Parse { path: path.to_path_buf(), source })?;
        if state.version > VERSION {
            return Err(StateError::Version { path: path.to_path_buf(), found: state.version });
        }
        Ok(state)
    }

    /// The operator's blocks, as prefixes (entries that no longer parse are dropped).
    pub fn blocks(&self) -> BTreeSet<Cidr> {
        self.blocked.iter().filter_map(|c| c.parse().ok()).collect()
    }

    /// Writes the state to `path`: a temporary file beside it, flushed to disk, renamed over it.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write_error = |source| StateError::Write { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let text = serde_json::to_string_pretty(&State { version: VERSION, ..self.clone() })
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.new");
        let mut file = std::fs::File::create(&tmp).map_err(write_error)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(write_error)?;
        std::fs::rename(&tmp, path).map_err(write_error)?;
        if let Some(dir) = path.parent() {
            // The rename itself reaches the disk with the directory.
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file_and_refuses_junk() {
        let dir = std::env::temp_dir().join(format!("foobar-state-test-{}", std::process::id()));
        let path = dir.join("state.json");
        assert_eq!(State::load(&path).expect("no file yet").blocked.len(), 0);
        let mut state = State::load(&path).expect("empty");
        state.blocked.insert("192.0.2.100/32".into());
        state.backends.entry("www".into()).or_default().insert("web1".into(), Stance::Draining);
        state.ids.service("www", 4);
        state.replication.primary = Some("db2".into());
        state.replication.promoted_at = Some("0-1-57".into());
        state.save(&path).expect("save");
        assert_eq!(State::load(&path).expect("load"), State { version: VERSION, ..state });
        std::fs::write(&path, "{not json").expect("write junk");
        let err = State::load(&path).expect_err("junk");
        assert!(err.to_string().contains("is not foobar state"), "{err}");
        std::fs::write(&path, r#"{"version": 9}"#).expect("write");
        assert!(matches!(State::load(&path), Err(StateError::Version { found: 9, .. })));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
