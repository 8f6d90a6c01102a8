//! Gating the routes that draw traffic to this node. Each service may name a BIRD protocol
//! (a `protocol static` exporting its VIP to the router), or a route for `announce.command`
//! to announce through another routing daemon; foobar enables it while this node
//! can serve the service (XDP attached, the node not drained, health settled and a backend
//! available) and disables it otherwise, so the router's ECMP sends the service's traffic
//! only to nodes that can take it. A plain restart leaves BIRD as it is (the pinned data
//! plane keeps forwarding); a stop that detaches withdraws everything first.
//!
//! - `bird`: BIRD's control-socket protocol.
//! - `command`: the hook for ExaBGP, GoBGP, FRR and the like.
//!
//! The event loop says what it wants ([`Announcer::want`]); a task applies it, and applies it
//! again every [`REASSERT`] so a BIRD restarted with its protocols disabled is corrected.

pub mod bird;
pub mod command;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

/// How often what is wanted is applied again even when nothing changed.
pub const REASSERT: Duration = Duration::from_secs(5);

/// The routing daemon announcements are told to.
#[derive(Clone, Debug)]
pub enum Speaker {
    /// BIRD 2's control socket: `enable` and `disable` of the named protocol.
    Bird(PathBuf),
    /// `announce.command`, with `announce NAME` or `withdraw NAME` added.
    Command(Vec<String>),
}

/// Why the routing daemon was not told.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error(transparent)]
    Bird(#[from] bird::BirdError),
    #[error(transparent)]
    Command(#[from] command::CommandError),
}

impl Speaker {
    /// The one `[announce]` names (validation made sure there is one).
    pub fn of(a: &crate::config::schema::Announce) -> Option<Speaker> {
        match (&a.bird_socket, &a.command) {
            (Some(socket), _) => Some(Speaker::Bird(socket.get_ref().clone())),
            (None, Some(c)) => Some(Speaker::Command(c.get_ref().clone())),
            (None, None) => None,
        }
    }

    /// Announces or withdraws `name`; what the routing daemon said.
    fn tell(&self, name: &str, announce: bool) -> Result<String, SpeakerError> {
        match self {
            Speaker::Bird(socket) => {
                let verb = if announce { "enable" } else { "disable" };
                Ok(bird::command(socket, &format!("{verb} {name}"))?.text)
            }
            Speaker::Command(c) => Ok(command::run(c, name, announce)?),
        }
    }
}

/// What the node wants of one protocol, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub protocol: String,
    /// `None`: no opinion yet (health not settled since start): BIRD is left as it is, so a
    /// restart neither withdraws a route nor announces one early.
    pub announce: Option<bool>,
    pub why: String,
}

/// What BIRD last said of one protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub announced: Option<bool>,
    pub error: Option<String>,
}

/// The task that keeps the routing daemon's announcements as wanted; stopped on drop.
pub struct Announcer {
    speaker: Speaker,
    wanted: watch::Sender<Vec<Wanted>>,
    applied: Arc<Mutex<BTreeMap<String, Applied>>>,
    task: JoinHandle<()>,
}

impl Announcer {
    /// Starts applying wants through `speaker` (nothing is sent before the first want).
    pub fn start(speaker: Speaker) -> Announcer {
        let (wanted, mut changes) = watch::channel(Vec::<Wanted>::new());
        let applied = Arc::new(Mutex::new(BTreeMap::new()));
        let (told, record) = (speaker.clone(), applied.clone());
        let task =
            tokio::spawn(async move {
                let mut last: Vec<Wanted> = Vec::new();
                loop {
                    let now = changes.borrow_and_update().clone();
                    // A protocol the config no longer names (a reload) is withdrawn once.
                    let dropped = last.iter().filter(|l| !now.iter().any(|n| n.protocol == l.protocol)).map(|l| {
                        Wanted { announce: Some(false), why: "no longer announced by the config".into(), ..l.clone() }
                    });
                    let mut wants: Vec<Wanted> = dropped.collect();
                    for w in &wants {
                        if let Ok(mut a) = record.lock() {
                            a.remove(&w.protocol);
                        }
                    }
                    wants.extend(now.iter().cloned());
                    if !wants.is_empty() {
                        let (told, record, changed) = (told.clone(), record.clone(), now != last);
                        let _ = tokio::task::spawn_blocking(move || apply(&told, &wants, &record, changed)).await;
                    }
                    last = now;
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        () = tokio::time::sleep(REASSERT) => {}
                    }
                }
            });
        Announcer { speaker, wanted, applied, task }
    }

    /// Says what the node wants now; only a change is applied at once.
    pub fn want(&self, wanted: Vec<Wanted>) {
        self.wanted.send_if_modified(|w| {
            let changed = *w != wanted;
            *w = wanted;
            changed
        });
    }

    /// Each protocol: what is wanted and why, and what the routing daemon last confirmed.
    pub fn report(&self) -> Vec<(Wanted, Applied)> {
        let applied = self.applied.lock().map(|a| a.clone()).unwrap_or_default();
        self.wanted
            .borrow()
            .iter()
            .map(|w| (w.clone(), applied.get(&w.protocol).cloned().unwrap_or_default()))
            .collect()
    }

    /// Withdraws every protocol now, waiting for BIRD (a stop that detaches the data plane).
    pub fn withdraw_all(&self) {
        self.task.abort();
        let wants: Vec<Wanted> = self
            .wanted
            .borrow()
            .iter()
            .map(|w| Wanted { announce: Some(false), why: "foobar stopped and detached".into(), ..w.clone() })
            .collect();
        apply(&self.speaker, &wants, &self.applied, true);
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Tells the routing daemon each want and records what it said; logs changes (`changed`)
/// and failures.
fn apply(speaker: &Speaker, wants: &[Wanted], applied: &Mutex<BTreeMap<String, Applied>>, changed: bool) {
    for w in wants {
        let Some(announce) = w.announce else { continue };
        let result = speaker.tell(&w.protocol, announce);
        let before = applied.lock().ok().and_then(|a| a.get(&w.protocol).cloned()).unwrap_or_default();
        let now = match &result {
            Ok(_) => Applied { announced: Some(announce), error: None },
            Err(e) => Applied { announced: before.announced, error: Some(e.to_string()) },
        };
        match &result {
            Ok(said) if changed || before.announced != Some(announce) => {
                info!(protocol = w.protocol, announce, why = w.why, said, "announcement");
            }
            Ok(_) => {}
            Err(e) if before.error.as_deref() != Some(&e.to_string()) => {
                warn!(protocol = w.protocol, announce, error = %e, "cannot tell the routing daemon");
            }
            Err(_) => {}
        }
        if let Ok(mut a) = applied.lock() {
            a.insert(w.protocol.clone(), now);
        }
    }
}
