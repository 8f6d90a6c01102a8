//! `foobar check --config F`: the config validated and compiled, as `run` and `reload` would.
//!
//! Away from the node (in CI, on a laptop) its interfaces do not exist: unless `--strict`,
//! those problems are warnings and everything else is still checked, as `haproxy -c` and
//! `nsd-checkconf` are used.

use std::{path::Path, process::ExitCode};

use crate::{config, plan::Plan};

pub fn run(path: &Path, strict: bool) -> anyhow::Result<ExitCode> {
    let problems = match Plan::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => e,
    };
    let (missing, others): (Vec<_>, Vec<_>) =
        problems.problems.iter().partition(|p| p.message.starts_with("no interface `"));
    if strict || missing.is_empty() || !others.is_empty() {
        eprintln!("{problems}");
        return Ok(ExitCode::FAILURE);
    }
    for p in &missing {
        eprintln!("warning: {p} (on this machine; --strict makes this an error)");
    }
    // Everything else, as if the interfaces were there.
    let text = std::fs::read_to_string(path)?;
    match config::parse(path, &text, &|_| true).and_then(Plan::compile) {
        Ok(_) => {
            println!("{}: ok, but for the interfaces above", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
