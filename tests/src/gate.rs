//! Whether a test that needs root or the eBPF object can run here, and if not, why.
//!
//! Outside CI such tests are skipped with the reason. Under CI (`CI=true`), or when
//! `FOOBAR_REQUIRE_BPF=1` as `cargo xtask test` sets, a missing prerequisite is a failure:
//! a suite that silently skips its kernel tests would prove nothing.

/// What a test needs beyond the host toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Root: network namespaces, BPF syscalls.
    Root,
    /// The eBPF object built into foobar (`cargo xtask build-ebpf`).
    Bpf,
}

/// Outcome of checking a test's needs.
pub enum Gate {
    Run,
    Skip(String),
    Fail(String),
}

fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("FOOBAR_REQUIRE_BPF").is_ok_and(|v| v == "1")
}

/// Whether this process runs as root; the gate, xtask and benches all ask this one place.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Checks `needs` in order and says whether the test runs, is skipped, or must fail.
pub fn check(needs: &[Need]) -> Gate {
    for need in needs {
        let missing = match need {
            Need::Root if !is_root() => Some("needs root (network namespaces, BPF): run `sudo -E cargo xtask test`"),
            Need::Bpf if !foobar::dataplane::object::built_in() => {
                Some("foobar was built without its eBPF object: run `cargo xtask build-ebpf` first")
            }
            _ => None,
        };
        if let Some(why) = missing {
            return if strict() { Gate::Fail(why.to_owned()) } else { Gate::Skip(why.to_owned()) };
        }
    }
    Gate::Run
}
