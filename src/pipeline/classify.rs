//! Classify: which records are audit-grade.
//!
//! The audit log records access to patient data (§164.312(b)); it is the one
//! stream that must stay unredacted, so the selector is explicit and narrow:
//! a record is audit-grade when one of the configured fields has one of the
//! configured values, or when a log line contains one of the configured
//! literals.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::keys;

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
    /// Normalised field name → accepted values.
    fields: Vec<(String, Vec<String>)>,
    contains: Vec<String>,
    /// The normalised key field.
    key_field: Option<String>,
    /// Normalised field names (and the last segment of dotted ones), for a
    /// cheap test before parsing a line: a line that mentions a field under
    /// any spelling holds the name in its normalised bytes.
    mention_names: Vec<String>,
}

impl AuditSelector {
    /// Configuration problems: a field name with no normal form (empty, or
    /// longer than [`keys::MAX_KEY`] after normalisation) could never match,
    /// as the engine refuses such a key in a rule.
    pub fn validate(&self) -> Vec<String> {
        let names = self.fields.keys().map(|k| ("fields", k));
        let key_field = self.key_field.iter().map(|k| ("key_field", k));
        names
            .chain(key_field)
            .filter(|(_, k)| keys::normalised(k).is_none())
            .map(|(what, k)| {
                format!(
                    "{what}: '{k}' is empty or longer than {} characters after normalisation",
                    keys::MAX_KEY
                )
            })
            .collect()
    }
}

impl Selector {
    /// Compiles a selector. Field names are normalised with the engine's rule
    /// ([`keys::normalise_key`]); a name without a normal form (refused by
    /// [`AuditSelector::validate`]) matches nothing.
    pub fn new(cfg: &AuditSelector) -> Selector {
        let key_field = cfg.key_field.as_deref().and_then(keys::normalised);
        let mut mention_names = Vec::new();
        for raw in cfg.fields.keys().chain(&cfg.key_field) {
            mention_names.extend(keys::normalised(raw));
            // A nested JSON key is written as its last segment in the line.
            if let Some((_, last)) = raw.rsplit_once('.') {
                mention_names.extend(keys::normalised(last));
            }
        }
        Selector {
            fields: cfg
                .fields
                .iter()
                .filter_map(|(k, v)| Some((keys::normalised(k)?, v.clone())))
                .collect(),
            contains: cfg.contains.clone(),
            key_field,
            mention_names,
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
        let mentions = !self.mention_names.is_empty()
            && with_folded(line, |folded| {
                self.mention_names
                    .iter()
                    .any(|n| memchr::memmem::find(folded, n.as_bytes()).is_some())
            });
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

/// The line's ASCII letters and digits, lower-cased: a key spelt any way
/// the engine treats as the same (`patient_id`, `patientId`) appears in it
/// as its normal form, so a name not found here is in no key of the line.
/// The buffer is kept per thread: this runs for every line when a selector
/// is set, and a line is not worth an allocation.
fn with_folded<T>(line: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    thread_local! {
        static FOLDED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    FOLDED.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend(
            line.iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_lowercase),
        );
        f(buf)
    })
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
            if let Some(k) = keys::normalised(k) {
                out.push((k, v.to_string()));
            }
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
                // The path's segments joined, normalised as one key; a path
                // longer than a key can be is matched by nothing, here as in
                // the engine.
                if let Some(path) = keys::normalised(&format!("{prefix}{k}")) {
                    flatten(&path, v, out, depth + 1);
                }
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

    /// The selector's field names and a line's keys are compared as the
    /// engine compares keys: any spelling of `patient_id` is the key field,
    /// including spellings that do not contain the configured name as
    /// written (`patientId`).
    #[test]
    fn selector_matches_keys_as_the_engine_normalises_them() {
        let s = selector();
        for key in ["patient_id", "Patient-ID", "patientId", "PATIENT.ID"] {
            let line = format!("AUDIT viewed {key}=p-7");
            assert_eq!(
                s.select_line(line.as_bytes()),
                Some(Some("p-7".into())),
                "{key}"
            );
            let line = format!("Audit=TRUE {key}=p-8");
            assert_eq!(
                s.select_line(line.as_bytes()),
                None,
                "values are compared as written: {key}"
            );
            let line = format!("AUDIT=true {key}=p-8");
            assert_eq!(
                s.select_line(line.as_bytes()),
                Some(Some("p-8".into())),
                "{key}"
            );
            let line = format!(r#"{{"EVENT_CATEGORY":"phi_access","{key}":"p-9"}}"#);
            assert_eq!(
                s.select_line(line.as_bytes()),
                Some(Some("p-9".into())),
                "{key}"
            );
        }
    }

    #[test]
    fn field_names_without_a_normal_form_are_refused() {
        let cfg: AuditSelector = serde_yaml::from_str(&format!(
            "fields: {{'__': ['x'], ok: ['y']}}\nkey_field: {}\n",
            "k".repeat(keys::MAX_KEY + 1)
        ))
        .unwrap();
        let problems = cfg.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("fields: '__'"), "{problems:?}");
        assert!(problems[1].starts_with("key_field: "), "{problems:?}");
        let s = Selector::new(&cfg);
        assert_eq!(s.select_line(b"__=x ok=n"), None);
        assert_eq!(s.select_line(b"ok=y"), Some(None));
    }
}
