//! Many map entries per syscall: reading a hash map (`BPF_MAP_LOOKUP_BATCH`) and writing a
//! run of array slots (`BPF_MAP_UPDATE_BATCH`).
//!
//! aya's map iterator pays two syscalls per entry (next key, then its value), and its array
//! `set` one per slot. The connection table holds up to a million flows, which `status` and
//! every `/metrics` scrape count; a Maglev ring is 65,537 slots, written at every backend change.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Pod,
    maps::{Array, HashMap, Map, MapData, MapError},
};

use super::DataplaneError;

/// `enum bpf_cmd` values of BPF_MAP_LOOKUP_BATCH and BPF_MAP_UPDATE_BATCH (linux/bpf.h;
/// kernel 5.6 and later).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Entries asked for per call. A hash map bucket never holds this many, so the kernel's
/// "bucket larger than the buffer" error (ENOSPC) cannot stop a scan.
const BATCH: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `f` with each entry of the hash map `map` (plain or LRU), at most `limit` of them.
/// Entries added or removed while the scan runs may or may not be seen, as with any map walk.
pub(crate) fn for_each_entry<K: Pod + Default, V: Pod + Default>(
    map: &Map,
    limit: usize,
    mut f: impl FnMut(&K, &V),
) -> Result<(), DataplaneError> {
    // The typed view checks that K and V have the map's key and value sizes: the kernel copies
    // exactly that many bytes per entry into the buffers below.
    let _: HashMap<&MapData, K, V> = HashMap::try_from(map)?;
    let (Map::HashMap(data) | Map::LruHashMap(data)) = map else {
        unreachable!("HashMap::try_from accepted a map that is not a hash map")
    };
    let fd = data.fd().as_fd().as_raw_fd();
    let mut keys = vec![K::default(); BATCH];
    let mut values = vec![V::default(); BATCH];
    // The kernel's resume token for hash maps is a bucket index (u32); room for a u64 is spare.
    let (mut cursor_in, mut cursor_out) = (0u64, 0u64);
    let mut first = true;
    let mut seen = 0;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const cursor_in as u64 },
            out_batch: &raw mut cursor_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: BATCH as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: every pointer in `attr` names a live buffer of the size the kernel will write
        // (count × key size, count × value size, one cursor); K and V are Pod, so any bytes do.
        let rc =
            unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, &raw mut attr, size_of::<BatchAttr>() as u32) };
        // ENOENT means "no more entries"; the entries of this last call are still valid.
        let done = rc < 0 && {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOENT) {
                return Err(syscall_error("bpf_map_lookup_batch", err));
            }
            true
        };
        for (k, v) in keys.iter().zip(&values).take(attr.count as usize) {
            if seen == limit {
                return Ok(());
            }
            f(k, v);
            seen += 1;
        }
        if done {
            return Ok(());
        }
        cursor_in = cursor_out;
        first = false;
    }
}

/// Writes `values` into the array `map` from slot `first` on, in one call. Each slot is
/// updated on its own (the kernel makes no batch atomic), so callers write slots no program
/// reads yet, as the idle half of a service's ring.
pub(crate) fn set_array_slots<V: Pod>(map: &mut Map, first: u32, values: &[V]) -> Result<(), DataplaneError> {
    // The typed view checks that V is the map's value size (the kernel copies that many bytes each).
    let _: Array<&mut MapData, V> = Array::try_from(&mut *map)?;
    let Map::Array(data) = map else { unreachable!("Array::try_from accepted a map that is not an array") };
    let fd = data.fd().as_fd().as_raw_fd();
    let keys: Vec<u32> = (first..).take(values.len()).collect();
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: values.len() as u32,
        map_fd: fd as u32,
        ..BatchAttr::default()
    };
    // SAFETY: `keys` and `values` hold `count` elements each, of the sizes the kernel reads (u32
    // indices, V values checked above); the kernel only reads them.
    let rc =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_UPDATE_BATCH, &raw mut attr, size_of::<BatchAttr>() as u32) };
    if rc < 0 {
        return Err(syscall_error("bpf_map_update_batch", io::Error::last_os_error()));
    }
    Ok(())
}

fn syscall_error(call: &'static str, io_error: io::Error) -> DataplaneError {
    MapError::from(aya::sys::SyscallError { call, io_error }).into()
}
