//! `foobar cleanup`: removes pinned links (which detaches XDP) and maps left by a run that
//! crashed or was told to keep forwarding, and the addresses foobar added (by their mark).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::{config, dataplane::Pins};

pub fn run(config_file: Option<&Path>, pin_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir: PathBuf = match config_file {
        Some(f) => match config::load(f) {
            Ok(c) => c.daemon.pin_dir,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => pin_dir.to_path_buf(),
    };
    // Never from under a running foobar: it would lose its data plane.
    if dir.exists() {
        let pins = Pins { dir: dir.clone(), private: false };
        let _lock = pins.lock()?;
    }
    let removed = Pins::remove_all(&dir)?;
    println!("removed {removed} pins from {}", dir.display());
    for a in crate::addresses::marked() {
        match crate::netlink::remove(&a) {
            Ok(()) => println!("removed the address {} foobar added", a.ip),
            Err(e) => eprintln!("foobar: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
