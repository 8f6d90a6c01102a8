//! `foobar run --config F`: the daemon.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{apply, config, dataplane::Dataplane};

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    let mut dp = Dataplane::load()?;
    // Rules first, so an untrusted interface never runs with an empty firewall.
    apply::firewall(&mut dp, &config.firewall)?;
    for (iface, role) in apply::interface_roles(&config) {
        dp.attach(&iface, role, config.daemon.xdp_mode)?;
    }
    if !config.services.is_empty() || config.dns.is_some() || config.replication.is_some() {
        warn!("this build does not yet run services, DNS or the replication monitor from the config");
    }
    info!(interfaces = dp.attachments().len(), "data plane running; SIGINT or SIGTERM stops it");
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
        _ = term.recv() => info!("SIGTERM: shutting down"),
    }
    match dp.counters() {
        Ok(c) => {
            for (counter, value) in c.nonzero() {
                info!(counter = counter.name(), value, "final count");
            }
        }
        Err(e) => warn!(error = %e, "cannot read counters"),
    }
    dp.detach_all()?;
    Ok(())
}
