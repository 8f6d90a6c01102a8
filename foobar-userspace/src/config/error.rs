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

impl From<Vec<Problem>> for ConfigError {
    fn from(problems: Vec<Problem>) -> ConfigError {
        ConfigError { problems }
    }
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

/// Where a config came from: its file and text, to resolve byte offsets to lines and keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub text: String,
}

impl Origin {
    /// 1-based line holding byte `at`.
    pub fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    pub fn problem(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { file: self.file.clone(), line: self.line(span.start), key: key.into(), message: message.into() }
    }

    /// The dotted key at byte `at`: the nearest table header above it plus the key on its line.
    pub fn key_at(&self, at: usize) -> String {
        let text = self.text.as_str();
        let at = at.min(text.len());
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = text[line_start..line_end].trim();
        let table = text[..line_start]
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
