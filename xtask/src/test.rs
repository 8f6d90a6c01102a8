//! `cargo xtask test`: the whole suite from nothing.
//!
//! Setup (skipped when complete), the eBPF object, the `foobar` binary and the Debian
//! package (for the tests of separate processes and of what a user installs), then `cargo test` over the default
//! members with `FOOBAR_REQUIRE_BPF=1`, so a test that needs the data plane fails rather
//! than skips if the object did not make it into the build. Root-only tests run when this
//! runs as root (as CI does) and otherwise report themselves ignored with the reason.

use std::process::Command;

use crate::{
    build_ebpf, setup,
    step::{self, timed, workspace_root},
};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if setup::is_complete() {
        eprintln!("==> setup: complete, skipped");
    } else {
        setup::run()?;
    }
    let object = build_ebpf::run()?;
    if !foobar_tests::gate::is_root() {
        eprintln!("note: not root, so the netns and BPF tests will be reported as ignored");
    }
    // Lab tests run the `foobar` binary itself where only a separate process shows what they
    // check (its exit code and log, a second instance).
    timed("cargo build --bin foobar", || {
        step::run(
            Command::new("cargo")
                .current_dir(workspace_root())
                .args(["build", "--bin", "foobar"])
                .env("FOOBAR_BPF_OBJECT", &object),
        )
    })?;
    // The package tests check what a user installs.
    crate::package::run()?;
    timed("cargo test", || {
        step::run(
            Command::new("cargo")
                .current_dir(workspace_root())
                .args(["test", "--"])
                .args(args)
                .env("FOOBAR_REQUIRE_BPF", "1")
                .env("FOOBAR_BPF_OBJECT", &object),
        )
    })
}
