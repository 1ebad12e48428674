//! Secrets in configuration: SASL passwords, vendor API tokens.
//!
//! A secret is written in the config as `{ env: VAR }` or `{ file: PATH }`
//! (a literal `{ value: ... }` is accepted for local testing). Its `Debug`
//! output never shows the value, so a secret cannot reach scrubs' own logs
//! through a `{:?}` of a config struct.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Where a secret comes from: exactly one of `env`, `file` or `value`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable.
    #[serde(default)]
    pub env: Option<String>,
    /// A file; trailing newlines are not part of the secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The value itself (discouraged outside tests).
    #[serde(default)]
    pub value: Option<String>,
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, &self.file, &self.value) {
            (Some(v), _, _) => write!(f, "Secret(env {v})"),
            (_, Some(p), _) => write!(f, "Secret(file {})", p.display()),
            (_, _, Some(_)) => f.write_str("Secret(inline, redacted)"),
            _ => f.write_str("Secret(unset)"),
        }
    }
}

impl SecretSource {
    /// A problem with the declaration, if it does not name exactly one source.
    pub fn check(&self) -> Option<String> {
        let n = [
            self.env.is_some(),
            self.file.is_some(),
            self.value.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        (n != 1).then(|| "a secret needs exactly one of env, file or value".to_string())
    }

    /// Reads the secret. The error names the variable or file, never a value.
    pub fn resolve(&self) -> Result<Secret, String> {
        if let Some(problem) = self.check() {
            return Err(problem);
        }
        let v = if let Some(var) = &self.env {
            std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set or not UTF-8"))?
        } else if let Some(p) = &self.file {
            let mut s = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))?;
            while s.ends_with('\n') || s.ends_with('\r') {
                s.pop();
            }
            s
        } else {
            self.value.clone().unwrap_or_default()
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
