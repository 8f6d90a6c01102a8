//! `foobar run --config F`: the daemon, stopped by SIGINT or SIGTERM, reloaded by SIGHUP.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

use crate::{daemon::Daemon, plan::Plan};

pub fn run(path: &Path, detach_on_exit: bool) -> anyhow::Result<ExitCode> {
    let plan = match Plan::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Loaded and attached on this one thread, then every capability serving does not use is
    // dropped before the runtime starts its threads (which inherit what is left).
    let daemon = Daemon::start(plan)?.watching(path.to_path_buf()).detach_on_exit(detach_on_exit);
    crate::privileges::drop_to_serving()?;
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
        let hangups = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
        info!("SIGINT or SIGTERM stops foobar; SIGHUP or `foobar reload` reloads its config");
        daemon
            .serve(
                async {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
                        _ = term.recv() => info!("SIGTERM: shutting down"),
                    }
                },
                Some(hangups),
            )
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
