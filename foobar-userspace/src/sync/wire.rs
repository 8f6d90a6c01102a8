//! The flow-sync datagram: a header, up to [`MAX_ENTRIES`] flows, and an HMAC-SHA256 tag
//! over both with the cluster's shared key. A datagram that is short, long, unsigned or
//! signed with another key is refused whole; [`Replay`] refuses one heard before.

use bytemuck::{Pod, Zeroable};
use foobar_common::lb::{FlowKey, Proxied};
use ring::hmac;

/// What starts every datagram (the format's version is its last byte).
pub const MAGIC: [u8; 4] = *b"FBS1";
/// Flows per datagram: 1,408 bytes in all, under a 1,500-byte MTU with IPv6 and UDP headers.
pub const MAX_ENTRIES: usize = 16;
const TAG_LEN: usize = 32;

/// Who sent a datagram and where it stands in the sender's sequence.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    pub magic: [u8; 4],
    /// The sender's slot (its place in `[[cluster.node]]`, from 1).
    pub slot: u32,
    /// The sender's run: the wall-clock nanoseconds it started at, so a restart's sequence
    /// begins above the last run's.
    pub epoch: u64,
    /// Counts up by one per datagram within a run.
    pub seq: u64,
    pub count: u32,
    /// [`FULL_DONE`], [`YOURS`].
    pub flags: u32,
}

/// [`Header::flags`]: the sender has sent every live flow it has (its full resend is done).
pub const FULL_DONE: u32 = 1;
/// [`Header::flags`]: these are the receiver's own flows, which the sender carried or kept
/// for it (sent back once to a node that started again, maybe with empty tables).
pub const YOURS: u32 = 2;

/// One NAT flow as its node holds it; backend and service by address, not by id (ids are
/// each node's own).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Entry {
    /// The flow as the client sent it (to the VIP).
    pub key: FlowKey,
    /// The backend's address.
    pub backend: [u32; 4],
    pub proxied: Proxied,
    pub nat_port: u16,
    pub flags: u16,
    pub client_seq: u32,
    pub client_ack: u32,
    /// How long before sending the sender last saw a packet of it, in milliseconds.
    pub idle_ms: u32,
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a flow-sync datagram (length or magic)")]
    Malformed,
    #[error("its signature does not match the cluster's key")]
    BadTag,
    #[error("heard before, or older than the last one from its sender")]
    Replayed,
}

/// The cluster's shared key.
#[derive(Clone)]
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

/// A signed datagram carrying `entries` (at most [`MAX_ENTRIES`]).
pub fn seal(key: &Key, mut header: Header, entries: &[Entry]) -> Vec<u8> {
    debug_assert!(entries.len() <= MAX_ENTRIES);
    header.magic = MAGIC;
    header.count = entries.len() as u32;
    let mut out = Vec::with_capacity(size_of::<Header>() + size_of_val(entries) + TAG_LEN);
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(bytemuck::cast_slice(entries));
    let tag = hmac::sign(&key.0, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// The header and flows of `datagram`, if it is whole and signed with `key`.
pub fn open(key: &Key, datagram: &[u8]) -> Result<(Header, Vec<Entry>), Refused> {
    let head = size_of::<Header>();
    if datagram.len() < head + TAG_LEN {
        return Err(Refused::Malformed);
    }
    let (body, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let header: Header = bytemuck::pod_read_unaligned(&body[..head]);
    let entries = &body[head..];
    let count = header.count as usize;
    if header.magic != MAGIC || count > MAX_ENTRIES || entries.len() != count * size_of::<Entry>() {
        return Err(Refused::Malformed);
    }
    hmac::verify(&key.0, body, tag).map_err(|_| Refused::BadTag)?;
    let entries = entries.chunks_exact(size_of::<Entry>()).map(bytemuck::pod_read_unaligned).collect();
    Ok((header, entries))
}

/// The newest (epoch, sequence) heard from one sender: anything not after it is a replay.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replay {
    last: Option<(u64, u64)>,
}

impl Replay {
    /// Takes `h` if it comes after everything heard from its sender so far; whether it is
    /// the first of a run (the sender started, or is heard for the first time).
    pub fn admit(&mut self, h: &Header) -> Result<bool, Refused> {
        if self.last.is_some_and(|last| (h.epoch, h.seq) <= last) {
            return Err(Refused::Replayed);
        }
        let new_run = self.last.is_none_or(|(epoch, _)| epoch != h.epoch);
        self.last = Some((h.epoch, h.seq));
        Ok(new_run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(port: u16) -> Entry {
        Entry {
            key: FlowKey::new([1, 0, 0, 0], 40000, [2, 0, 0, 0], 80, 6, 4),
            backend: [3, 0, 0, 0],
            nat_port: port,
            idle_ms: 12,
            ..Entry::default()
        }
    }

    fn header(seq: u64) -> Header {
        Header { slot: 2, epoch: 7, seq, ..Header::default() }
    }

    #[test]
    fn a_sealed_datagram_opens_with_the_same_key_only() {
        let key = Key::new(&[9; 32]);
        let entries: Vec<Entry> = (0..MAX_ENTRIES as u16).map(|i| entry(20000 + i)).collect();
        let d = seal(&key, header(1), &entries);
        assert!(d.len() <= 1408, "{} bytes", d.len());
        let (h, got) = open(&key, &d).expect("opens");
        assert_eq!((h.slot, h.epoch, h.seq, got), (2, 7, 1, entries));
        assert_eq!(open(&Key::new(&[8; 32]), &d).err(), Some(Refused::BadTag));
    }

    #[test]
    fn any_changed_byte_or_length_is_refused() {
        let key = Key::new(b"a cluster's secret of 32 bytes!!");
        let d = seal(&key, header(1), &[entry(20000), entry(20001)]);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            assert!(open(&key, &bad).is_err(), "byte {i} changed and still opened");
        }
        for len in 0..d.len() {
            assert!(open(&key, &d[..len]).is_err(), "{len} bytes opened");
        }
        let mut longer = d.clone();
        longer.insert(40, 0);
        assert_eq!(open(&key, &longer).err(), Some(Refused::Malformed));
    }

    #[test]
    fn replays_and_older_datagrams_are_refused_and_a_new_run_is_taken() {
        let mut r = Replay::default();
        assert_eq!(r.admit(&header(5)), Ok(true), "first heard");
        assert_eq!(r.admit(&header(5)), Err(Refused::Replayed));
        assert_eq!(r.admit(&header(4)), Err(Refused::Replayed));
        assert_eq!(r.admit(&header(6)), Ok(false));
        let restarted = Header { epoch: 8, seq: 0, ..header(0) };
        assert_eq!(r.admit(&restarted), Ok(true), "a new run");
        assert_eq!(r.admit(&header(9)), Err(Refused::Replayed), "the old run is over");
    }
}
