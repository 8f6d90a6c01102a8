//! Config problems, each pinned to a file, a line and a key.

use std::{fmt, ops::Range, path::PathBuf};

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    /// Dotted key path, e.g. `service[0].backend[1].address`, or the table for whole-table problems.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.key, self.message)
    }
}

/// Every problem found in a config; it is rejected as a whole.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Resolves byte offsets in a config's text to lines and keys.
pub struct Source<'a> {
    pub file: &'a std::path::Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line holding byte `at`.
    pub fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    pub fn problem(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { file: self.file.to_path_buf(), line: self.line(span.start), key: key.into(), message: message.into() }
    }

    /// The dotted key at byte `at`: the nearest table header above it plus the key on its line.
    pub fn key_at(&self, at: usize) -> String {
        let at = at.min(self.text.len());
        let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[at..].find('\n').map_or(self.text.len(), |i| at + i);
        let line = self.text[line_start..line_end].trim();
        let table = self.text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        let key = if line.starts_with('[') { None } else { line.split_once('=').map(|(k, _)| k.trim().to_owned()) };
        match (table, key) {
            (Some(t), Some(k)) => format!("{t}.{k}"),
            (Some(t), None) => t,
            (None, Some(k)) => k,
            (None, None) => "(top level)".to_owned(),
        }
    }
}
