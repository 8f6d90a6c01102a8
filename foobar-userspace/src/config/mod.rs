//! The daemon's configuration: TOML in the shape of `examples/lab.toml`.
//!
//! Loading parses into typed structs (`schema`), with unknown keys and bad values rejected by
//! serde (each table's first, all at once: `sections`), then runs whole-config checks (`validate`). Every problem names the file, the line
//! and the key, and a config with any problem is rejected whole, so a bad file never changes
//! anything that runs. A config keeps its [`Origin`], so that what is compiled from it later
//! (`crate::plan`) names lines too.

mod error;
pub mod schema;
mod sections;
mod validate;
pub mod values;

use std::path::Path;

pub use self::{
    error::{ConfigError, Origin, Problem},
    schema::Config,
};

/// Reads and validates the config at `path`, including that its interfaces exist in this
/// network namespace.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            key: "(file)".to_owned(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(path, &text, &interface_exists)
}

/// Parses and validates config `text`, naming `file` in errors; `interface_exists` says
/// whether a network interface of that name is present.
pub fn parse(file: &Path, text: &str, interface_exists: &dyn Fn(&str) -> bool) -> Result<Config, ConfigError> {
    let origin = Origin { file: file.to_path_buf(), text: text.to_owned() };
    let mut config: Config = toml::from_str(text).map_err(|first| {
        let mut errors = sections::type_errors(text);
        if errors.is_empty() {
            errors.push(first);
        }
        let problem = |e: &toml::de::Error| {
            let at = e.span().map_or(0, |s| s.start);
            origin.problem(at..at, origin.key_at(at), e.message().trim())
        };
        ConfigError { problems: errors.iter().map(problem).collect() }
    })?;
    config.origin = origin;
    let problems = validate::check(&config, interface_exists);
    if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
}

/// Whether a network interface of this name exists in the calling thread's namespace.
pub fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: if_nametoindex reads a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

#[cfg(test)]
mod tests;
