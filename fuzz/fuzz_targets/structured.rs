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
//!
//! The checks themselves are `scrubs::fuzzing::structured`, which
//! `tests/fuzz_regressions.rs` runs on every kept input.

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use scrubs::fuzzing::structured::{check_json, check_logfmt, check_pairs, KEYS};
use scrubs::{Engine, Scratch};
use serde_json::{Map, Value};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builtin().expect("the built-in pack compiles"))
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(engine().scratch());
}

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

fn logfmt(e: &Engine, pairs: &[(String, String)]) {
    SCRATCH.with_borrow_mut(|s| check_logfmt(e, s, pairs));
}

fn query(e: &Engine, path: &str, pairs: &[(String, String)], plus: bool) {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v, plus)))
        .collect();
    let line = request_line(path, &encoded);
    SCRATCH.with_borrow_mut(|s| check_pairs(e, s, &line, pairs, &encoded));
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
