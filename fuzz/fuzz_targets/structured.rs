//! The line redactor on structured lines: JSON objects, logfmt pairs and
//! URL query strings, checked against what the README promises for them.
//!
//! The first byte picks how the rest becomes a line (see `fuzz/README.md`):
//!
//! * 0: the rest is the line itself (the seed corpus holds real log lines);
//! * 1, 2, 3: the rest drives `arbitrary` to build a JSON object, logfmt
//!   pairs or a request line with a query string;
//! * 4, 5, 6: byte 1 picks a key from [`KEYS`] and the rest is one value,
//!   written as a JSON string, a logfmt value or a percent-encoded query
//!   value under that key.
//!
//! Every line must redact without panicking. On top of that:
//!
//! * a line that parses as a JSON object still parses as one after
//!   redaction, with the same top-level keys in the same places ("the
//!   output stays valid JSON with the same keys"); a key may itself be
//!   redacted (a map keyed by data, as OTLP attribute keys are), so a key
//!   that changed may only differ by replacement tokens;
//! * in logfmt and query lines every key is kept ("the whole encoded value is
//!   redacted, the key kept");
//! * a value under a key that names a rule whose action replaces the whole
//!   value (label, pseudonym, drop_field) does not survive.

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use scrubs::{Engine, Scratch};
use serde_json::{Map, Value};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builtin().expect("the built-in pack compiles"))
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(engine().scratch());
}

/// Keys the generators pick from: keys that name built-in rules, in several
/// spellings, and ordinary keys that name none. All are plain ASCII words,
/// so a key is written the same way in JSON, logfmt and a query string.
const KEYS: &[&str] = &[
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

/// Values the generators pick from: identifiers of every kind the pack
/// detects and harmless operational values.
const VALUES: &[&str] = &[
    "219-09-9999",
    "219099999",
    "Maria Gonzalez",
    "Gonzalez, Maria",
    "Dr. Priya Patel",
    "Nguyễn Văn An",
    "(415) 555-0132",
    "+1 415 555 0132",
    "maria.gonzalez@example.org",
    "03/14/1985",
    "1985-03-14",
    "March 14, 1985",
    "MRN-00482913",
    "1EG4-TE5-MK73",
    "4111 1111 1111 1111",
    "123 Main Street, Springfield",
    "94110",
    "203.0.113.45",
    "2001:db8::1",
    "1HGCM82633A004352",
    "E11.9 type 2 diabetes",
    "patient reports chest pain",
    "info",
    "2024-03-01T10:15:02Z",
    "200",
    "12ms",
    "usr_8f2a",
    "vis_1",
    "5b8efff798038103d269b633813fc60c",
    "GET /health",
    "",
    " ",
    "[REDACTED:SSN]",
    "a\"b\\c",
    "x=1&y=2",
];

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Known(i) => KEYS[*i as usize % KEYS.len()].to_string(),
            Key::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Other(String),
    /// A known value with text around it, as in a sentence.
    Around(String, u8, String),
}

impl Text {
    fn text(&self) -> String {
        match self {
            Text::Known(i) => known_value(*i).to_string(),
            Text::Other(s) => s.clone(),
            Text::Around(a, i, b) => format!("{a}{}{b}", known_value(*i)),
        }
    }
}

fn known_value(i: u8) -> &'static str {
    VALUES[i as usize % VALUES.len()]
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::Float(f) => Value::from(*f),
            Json::Str(t) => Value::String(t.text()),
            Json::Array(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Object(pairs) => Value::Object(object(pairs)),
        }
    }
}

fn object(pairs: &[(Key, Json)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.text(), v.value())).collect()
}

/// A key and a value as a logfmt pair: bare when the value is one simple
/// token, otherwise quoted with `"` and `\` escaped and line breaks written
/// as `\n`, the way logfmt libraries write them.
fn logfmt_pair(key: &str, value: &str) -> String {
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

/// Percent-encoding of a query value; space as `+` when `plus`.
fn percent_encode(value: &str, plus: bool) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' && plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request_line(path: &str, query: &[String]) -> String {
    format!(
        "10.1.2.3 - - [01/Mar/2024:10:15:02 +0000] \"GET {path}?{} HTTP/1.1\" 200 512",
        query.join("&")
    )
}

/// Whether the key names a rule that replaces its whole value: every action
/// except `mask`, which keeps the last letters and so can leave a short
/// value as it was.
fn replaces_value(e: &Engine, key: &str) -> bool {
    e.key_rule(key)
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
fn check_json(e: &Engine, s: &mut Scratch, line: &[u8]) {
    let out = e.redact(s, line).to_vec();
    show(line, &out);
    let Ok(Value::Object(before)) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let after = match serde_json::from_slice::<Value>(&out) {
        Ok(Value::Object(after)) => after,
        Ok(_) => panic!("a redacted JSON object became another JSON value"),
        Err(err) => panic!("a redacted JSON object is no longer valid JSON: {err}"),
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
        if !replaces_value(e, key) || !contains(line, format!("\"{key}\"").as_bytes()) {
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
fn check_pairs(e: &Engine, line: &str, pairs: &[(String, String)], encoded: &[String]) {
    SCRATCH.with_borrow_mut(|s| {
        let out = e.redact(s, line.as_bytes()).to_vec();
        show(line.as_bytes(), &out);
        let out = String::from_utf8_lossy(&out);
        let mut at = 0;
        for (key, _) in pairs {
            let want = format!("{key}=");
            match out[at..].find(&want) {
                Some(i) => at += i + want.len(),
                None => panic!("the key `{key}` was lost"),
            }
        }
        for ((key, value), written) in pairs.iter().zip(encoded) {
            if !replaces_value(e, key) || !meaningful(value) {
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
    });
}

/// Keys the pair generators use: known keys only, so that the "key kept"
/// check is about the scanner and not about a key that is itself a name or
/// a diagnosis word, which the text detectors rightly redact.
fn pair_key(k: &Key) -> String {
    match k {
        Key::Known(i) => KEYS[*i as usize % KEYS.len()].to_string(),
        Key::Other(s) => {
            let i = s.bytes().fold(0usize, |a, b| a.wrapping_add(b as usize));
            KEYS[i % KEYS.len()].to_string()
        }
    }
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

fn logfmt(e: &Engine, pairs: &[(String, String)]) {
    let encoded: Vec<String> = pairs.iter().map(|(k, v)| logfmt_pair(k, v)).collect();
    let line = encoded.join(" ");
    check_pairs(e, &line, pairs, &encoded);
}

fn query(e: &Engine, path: &str, pairs: &[(String, String)], plus: bool) {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v, plus)))
        .collect();
    let line = request_line(path, &encoded);
    check_pairs(e, &line, pairs, &encoded);
}

/// A path with no query delimiters in it, so the query starts at the `?`.
fn clean_path(p: &str) -> String {
    let p: String = p
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
        .collect();
    format!("/{p}")
}

fn run(data: &[u8]) -> arbitrary::Result<()> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let e = engine();
    match mode % 7 {
        0 => SCRATCH.with_borrow_mut(|s| check_json(e, s, rest)),
        1 => {
            let pairs: Vec<(Key, Json)> = Unstructured::new(rest).arbitrary()?;
            let line = serde_json::to_vec(&Value::Object(object(&pairs))).expect("serialises");
            SCRATCH.with_borrow_mut(|s| check_json(e, s, &line));
        }
        2 => {
            let pairs: Vec<(Key, Text)> = Unstructured::new(rest).arbitrary()?;
            let pairs: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (pair_key(k), v.text())).collect();
            logfmt(e, &pairs);
        }
        3 => {
            let (path, plus, pairs): (String, bool, Vec<(Key, Text)>) =
                Unstructured::new(rest).arbitrary()?;
            let pairs: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (pair_key(k), v.text())).collect();
            query(e, &clean_path(&path), &pairs, plus);
        }
        m => {
            let Some((&k, value)) = rest.split_first() else {
                return Ok(());
            };
            let key = KEYS[k as usize % KEYS.len()].to_string();
            let value = String::from_utf8_lossy(value).into_owned();
            match m {
                4 => {
                    let mut obj = Map::new();
                    obj.insert("ts".into(), Value::from("2024-03-01T10:15:02Z"));
                    obj.insert(key, Value::String(value));
                    obj.insert("level".into(), Value::from("info"));
                    let line = serde_json::to_vec(&Value::Object(obj)).expect("serialises");
                    SCRATCH.with_borrow_mut(|s| check_json(e, s, &line));
                }
                5 => logfmt(
                    e,
                    &[
                        ("level".into(), "info".into()),
                        (key, value),
                        ("status".into(), "200".into()),
                    ],
                ),
                _ => query(
                    e,
                    "/api/v1/visits",
                    &[(key, value), ("page".into(), "2".into())],
                    k % 2 == 0,
                ),
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
