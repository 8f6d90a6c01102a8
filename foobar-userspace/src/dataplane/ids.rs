//! Stable data-plane ids. A service keeps its id by name and a backend by (service, name,
//! address), across reloads and restarts, so a flow tracked under an id keeps going where it
//! went whatever the config's order. A backend taken out of its service keeps its id, retired,
//! while flows may still use it. The daemon keeps the registry in its state file.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

/// Every id handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    #[serde(default)]
    services: BTreeMap<String, u32>,
    /// By `service/backend/address`.
    #[serde(default)]
    backends: BTreeMap<String, BackendId>,
}

/// A backend's id and, once it left its service, since when (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendId {
    pub id: u32,
    pub addr: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_since: Option<u64>,
}

fn backend_key(service: &str, backend: &str, addr: IpAddr) -> String {
    format!("{service}/{backend}/{addr}")
}

/// The lowest id below `most` that `taken` does not hold.
fn lowest_free(taken: impl Iterator<Item = u32>, most: u32) -> Option<u32> {
    let mut taken: Vec<u32> = taken.collect();
    taken.sort_unstable();
    let mut next = 0;
    for id in taken {
        if id > next {
            break;
        }
        next = next.max(id + 1);
    }
    (next < most).then_some(next)
}

impl Ids {
    /// The id of service `name`: the one it had, or the lowest free one below `most`.
    pub fn service(&mut self, name: &str, most: u32) -> Option<u32> {
        if let Some(&id) = self.services.get(name) {
            return Some(id);
        }
        let id = lowest_free(self.services.values().copied(), most)?;
        self.services.insert(name.to_owned(), id);
        Some(id)
    }

    /// Forgets service `name` and its backends (its flows are gone with it).
    pub fn release_service(&mut self, name: &str) {
        self.services.remove(name);
        let prefix = format!("{name}/");
        self.backends.retain(|k, _| !k.starts_with(&prefix));
    }

    /// The id of `backend` at `addr` in `service`, and whether it is new: the one it had (taken
    /// out of retirement), or the lowest free one below `most`.
    pub fn backend(&mut self, service: &str, backend: &str, addr: IpAddr, most: u32) -> Option<(u32, bool)> {
        let key = backend_key(service, backend, addr);
        if let Some(b) = self.backends.get_mut(&key) {
            b.retired_since = None;
            return Some((b.id, false));
        }
        let id = lowest_free(self.backends.values().map(|b| b.id), most)?;
        self.backends.insert(key, BackendId { id, addr, retired_since: None });
        Some((id, true))
    }

    /// Marks a backend that left its service as retired since `now` (its id stays taken).
    pub fn retire(&mut self, service: &str, backend: &str, addr: IpAddr, now: u64) {
        if let Some(b) = self.backends.get_mut(&backend_key(service, backend, addr)) {
            b.retired_since.get_or_insert(now);
        }
    }

    /// The retired backends: their ids and addresses.
    pub fn retired(&self) -> impl Iterator<Item = &BackendId> {
        self.backends.values().filter(|b| b.retired_since.is_some())
    }

    /// Frees the ids of retired backends that no flow uses any more (`in_use` says which do).
    pub fn release_retired(&mut self, in_use: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut released = Vec::new();
        self.backends.retain(|_, b| {
            let done = b.retired_since.is_some() && !in_use(b.id);
            if done {
                released.push(b.id);
            }
            !done
        });
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ids_stay_with_names_and_retired_ones_stay_taken() {
        let mut ids = Ids::default();
        assert_eq!(ids.service("www", 4), Some(0));
        assert_eq!(ids.service("api", 4), Some(1));
        assert_eq!(ids.service("www", 4), Some(0), "the same name, the same id");
        let web1 = ip("198.51.100.11");
        let web2 = ip("198.51.100.12");
        assert_eq!(ids.backend("www", "web1", web1, 8), Some((0, true)));
        assert_eq!(ids.backend("www", "web2", web2, 8), Some((1, true)));
        ids.retire("www", "web1", web1, 100);
        assert_eq!(ids.backend("www", "web3", ip("198.51.100.13"), 8), Some((2, true)), "a retired id stays taken");
        assert_eq!(ids.backend("www", "web1", web1, 8), Some((0, false)), "back from retirement with its id");
        assert_eq!(ids.backend("www", "web1", web2, 8), Some((3, true)), "another address is another backend");
        ids.retire("www", "web2", web2, 100);
        assert_eq!(ids.release_retired(|id| id == 1), Vec::<u32>::new(), "web2's flows still use it");
        assert_eq!(ids.release_retired(|_| false), vec![1]);
        assert_eq!(ids.backend("api", "x", web2, 8), Some((1, true)), "released ids are handed out again");
        ids.release_service("www");
        assert_eq!(ids.service("new", 4), Some(0));
        assert_eq!(ids.backend("new", "a", web1, 3), Some((0, true)));
        assert_eq!(ids.backend("new", "b", web1, 2), None, "capacity reached (ids 0 and 1 taken)");
    }
}
