//! Building the XDP programs.
//!
//! The eBPF crate needs nightly (`-Z build-std=core` for the `bpfel-unknown-none` target)
//! and bpf-linker; the result is copied to `target/bpf/foobar.bpf.o`, the path the
//! userspace `build.rs` embeds from (overridable with `FOOBAR_BPF_OBJECT` for both).

use std::{path::PathBuf, process::Command};

use anyhow::Context;

use crate::step::{self, timed, workspace_root};

const TARGET: &str = "bpfel-unknown-none";

/// The nightly the eBPF object is built and verified with (its `commit-date`). rustup cannot
/// fetch a dated toolchain on these machines, so this is a check rather than a
/// `rust-toolchain.toml`: another nightly builds with a warning (its code generation, and so
/// the verifier's instruction counts, may differ), or fails with `FOOBAR_STRICT_NIGHTLY=1`.
const TESTED_NIGHTLY: &str = "2026-05-19";

/// Compares the installed nightly with [`TESTED_NIGHTLY`].
fn check_nightly() -> anyhow::Result<()> {
    let out = Command::new("rustc").args(["+nightly", "-vV"]).output().context("run `rustc +nightly -vV`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let date = text.lines().find_map(|l| l.strip_prefix("commit-date: ")).unwrap_or("unknown");
    if date == TESTED_NIGHTLY {
        return Ok(());
    }
    let message =
        format!("the nightly here is from {date}; foobar's eBPF is tested with the nightly of {TESTED_NIGHTLY}");
    if std::env::var_os("FOOBAR_STRICT_NIGHTLY").is_some_and(|v| v == "1") {
        anyhow::bail!("{message} (FOOBAR_STRICT_NIGHTLY=1)");
    }
    eprintln!("    warning: {message}; building anyway");
    Ok(())
}

/// Where the object goes, as `foobar-userspace/build.rs` expects it.
pub fn object_path() -> PathBuf {
    std::env::var_os("FOOBAR_BPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/bpf/foobar.bpf.o"))
}

pub fn run() -> anyhow::Result<PathBuf> {
    timed("build eBPF object (nightly, bpfel-unknown-none, BTF)", || {
        check_nightly()?;
        let root = workspace_root();
        let target_dir = root.join("target/bpf");
        let arch = std::env::consts::ARCH;
        let rustflags = [
            format!("--cfg=bpf_target_arch=\"{arch}\""),
            "-Cdebuginfo=2".to_owned(),
            "-Clink-arg=--btf".to_owned(),
            // v3: 32-bit sub-registers, jump classes and the atomic instructions (CAS) used.
            "-Ctarget-cpu=v3".to_owned(),
        ]
        .join("\x1f");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root)
            .args(["+nightly", "build", "--package", "foobar-ebpf", "--release"])
            .args(["--target", TARGET, "-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
            // The stable toolchain that runs xtask must not leak into the nightly build.
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTFLAGS");
        step::run(&mut cmd).context("eBPF build failed (a missing toolchain piece is fixed by `cargo xtask setup`)")?;
        let built = target_dir.join(TARGET).join("release/foobar");
        let object = object_path();
        if let Some(dir) = object.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(&built, &object).with_context(|| format!("copy {} to {}", built.display(), object.display()))?;
        let size = std::fs::metadata(&object)?.len();
        eprintln!("    wrote {} ({size} bytes)", object.display());
        Ok(object)
    })
}
