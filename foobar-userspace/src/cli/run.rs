//! `foobar run --config F`: the daemon.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{config, dataplane::Dataplane};

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
    for iface in &config.daemon.interfaces {
        dp.attach(iface.get_ref(), config.daemon.xdp_mode)?;
    }
    warn!(
        "this build enforces no firewall rules or services yet: it parses, counts and drops malformed packets only"
    );
    info!(
        interfaces = dp.attachments().len(),
        "data plane running; SIGINT or SIGTERM stops it"
    );
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
