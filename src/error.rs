//! The crate's error type.
//!
//! Errors are an opaque struct over a private kind, in the style of the regex
//! crate: callers can print them and ask a few questions, but the variants stay
//! free to change. No error ever carries event content: only file paths, line
//! numbers, rule ids, key names and counts.

use std::fmt;
use std::path::PathBuf;

/// An error from loading rules, building the engine, or reading configuration.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    /// One or more problems in rule files, reported all at once.
    Rules(Vec<RuleProblem>),
    /// An I/O error on a named path.
    Io { path: PathBuf, err: std::io::Error },
    /// The pseudonym key is unusable.
    Key(String),
    /// A configuration problem (the message carries paths and names only).
    #[allow(dead_code)]
    Config(String),
}

/// One problem in a rule file: where it is and what is wrong.
#[derive(Debug, Clone)]
pub struct RuleProblem {
    /// The file the problem is in.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The 1-based column, when known (YAML errors).
    pub column: Option<usize>,
    /// The rule id, when the problem belongs to a rule.
    pub rule: Option<String>,
    /// What is wrong, in a sentence without event content.
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule '{rule}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Error {
    pub(crate) fn rules(problems: Vec<RuleProblem>) -> Error {
        Error {
            kind: ErrorKind::Rules(problems),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::Io {
                path: path.into(),
                err,
            },
        }
    }

    pub(crate) fn key(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Key(msg.into()),
        }
    }

    #[allow(dead_code)]
    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Config(msg.into()),
        }
    }

    /// Whether a file could not be read or written (as opposed to a
    /// configuration, key or rule problem).
    pub(crate) fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io { .. })
    }

    /// The rule-file problems behind this error, if it is a rules error.
    pub fn rule_problems(&self) -> &[RuleProblem] {
        match &self.kind {
            ErrorKind::Rules(p) => p,
            _ => &[],
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Rules(problems) => {
                write!(f, "{} problem(s) in rule files", problems.len())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            ErrorKind::Io { path, err } => write!(f, "{}: {err}", path.display()),
            ErrorKind::Key(msg) => write!(f, "pseudonym key: {msg}"),
            ErrorKind::Config(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
