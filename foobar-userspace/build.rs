//! Embeds the eBPF object built by `cargo xtask build-ebpf`, but only a fresh one.
//!
//! The object is embedded when it exists and is newer than every source it is built from.
//! Otherwise the crate still builds on stable (so `cargo build` / `cargo test` work without
//! nightly), the build prints which command to run, and at run time loading the data plane
//! fails with the same instruction. Setting `FOOBAR_REQUIRE_BPF=1` (as `cargo xtask test`
//! and CI do) turns a missing or stale object into a build error instead.

use std::{
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

const FIX: &str = "run `cargo xtask build-ebpf` (after `cargo xtask setup` on a new machine)";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(foobar_bpf)");
    println!("cargo:rerun-if-env-changed=FOOBAR_BPF_OBJECT");
    println!("cargo:rerun-if-env-changed=FOOBAR_REQUIRE_BPF");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let object = std::env::var_os("FOOBAR_BPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bpf/foobar.bpf.o"));
    let sources = [
        root.join("foobar-ebpf/src"),
        root.join("foobar-ebpf/Cargo.toml"),
        root.join("foobar-common/src"),
        root.join("foobar-common/Cargo.toml"),
    ];
    println!("cargo:rerun-if-changed={}", object.display());
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }

    let problem = match mtime(&object) {
        None => Some(format!("eBPF object {} is missing", object.display())),
        Some(built) => {
            let newest = sources.iter().filter_map(|s| newest_mtime(s)).max();
            match newest {
                Some(src) if src > built => Some(format!("eBPF object {} is older than its sources", object.display())),
                _ => None,
            }
        }
    };
    match problem {
        None => {
            println!("cargo:rustc-cfg=foobar_bpf");
            println!("cargo:rustc-env=FOOBAR_BPF_OBJECT={}", object.display());
        }
        Some(problem) if std::env::var_os("FOOBAR_REQUIRE_BPF").is_some_and(|v| v == "1") => {
            panic!("{problem}: {FIX}");
        }
        Some(problem) => {
            println!("cargo:warning={problem}; building foobar without its data plane: {FIX}, then rebuild");
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let own = mtime(path);
    let children = fs::read_dir(path).into_iter().flatten().flatten().filter_map(|e| newest_mtime(&e.path()));
    own.into_iter().chain(children).max()
}
