//! The DNS answers XDP gives (`foobar_common::dns`): the listen addresses it answers at and
//! the rendered zone, swapped in by generation so a query meets one zone whole.

use std::net::SocketAddr;

use aya::maps::{Array, HashMap, MapData};
use foobar_common::{
    addr::{FAMILY_V4, FAMILY_V6},
    dns::{
        ANSWERS_MAP, AnswerKey, LISTEN_MAP, ListenKey, MAX_ANSWERS, NXDOMAIN_MAP, NxTemplate, SETTINGS_MAP, Settings,
    },
};
use tracing::warn;

use super::{Dataplane, DataplaneError};
use crate::dns::render::Rendering;

/// Response rate limiting as the userspace server applies it: answers per second per bucket
/// (0: none) and the slip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub per_second: u32,
    pub slip: u32,
}

/// What this daemon last published: the generation answered and the keys written under it.
#[derive(Debug, Default)]
pub struct DnsAnswers {
    generation: u32,
    written: Vec<AnswerKey>,
    listen: Vec<ListenKey>,
}

fn listen_key(addr: &SocketAddr) -> ListenKey {
    let family = if addr.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
    ListenKey { addr: crate::net::words(addr.ip()), port: addr.port(), family, _pad: 0 }
}

impl DnsAnswers {
    /// Answers `rendered` at `listen` from now on, limited by `limits`; with no listen address,
    /// XDP answers nothing.
    pub fn publish(
        &mut self,
        dp: &mut Dataplane,
        listen: &[SocketAddr],
        rendering: &Rendering,
        limits: Limits,
    ) -> Result<(), DataplaneError> {
        let rendered = &rendering.answers;
        let keys: Vec<ListenKey> = listen.iter().map(listen_key).collect();
        {
            let mut map: HashMap<&mut MapData, ListenKey, u8> = HashMap::try_from(dp.map_mut(LISTEN_MAP)?)?;
            for k in &keys {
                map.insert(k, 1, 0)?;
            }
            for old in self.listen.iter().filter(|k| !keys.contains(k)) {
                let _ = map.remove(old);
            }
        }
        self.listen = keys;
        // Two generations fit at once: the one answered and the one being written.
        let room = (MAX_ANSWERS / 2) as usize;
        if rendered.len() > room {
            warn!(
                answers = rendered.len(),
                room, "more DNS answers than XDP holds: the rest are answered in userspace"
            );
        }
        let next = if self.generation == u32::MAX { 1 } else { self.generation + 1 };
        let mut written = Vec::with_capacity(rendered.len().min(room));
        {
            let mut map: HashMap<&mut MapData, AnswerKey, foobar_common::dns::Answer> =
                HashMap::try_from(dp.map_mut(ANSWERS_MAP)?)?;
            for r in rendered.iter().take(room) {
                let mut key = AnswerKey {
                    generation: next,
                    qtype: r.qtype,
                    name_len: r.name.len() as u16,
                    ..AnswerKey::default()
                };
                key.name[..r.name.len()].copy_from_slice(&r.name);
                map.insert(key, r.answer, 0)?;
                written.push(key);
            }
        }
        {
            // Not all owned names' markers fit: no NXDOMAIN from XDP, which could deny one of them.
            let nxdomain = rendering.nxdomain.filter(|_| rendered.len() <= room);
            let template = NxTemplate { generation: next, ..nxdomain.unwrap_or_default() };
            let mut array: Array<&mut MapData, NxTemplate> = Array::try_from(dp.map_mut(NXDOMAIN_MAP)?)?;
            array.set(next % 2, template, 0)?;
        }
        let interval_ns = if limits.per_second == 0 { 0 } else { 1_000_000_000 / u64::from(limits.per_second) };
        let settings = Settings {
            generation: if self.listen.is_empty() { 0 } else { next },
            slip: limits.slip,
            interval_ns,
            tolerance_ns: interval_ns * u64::from(limits.per_second.saturating_sub(1)),
        };
        let mut array: Array<&mut MapData, Settings> = Array::try_from(dp.map_mut(SETTINGS_MAP)?)?;
        array.set(0, settings, 0)?;
        let mut map: HashMap<&mut MapData, AnswerKey, foobar_common::dns::Answer> =
            HashMap::try_from(dp.map_mut(ANSWERS_MAP)?)?;
        for old in &self.written {
            let _ = map.remove(old);
        }
        self.generation = next;
        self.written = written;
        Ok(())
    }
}
