//! The eBPF object compiled into this binary by `build.rs`, if it was fresh at build time.

use super::DataplaneError;

#[cfg(foobar_bpf)]
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("FOOBAR_BPF_OBJECT"));

/// The embedded object, or [`DataplaneError::NotBuiltIn`] when the build had none.
pub fn bytes() -> Result<&'static [u8], DataplaneError> {
    #[cfg(foobar_bpf)]
    {
        Ok(OBJECT)
    }
    #[cfg(not(foobar_bpf))]
    {
        Err(DataplaneError::NotBuiltIn)
    }
}

/// Whether this binary carries its eBPF object (tests use it to skip with a reason).
pub const fn built_in() -> bool {
    cfg!(foobar_bpf)
}
