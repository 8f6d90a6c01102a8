//! `foobar backend drain|enable|disable SERVICE BACKEND`.

use std::{path::Path, process::ExitCode};

use crate::control::{
    client,
    protocol::{BackendAction, Request},
};

pub fn run(socket: &Path, action: BackendAction, service: String, backend: String) -> anyhow::Result<ExitCode> {
    super::done(client::request(socket, &Request::Backend { service, backend, action })?)
}
