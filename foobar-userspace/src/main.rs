//! `foobar`: see `foobar --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    foobar::cli::main()
}
