//! `cargo xtask package`: the Debian package, built with dpkg-deb from a staged tree (no
//! packaging tool to install): the release `foobar` with its eBPF object embedded, the
//! systemd unit, `/etc/foobar/foobar.toml` as a conffile, man pages, shell completions and
//! the examples (lab, cluster, monitoring rules and dashboard).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;
use clap::CommandFactory;

use crate::{
    build_ebpf,
    step::{self, timed, workspace_root},
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds `target/foobar_<version>_amd64.deb` and returns its path.
pub fn run() -> anyhow::Result<PathBuf> {
    let object = build_ebpf::run()?;
    let root = workspace_root();
    timed("cargo build --release --bin foobar", || {
        step::run(
            Command::new("cargo")
                .current_dir(&root)
                .args(["build", "--release", "--bin", "foobar"])
                .env("FOOBAR_REQUIRE_BPF", "1")
                .env("FOOBAR_BPF_OBJECT", &object),
        )
    })?;
    let stage = root.join("target/package/foobar");
    let _ = fs::remove_dir_all(&stage);
    timed("stage the package tree", || stage_tree(&root, &stage))?;
    let deb = root.join(format!("target/foobar_{VERSION}_amd64.deb"));
    timed("dpkg-deb --build", || {
        step::run(Command::new("dpkg-deb").args(["--build", "--root-owner-group"]).arg(&stage).arg(&deb))
    })?;
    eprintln!("==> {}", deb.display());
    Ok(deb)
}

fn stage_tree(root: &Path, stage: &Path) -> anyhow::Result<()> {
    let put = |to: &str, from: &Path, mode: u32| -> anyhow::Result<()> {
        let dest = stage.join(to);
        fs::create_dir_all(dest.parent().context("a file path")?)?;
        fs::copy(from, &dest).with_context(|| format!("copy {} to {}", from.display(), dest.display()))?;
        fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(())
    };
    let examples = root.join("examples");
    put("usr/sbin/foobar", &root.join("target/release/foobar"), 0o755)?;
    put("lib/systemd/system/foobar.service", &examples.join("systemd/foobar.service"), 0o644)?;
    put("etc/foobar/foobar.toml", &examples.join("foobar.toml"), 0o644)?;
    for (to, from) in [
        ("lab.toml", "lab.toml"),
        ("cluster.toml", "cluster.toml"),
        ("cluster-nat.toml", "cluster-nat.toml"),
        ("pair/foobar.toml", "pair/foobar.toml"),
        ("pair/keepalived.conf", "pair/keepalived.conf"),
        ("monitoring/foobar.rules.yml", "monitoring/foobar.rules.yml"),
        ("monitoring/foobar.rules.test.yml", "monitoring/foobar.rules.test.yml"),
        ("monitoring/foobar.dashboard.json", "monitoring/foobar.dashboard.json"),
    ] {
        put(&format!("usr/share/doc/foobar/examples/{to}"), &examples.join(from), 0o644)?;
    }
    man_pages(&stage.join("usr/share/man/man8"))?;
    completions(stage)?;
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    fs::write(debian.join("control"), control())?;
    fs::write(debian.join("conffiles"), "/etc/foobar/foobar.toml\n")?;
    Ok(())
}

/// `foobar.8` and one page per subcommand (`foobar-run.8`, …).
fn man_pages(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let cli = foobar::cli::Cli::command();
    let mut pages = vec![(String::from("foobar"), cli.clone())];
    for sub in cli.get_subcommands() {
        pages.push((format!("foobar-{}", sub.get_name()), sub.clone()));
    }
    for (name, command) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).title(name.clone()).section("8").render(&mut page)?;
        fs::write(dir.join(format!("{name}.8")), page)?;
    }
    Ok(())
}

fn completions(stage: &Path) -> anyhow::Result<()> {
    use clap_complete::Shell;
    for (shell, to) in [
        (Shell::Bash, "usr/share/bash-completion/completions/foobar"),
        (Shell::Zsh, "usr/share/zsh/vendor-completions/_foobar"),
        (Shell::Fish, "usr/share/fish/vendor_completions.d/foobar.fish"),
    ] {
        let dest = stage.join(to);
        fs::create_dir_all(dest.parent().context("a file path")?)?;
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut foobar::cli::Cli::command(), "foobar", &mut out);
        fs::write(dest, out)?;
    }
    Ok(())
}

fn control() -> String {
    format!(
        "Package: foobar\n\
         Version: {VERSION}\n\
         Architecture: amd64\n\
         Maintainer: foobar developers <foobar@example.org>\n\
         Depends: iproute2\n\
         Recommends: bird2, keepalived, prometheus\n\
         Section: net\n\
         Priority: optional\n\
         Description: XDP firewall and load balancer with DNS, health checks and a replication monitor\n \
         foobar filters and balances packets in the kernel with XDP (SYN proxy, NAT or DSR,\n \
         Maglev), answers DNS for the site that follows backend and database health, checks\n \
         backends and watches MariaDB replication. Run it with systemctl start foobar after\n \
         editing /etc/foobar/foobar.toml.\n"
    )
}
