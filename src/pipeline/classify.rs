//! Classify: which records are audit-grade.
//!
//! The audit log records access to patient data (§164.312(b)); it is the one
//! stream that must stay unredacted, so the selector is explicit and narrow:
//! a record is audit-grade when one of the configured fields has one of the
//! configured values, or when a log line contains one of the configured
//! literals.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;

use crate::keys::{self, normalise_key, MAX_KEY};
use crate::redact::{scan_pairs, Pair};

/// Which records are audit-grade.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSelector {
    /// Field name → accepted values. Field names are matched after
    /// normalisation (`event.category`, `eventCategory` and `EVENT_CATEGORY`
    /// are the same, as they are to the redaction engine), against OTLP log
    /// attributes, the keys of JSON lines, and the pairs the engine reads in
    /// text lines (`key=value`, `key: value`, `'key': 'value'`; a quoted
    /// value is one value, an unquoted one is its first word). Example:
    /// `{audit: ["true"], event.category: [phi_access]}`.
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
    /// Every normalised name a line's pairs are read for: the fields and the
    /// key field.
    names: Vec<String>,
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
        let fields: Vec<(String, Vec<String>)> = cfg
            .fields
            .iter()
            .filter_map(|(k, v)| Some((keys::normalised(k)?, v.clone())))
            .collect();
        let names = fields
            .iter()
            .map(|(k, _)| k.clone())
            .chain(key_field.clone())
            .collect();
        Selector {
            fields,
            contains: cfg.contains.clone(),
            key_field,
            names,
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

    /// Classifies an OTLP log record: a field is looked up in the record's
    /// own attributes first, then in its resource's (`resource_keys`, the
    /// resource's attributes normalised once per resource with
    /// [`keys::normalised_keys`]), so a record can override its resource.
    pub(crate) fn select_log_record(
        &self,
        attrs: &[KeyValue],
        resource_keys: &[(String, &KeyValue)],
    ) -> Option<Option<String>> {
        let get = |k: &str| {
            keys::attr_lookup(attrs, k).or_else(|| keys::attr_lookup_normalised(resource_keys, k))
        };
        self.select_fields(&get)
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
            line_fields(line, &self.names)
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
        buf.extend(keys::folded(line));
        f(buf)
    })
}

/// The scalar fields of a JSON object line (nested keys joined, normalised),
/// or the pairs of a text line whose keys are among `names`.
fn line_fields(line: &[u8], names: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let trimmed = line.trim_ascii_start();
    if trimmed.first() == Some(&b'{') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(trimmed) {
            flatten("", &v, &mut out, 0);
            return out;
        }
    }
    text_fields(line, names, &mut out);
    out
}

/// The `key=value`, `key: value` and quoted-key pairs of a text line whose
/// keys are among `names`, read by the engine's pair scanner
/// ([`scan_pairs`]), so that the classifier and the redactor agree on which
/// text is a key and which is its value: `msg="x audit=true" audit=false` has
/// one `audit` field, `false`, and `patient_id="p 7"` has the value `p 7`.
fn text_fields(line: &[u8], names: &[String], out: &mut Vec<(String, String)>) {
    // The scanner reports only pairs whose lookup names a rule. Every key is
    // named here (an index into `names`, or OTHER), so that a quoted value
    // under any key is seen as one value and skipped whole, not read for
    // pairs inside it.
    const OTHER: u32 = u32::MAX;
    let lookup = |raw: &[u8]| {
        let mut buf = [0u8; MAX_KEY];
        let n = normalise_key(raw, &mut buf)?;
        let i = names.iter().position(|k| k.as_bytes() == &buf[..n]);
        Some(i.map_or(OTHER, |i| i as u32))
    };
    scan_pairs(line, false, &lookup, &mut |p: Pair| {
        let Some(name) = p.rule.and_then(|i| names.get(i as usize)) else {
            // Another key's value. A quoted one is taken, so its text is not
            // read for pairs; a bare one is left to the scanner, which reads
            // on inside it (`ERROR: audit=true`), as the engine's does for a
            // key that names no rule.
            return !p.bare;
        };
        let mut value = &line[p.start..p.end];
        if p.bare {
            // A bare value's end is the scanner's guess, which runs over
            // words so that a name is not cut in half when redacting. The
            // selector compares whole values, and an unquoted logfmt value
            // holds no white space, so the value is its first word.
            let end = value
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(value.len());
            value = &value[..end];
        }
        out.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
        true
    });
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

    /// The classifier split text lines on white space, so a quoted value
    /// with a space in it was read in pieces, and `key=value` text inside a
    /// quoted message was read as a field of the line; the engine's pair
    /// scanner reads a quoted value as one value.
    #[test]
    fn classify_reads_quoted_logfmt_values_like_the_engine() {
        let s = selector();
        // A field named inside a quoted message is not a field of the line.
        assert_eq!(
            s.select_line(br#"msg="user typed audit=true" audit=false"#),
            None
        );
        assert_eq!(
            s.select_line(br#"msg='audit=true patient_id=p-0' level=info"#),
            None
        );
        // A quoted value is read whole, spaces and all.
        assert_eq!(
            s.select_line(br#"msg="a b" audit=true patient_id="p 7""#),
            Some(Some("p 7".into()))
        );
        assert_eq!(
            s.select_line(br#"audit="true" msg="chart viewed" patient_id=p-1 by=dr_2"#),
            Some(Some("p-1".into()))
        );
        // A bare value is its first word, and a bare value under another key
        // hides no field.
        assert_eq!(
            s.select_line(b"ERROR: audit=true patient_id=p-3 chart opened"),
            Some(Some("p-3".into()))
        );
        // The engine's other pair forms are fields too.
        assert_eq!(
            s.select_line(b"audit: true patient_id: p-4"),
            Some(Some("p-4".into()))
        );
        assert_eq!(
            s.select_line(b"{'audit': 'true', 'patient_id': 'p-5'}"),
            Some(Some("p-5".into()))
        );
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
