//! Secrets in configuration: SASL passwords, vendor API tokens.
//!
//! A secret is written in the config as `{ env: VAR }` or `{ file: PATH }`
//! (a literal `{ value: ... }` is accepted for local testing). Its `Debug`
//! output never shows the value, so a secret cannot reach scrubs' own logs
//! through a `{:?}` of a config struct.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Where a secret comes from.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file; trailing newlines are not part of the secret.
    File(PathBuf),
    /// The value itself (discouraged outside tests).
    Value(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "Secret(env {v})"),
            SecretSource::File(p) => write!(f, "Secret(file {})", p.display()),
            SecretSource::Value(_) => f.write_str("Secret(inline, redacted)"),
        }
    }
}

impl SecretSource {
    /// Reads the secret. The error names the variable or file, never a value.
    pub fn resolve(&self) -> Result<Secret, String> {
        let v = match self {
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set or not UTF-8"))?,
            SecretSource::File(p) => {
                let mut s = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))?;
                while s.ends_with('\n') || s.ends_with('\r') {
                    s.pop();
                }
                s
            }
            SecretSource::Value(v) => v.clone(),
        };
        Ok(Secret(v))
    }
}

/// A resolved secret. Only [`Secret::expose`] reveals it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let s: SecretSource = serde_yaml::from_str("value: hunter2-token").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let r = s.resolve().unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(r.expose(), "hunter2-token");
        let e: SecretSource = serde_yaml::from_str("env: SCRUBS_TEST_UNSET_VAR_X").unwrap();
        assert!(e.resolve().unwrap_err().contains("SCRUBS_TEST_UNSET_VAR_X"));
    }
}
