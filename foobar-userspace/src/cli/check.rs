//! `foobar check --config F`: the config validated and compiled, as `run` and `reload` would.

use std::{path::Path, process::ExitCode};

use crate::plan::Plan;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    match Plan::load(path) {
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
