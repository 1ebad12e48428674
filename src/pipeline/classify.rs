//! Classify: which records are audit-grade.
//!
//! The audit log records access to patient data (§164.312(b)); it is the one
//! stream that must stay unredacted, so the selector is explicit and narrow:
//! a record is audit-grade when one of the configured fields has one of the
//! configured values, or when a log line contains one of the configured
//! literals.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Which records are audit-grade.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSelector {
    /// Field name → accepted values. Field names are matched after
    /// normalisation (`event.category`, `eventCategory` and `EVENT_CATEGORY`
    /// are the same), against OTLP log attributes and the keys of JSON or
    /// `key=value` log lines. Example: `{audit: ["true"], event.category:
    /// [phi_access]}`.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    /// Literal strings: a log line containing one of them is audit-grade.
    #[serde(default)]
    pub contains: Vec<String>,
    /// The field whose value is the Kafka message key (for per-subject
    /// ordering, e.g. `patient_id`). Without it, or when a record lacks the
    /// field, the stream name is the key.
    #[serde(default)]
    pub key_field: Option<String>,
}

/// The selector, compiled.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    fields: Vec<(String, Vec<String>)>,
    contains: Vec<String>,
    key_field: Option<String>,
    /// Raw field names, for a cheap substring test before parsing a line.
    raw_names: Vec<String>,
}

/// A field name as the selector compares it: ASCII letters and digits,
/// lower-cased.
pub(crate) fn norm(k: &str) -> String {
    k.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

impl Selector {
    pub fn new(cfg: &AuditSelector) -> Selector {
        let mut raw_names: Vec<String> = cfg.fields.keys().cloned().collect();
        if let Some(k) = &cfg.key_field {
            raw_names.push(k.clone());
        }
        // A nested JSON key is written as its last segment in the line.
        for n in raw_names.clone() {
            if let Some((_, last)) = n.rsplit_once('.') {
                raw_names.push(last.to_string());
            }
        }
        Selector {
            fields: cfg
                .fields
                .iter()
                .map(|(k, v)| (norm(k), v.clone()))
                .collect(),
            contains: cfg.contains.clone(),
            key_field: cfg.key_field.as_deref().map(norm),
            raw_names,
        }
    }

    /// Whether the selector can select anything at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.contains.is_empty()
    }

    /// Classifies a record given a way to look up a field by normalised name.
    /// Returns `Some(key)` for an audit-grade record (the key may be empty).
    pub fn select_fields(&self, get: &dyn Fn(&str) -> Option<String>) -> Option<Option<String>> {
        let hit = self
            .fields
            .iter()
            .any(|(k, vals)| get(k).is_some_and(|v| vals.contains(&v)));
        hit.then(|| self.key_field.as_deref().and_then(get))
    }

    /// Classifies a log line. JSON and `key=value` lines are parsed only when
    /// the line mentions one of the selector's field names.
    pub fn select_line(&self, line: &[u8]) -> Option<Option<String>> {
        let literal = self
            .contains
            .iter()
            .any(|c| memchr::memmem::find(line, c.as_bytes()).is_some());
        let mentions = self
            .raw_names
            .iter()
            .any(|n| memchr::memmem::find(line, n.as_bytes()).is_some());
        if !literal && !mentions {
            return None;
        }
        let fields = if mentions {
            line_fields(line)
        } else {
            Vec::new()
        };
        let get = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        if literal {
            return Some(self.key_field.as_deref().and_then(get));
        }
        self.select_fields(&get)
    }
}

/// The scalar fields of a JSON object line (nested keys joined, normalised),
/// or of `key=value` pairs.
fn line_fields(line: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let trimmed = line.trim_ascii_start();
    if trimmed.first() == Some(&b'{') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(trimmed) {
            flatten("", &v, &mut out, 0);
            return out;
        }
    }
    let text = String::from_utf8_lossy(line);
    for part in text.split_ascii_whitespace() {
        if let Some((k, v)) = part.split_once('=') {
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            out.push((norm(k), v.to_string()));
        }
    }
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 16 {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}{}", norm(k)), v, out, depth + 1);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Array(_) => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> Selector {
        let cfg: AuditSelector = serde_yaml::from_str(
            "fields: {audit: ['true'], event.category: [phi_access]}\ncontains: ['AUDIT ']\nkey_field: patient_id\n",
        )
        .unwrap();
        Selector::new(&cfg)
    }

    #[test]
    fn selects_json_logfmt_and_literals() {
        let s = selector();
        assert_eq!(
            s.select_line(br#"{"event":{"category":"phi_access"},"patient_id":"p-9"}"#),
            Some(Some("p-9".into()))
        );
        assert_eq!(
            s.select_line(b"level=info audit=true user=usr_1"),
            Some(None)
        );
        assert_eq!(
            s.select_line(b"AUDIT chart viewed patient_id=p-2"),
            Some(Some("p-2".into()))
        );
        assert_eq!(s.select_line(b"level=info audit=false"), None);
        assert_eq!(s.select_line(b"GET /health 200"), None);
    }
}
