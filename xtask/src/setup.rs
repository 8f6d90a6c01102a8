//! `cargo xtask setup`: everything a fresh machine needs, installed idempotently.
//!
//! 1. Debian packages for the tests and the lab (only the missing ones; needs root).
//! 2. `rust-src` for the nightly toolchain (`-Z build-std=core`).
//! 3. bpf-linker built against the nightly's own LLVM: no system LLVM of that major exists,
//!    but the nightly ships `libLLVM.so.<major>...` in its sysroot. A prefix directory whose
//!    `lib/libLLVM.so` links to it, given as `LLVM_PREFIX`, lets llvm-sys build, and an rpath
//!    to the sysroot lets the linker run without `LD_LIBRARY_PATH`. A stamp records which
//!    nightly it was built for, so a second run skips it.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, bail};

use crate::step::{self, output, timed};

/// Debian packages the tests and the lab use.
pub const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "ethtool",
    "bpftool",
    "procps",
    "curl",
    "nginx-light",
    "mariadb-server",
    "mariadb-client",
    "bind9-dnsutils",
    "wrk",
    "haproxy",
    "nftables",
    "gnuplot-nox",
    "nsd",
    "dnsperf",
    // The DNS benchmark's second baseline.
    "knot",
    "openssl",
    // The hung-backend test's never-answering server.
    "python3",
    // The cluster lab's router and nodes (BGP with BFD).
    "bird2",
    // The active-passive pair's VRRP (sites without a BGP router).
    "keepalived",
    // promtool for the exposition and alert rules; the alerting lab.
    "prometheus",
    "prometheus-alertmanager",
    // The status page's browser test.
    "chromium",
    // A C compiler for the crates that build C (ring).
    "build-essential",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> anyhow::Result<()> {
    timed("Debian packages", apt_packages)?;
    timed("rust-src for nightly", rust_src)?;
    timed("bpf-linker against the nightly's LLVM", bpf_linker)?;
    Ok(())
}

/// Whether everything `setup` installs is already present (cheap enough to ask every test run).
pub fn is_complete() -> bool {
    missing_packages().is_empty() && rust_src_installed() && bpf_linker_current().unwrap_or(false)
}

fn missing_packages() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect()
}

fn apt_packages() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        eprintln!("    all {} packages present", APT_PACKAGES.len());
        return Ok(());
    }
    if !foobar_tests::gate::is_root() {
        bail!(
            "missing Debian packages {missing:?}: run `sudo cargo xtask setup` or `sudo apt-get install {}`",
            missing.join(" ")
        );
    }
    eprintln!("    installing {}", missing.join(" "));
    step::run(Command::new("apt-get").args(["update", "-q"]))?;
    step::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn rust_src_installed() -> bool {
    output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
        .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")))
}

fn rust_src() -> anyhow::Result<()> {
    if output(Command::new("rustc").args(["+nightly", "--version"])).is_none() {
        bail!("no nightly toolchain: this machine's image should provide one (`rustup toolchain list`)");
    }
    if rust_src_installed() {
        eprintln!("    already installed");
        return Ok(());
    }
    step::run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The nightly's sysroot, LLVM major version and full `rustc -vV` (the stamp's content).
fn nightly() -> anyhow::Result<(PathBuf, String, String)> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("`rustc +nightly --print sysroot` failed")?;
    let verbose = output(Command::new("rustc").args(["+nightly", "-vV"])).context("`rustc +nightly -vV` failed")?;
    let llvm = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` names no LLVM version")?
        .to_owned();
    Ok((PathBuf::from(sysroot.trim()), llvm, verbose))
}

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/foobar")
}

fn stamp_path() -> PathBuf {
    cache_dir().join("bpf-linker.stamp")
}

/// bpf-linker runs and was built for the current nightly.
fn bpf_linker_current() -> anyhow::Result<bool> {
    let (_, _, verbose) = nightly()?;
    let runs = output(Command::new("bpf-linker").arg("--version")).is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    let stamped = fs::read_to_string(stamp_path()).is_ok_and(|s| s == verbose);
    Ok(runs && stamped)
}

fn bpf_linker() -> anyhow::Result<()> {
    if bpf_linker_current()? {
        eprintln!("    bpf-linker {BPF_LINKER_VERSION} already built for this nightly");
        return Ok(());
    }
    let (sysroot, llvm, verbose) = nightly()?;
    let lib_dir = sysroot.join("lib");
    let libllvm = fs::read_dir(&lib_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("libLLVM.so.{llvm}"))))
        .with_context(|| format!("no libLLVM.so.{llvm}* in {}", lib_dir.display()))?;
    let prefix = cache_dir().join(format!("llvm-{llvm}"));
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)?;
    eprintln!("    LLVM {llvm} from {}", libllvm.display());
    step::run(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--locked", "--force", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", &format!("llvm-{llvm}")])
            .env("LLVM_PREFIX", &prefix)
            .env("RUSTFLAGS", format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()))
            .env_remove("RUSTUP_TOOLCHAIN"),
    )?;
    fs::write(stamp_path(), verbose)?;
    Ok(())
}
