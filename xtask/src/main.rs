//! Developer tasks for foobar, run as `cargo xtask <task>`.
//!
//! # Layout
//! - `setup`: idempotent bootstrap of everything a fresh machine lacks.
//! - `build_ebpf`: compiles the XDP programs to the object the daemon embeds.
//! - `test`: setup, build-ebpf, then the whole test suite.
//! - `lab`: the seeds' stack in namespaces with the foobar daemon in front; `demo`: its tour, run by itself;
//!   `cluster_lab`: `lab --nodes N`, foobar nodes behind a BIRD router's ECMP.
//! - `bench`: benchmarks with ratios to a baseline from the same run.
//! - `package`: the Debian package (binary, systemd unit, config, man pages, completions).
//! - `step`: running external commands and timing the steps of a task.

mod bench;
mod build_ebpf;
mod cluster_lab;
mod demo;
mod lab;
mod package;
mod setup;
mod step;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "foobar developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing foobar needs (rust-src, bpf-linker, Debian packages).
    Setup,
    /// Build the eBPF object (release, with BTF) where the foobar build embeds it.
    BuildEbpf,
    /// Run a benchmark (as root); it prints ratios to a baseline measured in the same run.
    Bench {
        #[arg(value_enum)]
        which: bench::Bench,
    },
    /// Bring up the seeds' stack in network namespaces with foobar in front (as root).
    Lab {
        #[command(subcommand)]
        action: Option<LabAction>,
        /// Run the tour by itself (bounded traffic, a few seconds), print what happened, tear down.
        #[arg(long)]
        demo: bool,
        /// The cluster lab instead: this many foobar nodes (2 or 3) behind a router's ECMP.
        #[arg(long)]
        nodes: Option<usize>,
        /// With --nodes: NAT mode with flow sync between the nodes (examples/cluster-nat.toml).
        #[arg(long, requires = "nodes")]
        nat: bool,
    },
    /// Build the Debian package target/foobar_<version>_amd64.deb (release binary, unit, config, man pages).
    Package,
    /// Setup if needed, build the eBPF object, then run every test.
    Test {
        /// Extra arguments for the test binaries (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Stop a running lab and remove its namespaces.
    Down,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::BuildEbpf => build_ebpf::run().map(|_| ()),
        Task::Test { args } => test::run(&args),
        Task::Bench { which } => bench::run(which),
        Task::Package => package::run().map(|_| ()),
        Task::Lab { action: None, demo, nodes: Some(n), nat } => cluster_lab::up(n, demo, nat),
        Task::Lab { action: None, demo, nodes: None, .. } => lab::up(demo),
        Task::Lab { action: Some(LabAction::Down), .. } => lab::down(),
    }
}
