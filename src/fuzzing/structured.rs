//! The checks of the `structured` fuzz target
//! (`fuzz/fuzz_targets/structured.rs`): what the README promises for JSON
//! objects, logfmt pairs and query strings after redaction. They live here
//! so that `tests/fuzz_regressions.rs` checks each kept input exactly as the
//! target checked it when it crashed, not with a copy that can drift.

use std::sync::OnceLock;

use serde_json::Value;

use crate::{Engine, Scratch};

/// Keys the generators pick from: keys that name built-in rules, in several
/// spellings, and ordinary keys that name none. All are plain ASCII words,
/// so a key is written the same way in JSON, logfmt and a query string.
pub const KEYS: &[&str] = &[
    "ssn",
    "patientName",
    "patient_name",
    "firstName",
    "dob",
    "dateOfBirth",
    "mrn",
    "email",
    "phone",
    "address",
    "zip",
    "memberId",
    "accountNumber",
    "diagnosis",
    "note",
    "biometricTemplate",
    "photoUrl",
    "ip",
    "level",
    "msg",
    "ts",
    "status",
    "duration_ms",
    "trace_id",
    "user",
    "path",
    "visit_id",
    "q",
    "page",
];

/// A key and a value as a logfmt pair: bare when the value is one simple
/// token, otherwise quoted with `"` and `\` escaped and line breaks written
/// as `\n`, the way logfmt libraries write them.
pub fn logfmt_pair(key: &str, value: &str) -> String {
    let simple = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._:/+-".contains(&b));
    if simple {
        return format!("{key}={value}");
    }
    let mut out = format!("{key}=\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the key names a rule that replaces this whole value: every
/// action except `mask`, which keeps the last letters and so can leave a
/// short value as it was; a conditional key rule only when it takes the
/// value ([`Engine::field_rule`]).
fn replaces_value(e: &Engine, key: &str, value: &str) -> bool {
    e.field_rule(key, value)
        .is_some_and(|r| matches!(e.rule(r).action, "label" | "pseudonym" | "drop_field"))
}

/// Whether `t` is a replacement token scrubs writes: `[TAG:value]` with an
/// upper-case tag and a letter-and-digit value.
fn is_own_token(t: &str) -> bool {
    let Some(inner) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    let Some((tag, value)) = inner.split_once(':') else {
        return false;
    };
    !tag.is_empty()
        && !value.is_empty()
        && tag.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A value that is worth hiding: a letter or digit is left once the
/// engine's own `[TAG:value]` tokens are taken out of it (those are not
/// PHI and are never redacted again).
fn meaningful(v: &str) -> bool {
    outside_tokens(v)
        .iter()
        .any(|p| p.bytes().any(|b| b.is_ascii_alphanumeric()))
}

/// Containers nested in a JSON value.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// With `FUZZ_SHOW=1` in the environment the target prints each line it
/// builds and its redaction, to see what a crashing input stands for
/// (`FUZZ_SHOW=1 cargo +nightly fuzz run structured <input>`).
fn show(line: &[u8], out: &[u8]) {
    static SHOW: OnceLock<bool> = OnceLock::new();
    if *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some()) {
        eprintln!("line: {}", String::from_utf8_lossy(line).escape_debug());
        eprintln!("out:  {}", String::from_utf8_lossy(out).escape_debug());
    }
}

/// Redacts a line that may be a JSON object and checks the JSON promises.
pub fn check_json(e: &Engine, s: &mut Scratch, line: &[u8]) {
    let out = e.redact(s, line).to_vec();
    show(line, &out);
    let Ok(Value::Object(before)) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let after = match serde_json::from_slice::<Value>(&out) {
        Ok(Value::Object(after)) => after,
        Ok(_) => panic!("a redacted JSON object became another JSON value"),
        Err(err) => panic!(
            "a redacted JSON object is no longer valid JSON: {err}\n  in:  {}\n  out: {}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&out)
        ),
    };
    // The same keys, in the same places. A key may itself be redacted (a
    // map keyed by data, `{"123 Main St": ...}`, as attribute keys are in
    // OTLP), so a key that changed must now hold a replacement token.
    let keys_before = top_level_keys(line);
    let keys_after = top_level_keys(&out);
    assert_eq!(
        keys_before.len(),
        keys_after.len(),
        "redaction changed the number of top-level keys"
    );
    for (b, a) in keys_before.iter().zip(&keys_after) {
        assert!(
            a == b || (outside_tokens(a).len() > 1 && !meaningful_outside_tokens(a, b)),
            "redaction changed a top-level key without redacting it"
        );
    }
    // The structure scanner walks objects up to 64 containers deep and
    // reads deeper lines as text (src/redact/structure.rs); keyed values are
    // only promised within that.
    if depth(&Value::Object(before.clone())) >= 64 {
        return;
    }
    for key in KEYS {
        // Only keys written as themselves: an escaped spelling of a key is
        // a different raw key to the scanner.
        let text = match before.get(*key) {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if !replaces_value(e, key, &text) || !contains(line, format!("\"{key}\"").as_bytes()) {
            continue;
        }
        let survived = match (before.get(*key), after.get(*key)) {
            (Some(Value::String(v)), Some(a)) => meaningful(v) && a.as_str() == Some(v.as_str()),
            (Some(Value::Number(n)), Some(a)) => a.as_number() == Some(n),
            _ => false,
        };
        assert!(!survived, "the value of the rule key `{key}` survived");
    }
}

/// The top-level keys of a JSON object line, in order, duplicates kept.
fn top_level_keys(line: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    serde::de::Deserializer::deserialize_map(&mut de, Keys).expect("checked to be an object")
}

/// Whether the redacted key `after` holds text that is neither in one of
/// scrubs' replacement tokens nor in the original key `before`: a rewrite
/// only replaces, it never invents.
fn meaningful_outside_tokens(after: &str, before: &str) -> bool {
    outside_tokens(after)
        .iter()
        .any(|piece| !before.contains(piece.as_str()))
}

/// The pieces of `v` between scrubs' own `[TAG:value]` tokens.
fn outside_tokens(v: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut s = v;
    while let Some(i) = s.find('[') {
        pieces.last_mut().expect("one piece").push_str(&s[..i]);
        let tail = &s[i..];
        match tail.find(']') {
            Some(j) if is_own_token(&tail[..=j]) => {
                pieces.push(String::new());
                s = &tail[j + 1..];
            }
            _ => {
                pieces.last_mut().expect("one piece").push('[');
                s = &tail[1..];
            }
        }
    }
    pieces.last_mut().expect("one piece").push_str(s);
    pieces
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Checks a line of `key=value` pairs written by [`logfmt_pair`] or a query
/// string: every `key=` is still there, in order, and no value under a key
/// that replaces its value is still written after it.
pub fn check_pairs(
    e: &Engine,
    s: &mut Scratch,
    line: &str,
    pairs: &[(String, String)],
    encoded: &[String],
) {
    let out = e.redact(s, line.as_bytes()).to_vec();
    show(line.as_bytes(), &out);
    let out = String::from_utf8_lossy(&out);
    let mut at = 0;
    for (key, _) in pairs {
        let want = format!("{key}=");
        match out[at..].find(&want) {
            Some(i) => at += i + want.len(),
            None => panic!("the key `{key}` was lost: {line:?} became {out:?}"),
        }
    }
    for ((key, value), written) in pairs.iter().zip(encoded) {
        if !replaces_value(e, key, value) || !meaningful(value) {
            continue;
        }
        // At least one occurrence of the written pair, whole, is gone.
        // (Counting, not searching, because another value may hold the
        // same text, where it is not a pair of this line.)
        assert!(
            count_pair(&out, written) < count_pair(line, written),
            "the value of the rule key `{key}` survived"
        );
    }
}

/// Writes `pairs` as a logfmt line with [`logfmt_pair`] and checks it with
/// [`check_pairs`].
pub fn check_logfmt(e: &Engine, s: &mut Scratch, pairs: &[(String, String)]) {
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| logfmt_pair(k, v)).collect();
    let line = encoded.join(" ");
    check_pairs(e, s, &line, pairs, &encoded);
}

/// Occurrences of a written pair followed by a separator or the end.
fn count_pair(hay: &str, pair: &str) -> usize {
    hay.match_indices(pair)
        .filter(|(i, _)| {
            hay[i + pair.len()..]
                .bytes()
                .next()
                .is_none_or(|b| matches!(b, b' ' | b'&' | b'"'))
        })
        .count()
}
