//! The `foobar` command line: parsing, dispatch, and turning errors into one clear message.

mod check;
mod run;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::logging::{self, LogFormat};

#[derive(Parser)]
#[command(name = "foobar", version, about = "XDP firewall and load balancer with DNS and health checks")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (as root): load and attach XDP, serve until SIGINT/SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; prints every problem with file:line and key, exits 1 if any.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => check::run(&config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("foobar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
