//! Counting live flows off the event loop. A scan of a full connection table takes long
//! enough to stall health handling and DNS updates if the event loop ran it for every
//! scrape; here a thread of its own, with its own handle on the table, scans when someone
//! has read the last count, at most once per [`MIN_PAUSE`] (or four times its last scan's
//! length), and `status` and `/metrics` show the latest count and its age.

use std::{
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::Map;
use foobar_common::lb::{CONNTRACK_MAP, SETTINGS_MAP};
use tracing::warn;

use super::{Dataplane, DataplaneError, flows::ActiveFlows};

const MIN_PAUSE: Duration = Duration::from_secs(1);

/// One scan's result.
#[derive(Clone, Debug)]
pub struct Count {
    pub flows: ActiveFlows,
    pub at: Instant,
    pub took: Duration,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    latest: Option<Count>,
    wanted: bool,
    stop: bool,
}

/// The counting thread; stopped on drop.
pub struct Census {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Dataplane {
    /// Starts counting live flows on a thread with its own handle on the connection table.
    pub fn census(&self) -> Result<Census, DataplaneError> {
        let table = Map::LruHashMap(self.map_handle(CONNTRACK_MAP)?);
        // The timeouts the flows are judged by, as the data plane has them (a reload changes them).
        let settings = Map::Array(self.map_handle(SETTINGS_MAP)?);
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("flow-census".into())
            .spawn(move || count_forever(&table, &settings, &worker))
            .map_err(DataplaneError::Census)?;
        Ok(Census { shared, thread: Some(thread) })
    }
}

impl Census {
    /// The latest count (`None` before the first), asking for a fresh one.
    pub fn latest(&self) -> Option<Count> {
        let mut state = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.wanted = true;
        self.shared.changed.notify_one();
        state.latest.clone()
    }
}

impl Drop for Census {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stop = true;
        self.shared.changed.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn count_forever(table: &Map, settings: &Map, shared: &Shared) {
    let lock = || shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        {
            let mut state = lock();
            while !state.wanted && !state.stop {
                state = shared.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.wanted = false;
        }
        let started = Instant::now();
        match super::flows::count_active(table, settings) {
            Ok(flows) => lock().latest = Some(Count { flows, at: Instant::now(), took: started.elapsed() }),
            Err(e) => warn!(error = %e, "cannot count the connection table's flows"),
        }
        // Rest before the next scan, waking early only to stop.
        let until = Instant::now() + MIN_PAUSE.max(started.elapsed() * 4);
        let mut state = lock();
        while !state.stop && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            state = shared.changed.wait_timeout(state, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        if state.stop {
            return;
        }
    }
}
