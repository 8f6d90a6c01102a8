//! Log output: human-readable on a terminal, one JSON object per line for log collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level. Under
/// systemd (stderr is the journal, `JOURNAL_STREAM`), human lines carry no timestamp of
/// their own: the journal stamps every line already.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match format {
        LogFormat::Human if journal => builder.without_time().try_init(),
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
