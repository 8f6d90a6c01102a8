//! `cargo xtask bench <what>`: benchmarks that print ratios against a baseline measured in the
//! same run. Each is a release binary of the tests crate, built after the eBPF object so it
//! embeds it.

use std::process::Command;

use anyhow::bail;

use crate::{
    build_ebpf, setup,
    step::{self, timed, workspace_root},
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Bench {
    /// ns per packet of each XDP path against an empty XDP program (BPF_PROG_TEST_RUN).
    Dataplane,
    /// queries/s of foobar's DNS against NSD serving the same zone (dnsperf).
    Dns,
    /// wrk through direct / HAProxy / foobar nat / foobar dsr, and a SYN flood against foobar
    /// and nftables, in the lab.
    Lab,
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    if !foobar_tests::gate::is_root() {
        bail!("benchmarks load BPF programs and build namespaces: run as root (`sudo -E cargo xtask bench ...`)");
    }
    if !setup::is_complete() {
        setup::run()?;
    }
    let object = build_ebpf::run()?;
    let bin = match which {
        Bench::Dataplane => "bench-dataplane",
        Bench::Dns => "bench-dns",
        Bench::Lab => "bench-lab",
    };
    timed(&format!("benchmark {bin}"), || {
        step::run(
            Command::new("cargo")
                .current_dir(workspace_root())
                .args(["run", "--release", "--quiet", "--package", "foobar-tests", "--bin", bin])
                .env("FOOBAR_REQUIRE_BPF", "1")
                .env("FOOBAR_BPF_OBJECT", &object),
        )
    })
}
