//! `foobar check --config F`.

use std::{path::Path, process::ExitCode};

use crate::config;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    match config::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
