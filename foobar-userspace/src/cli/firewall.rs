//! `foobar firewall block|unblock CIDR` and `foobar firewall list`.

use std::{path::Path, process::ExitCode};

use clap::Subcommand;

use crate::control::{
    client,
    protocol::{Request, Response},
};

#[derive(Subcommand)]
pub enum FirewallCommand {
    /// Drop everything from CIDR (e.g. 203.0.113.7 or 203.0.113.0/24), at once, on every untrusted interface.
    Block { cidr: String },
    /// Take CIDR off the deny list.
    Unblock { cidr: String },
    /// Print the deny list, each prefix with where it came from (config or operator).
    List,
}

pub fn run(socket: &Path, command: FirewallCommand) -> anyhow::Result<ExitCode> {
    let request = match command {
        FirewallCommand::Block { cidr } => Request::FirewallBlock { cidr },
        FirewallCommand::Unblock { cidr } => Request::FirewallUnblock { cidr },
        FirewallCommand::List => Request::FirewallList,
    };
    match client::request(socket, &request)? {
        Response::Firewall { denied } => {
            for entry in denied {
                println!("{:<43} {}", entry.cidr, entry.origin);
            }
            Ok(ExitCode::SUCCESS)
        }
        other => super::done(other),
    }
}
