//! The `foobar` command line: parsing, dispatch, and turning errors into one clear message.

mod backend;
mod check;
mod cleanup;
mod firewall;
mod run;
pub mod status;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    control::protocol::{BackendAction, NodeAction, Response},
    logging::{self, LogFormat},
};

#[derive(Parser)]
#[command(name = "foobar", version, about = "XDP firewall and load balancer with DNS and health checks")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
    /// The running daemon's control socket (its config's `daemon.control_socket`).
    #[arg(long, global = true, default_value = "/run/foobar/control.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (as root): load and attach XDP, serve until SIGINT/SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// On exit, detach XDP and remove pinned state instead of leaving it forwarding for
        /// the next `foobar run` to take over.
        #[arg(long)]
        detach_on_exit: bool,
    },
    /// Remove what a crashed or kept run left behind: pinned XDP links (detaching them) and maps.
    Cleanup {
        /// The config whose `daemon.pin_dir` to clean.
        #[arg(long, short, conflicts_with = "pin_dir")]
        config: Option<PathBuf>,
        /// The pin directory to clean.
        #[arg(long, default_value = "/sys/fs/bpf/foobar")]
        pin_dir: PathBuf,
    },
    /// Validate a config file; prints every problem with file:line and key, exits 1 if any.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Interfaces missing on this machine are errors too (by default, warnings: the
        /// config may be checked away from its node).
        #[arg(long)]
        strict: bool,
    },
    /// Show the running daemon's services, backends, health, firewall rules and counters.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Redraw every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Drain, enable or disable one backend of a service.
    Backend {
        #[arg(value_enum)]
        action: BackendAction,
        service: String,
        backend: String,
    },
    /// Drain this node out of its cluster (withdraw its announced VIPs) or enable it again.
    Node {
        #[arg(value_enum)]
        action: NodeAction,
    },
    /// Make the running daemon re-read its config: validated first; if bad, nothing changes.
    Reload,
    /// Move the database primary: `foobar db switchover db2`.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Block or unblock a source address or prefix, or list the deny list.
    Firewall {
        #[command(subcommand)]
        command: firewall::FirewallCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Planned switchover: the primary goes read-only, SERVER applies its last transaction and
    /// becomes the primary, the old primary replicates from it, and db-write follows.
    Switchover {
        /// The replica to promote (its `name` under [replication]).
        server: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config, detach_on_exit } => run::run(&config, detach_on_exit),
        Command::Cleanup { config, pin_dir } => cleanup::run(config.as_deref(), &pin_dir),
        Command::Check { config, strict } => check::run(&config, strict),
        Command::Status { json, watch } => status::run(&cli.socket, json, watch),
        Command::Backend { action, service, backend } => backend::run(&cli.socket, action, service, backend),
        Command::Firewall { command } => firewall::run(&cli.socket, command),
        Command::Node { action } => {
            crate::control::client::request(&cli.socket, &crate::control::protocol::Request::Node { action })
                .and_then(done)
        }
        Command::Db { command: DbCommand::Switchover { server } } => crate::control::client::request(
            &cli.socket,
            &crate::control::protocol::Request::DbSwitchover { to: server },
        )
        .and_then(done),
        Command::Reload => {
            crate::control::client::request(&cli.socket, &crate::control::protocol::Request::Reload).and_then(done)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("foobar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a request's outcome: its message on success, the daemon's error (exit 1) otherwise.
fn done(response: Response) -> anyhow::Result<ExitCode> {
    match response {
        Response::Done { message } => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Response::Error { message } => {
            eprintln!("foobar: {message}");
            Ok(ExitCode::FAILURE)
        }
        other => unexpected(other),
    }
}

fn unexpected(response: Response) -> anyhow::Result<ExitCode> {
    anyhow::bail!("unexpected answer from foobar: {response:?}")
}
