//! Inputs the fuzz targets in `fuzz/` found to crash, each kept in
//! `tests/fuzz_regressions/<target>-<name>` and run here through the same
//! code as its target, so that CI checks them on the stable toolchain.
//!
//! An input that fails because of a bug not yet fixed is `#[ignore]`d with
//! the reason; `cargo test --test fuzz_regressions -- --ignored` shows it.

use std::path::PathBuf;
use std::sync::OnceLock;

use scrubs::{Engine, Scratch};
use serde_json::Value;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::builtin().expect("the built-in pack compiles"))
}

/// A kept input, by its file name.
fn input(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The top-level keys of a JSON object line, in order.
fn top_level_keys(line: &[u8]) -> Vec<String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let map: serde_json::Map<String, Value> =
        serde::Deserialize::deserialize(&mut de).expect("a JSON object");
    map.keys().cloned().collect()
}

/// What the `structured` target checks for a line in mode 0 (the first byte
/// of the input, then the line): a JSON object stays a JSON object with the
/// same keys, and a string under a key whose rule replaces the whole value
/// (here `ssn`) does not survive.
fn check_structured(data: &[u8]) {
    let (&mode, line) = data.split_first().expect("mode byte");
    assert_eq!(
        mode % 7,
        0,
        "kept structured inputs use mode 0 (a raw line)"
    );
    let e = engine();
    let mut s: Scratch = e.scratch();
    let out = e.redact(&mut s, line).to_vec();
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
    assert_eq!(top_level_keys(line).len(), top_level_keys(&out).len());
    if let (Some(Value::String(v)), Some(a)) = (before.get("ssn"), after.get("ssn")) {
        assert_ne!(
            a.as_str(),
            Some(v.as_str()),
            "the value of the rule key `ssn` survived"
        );
    }
}

// ---- structured: fixed in src/redact ----------------------------------------

/// A text finding that starts inside a JSON string escape is rewritten from
/// there: the email pattern takes `u0000@e.rg` out of `"\u0000@e.rg"` and
/// leaves `"\[EMAIL:...]"`, an invalid escape. Real lines hit it with `\n`:
/// `{"msg":"error\njohn@example.org"}` becomes `"error\[EMAIL:...]"`.
#[test]
fn json_escape_split_by_a_finding_keeps_json_valid() {
    check_structured(&input("structured-json-escape-split"));
}

/// A bare JSON number taken by a text detector (here a phone number, by
/// the context word `phone` of the next key) is replaced by an unquoted
/// label: `"msg":-3405814423` becomes `"msg":-[REDACTED:PHONE]`, which is
/// not JSON. Keyed numbers are quoted; these are not.
#[test]
fn json_number_found_by_a_text_detector_is_quoted() {
    check_structured(&input("structured-json-bare-number-label"));
}

/// A keyed value that holds one of scrubs' own tokens and other text is
/// left whole: `{"ssn":"ob[REDACTED:SSN]"}` keeps `ob`, because every
/// finding touching an own token is dropped, the key's whole-value finding
/// included. (Found by the fuzzer as logfmt, `patient_name="ob[REDACTED:SSN]"`.)
#[test]
fn keyed_value_beside_an_own_token_is_redacted() {
    check_structured(&input("structured-keyed-value-beside-token"));
}

/// Missed by 6ef3a24, which kept findings off escape letters only: a digit
/// run that starts inside the four hex digits of a `\uXXXX` escape.
/// `{"x":"\u0000456789 Medicare"}` becomes `"\u[HEALTH_PLAN_ID:...] Medicare"`
/// (the health plan number is read as `0000456789`). Keys split the same
/// way (`{"\u0000456789 Medicare":null}`).
#[test]
fn digit_run_inside_a_unicode_escape_keeps_json_valid() {
    check_structured(&input("structured-json-unicode-escape-then-digits"));
}

/// The keys of the `structured` target (`fuzz/fuzz_targets/structured.rs`,
/// `KEYS`), in the same order: byte 1 of a mode 4-6 input picks one.
const STRUCTURED_KEYS: &[&str] = &[
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

/// What the `structured` target checks for a mode 5 input (byte 1 picks a
/// key, the rest is its value): the line `level=info KEY=VALUE status=200`,
/// the value quoted logfmt-style, keeps all three keys, in order.
fn check_structured_logfmt(data: &[u8]) {
    assert_eq!(data[0] % 7, 5, "a mode 5 input");
    let key = STRUCTURED_KEYS[data[1] as usize % STRUCTURED_KEYS.len()];
    let value = String::from_utf8_lossy(&data[2..]);
    let simple = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._:/+-".contains(&b));
    // Quoted as the target's `logfmt_pair` quotes.
    let written = if simple {
        format!("{key}={value}")
    } else {
        let mut q = String::new();
        for c in value.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                '\n' => q.push_str("\\n"),
                '\r' => q.push_str("\\r"),
                c => q.push(c),
            }
        }
        format!("{key}=\"{q}\"")
    };
    let line = format!("level=info {written} status=200");
    let e = engine();
    let mut s = e.scratch();
    let out = String::from_utf8_lossy(e.redact(&mut s, line.as_bytes())).into_owned();
    let mut at = 0;
    for k in ["level", key, "status"] {
        let want = format!("{k}=");
        match out[at..].find(&want) {
            Some(i) => at += i + want.len(),
            None => panic!("the key `{k}` was lost: {line:?} became {out:?}"),
        }
    }
}

/// A quoted logfmt value that ended in `phone:` was read as a `key: value`
/// pair whose value ran past the closing quote to the end of the line:
/// `level=info msg="contact phone:" status=200` became
/// `level=info msg="contact phone:"[REDACTED:PHONE]`, losing `status=200`.
#[test]
fn colon_key_at_the_end_of_a_quoted_value_keeps_the_next_pairs() {
    check_structured_logfmt(&input("structured-logfmt-colon-at-value-end"));
}

// ---- rules_yaml: fixed in src/rules -----------------------------------------

/// What the `rules_yaml` target does with a rule file: load it, and if it
/// loads, compile it, run its examples and redact lines with it. A refused
/// file names at least one problem, each naming the file.
fn check_rules_yaml(data: &[u8]) -> Result<(), Vec<String>> {
    const FILE: &str = "fuzz.yaml";
    let text = std::str::from_utf8(data).expect("kept rule inputs are UTF-8");
    let refused = |err: scrubs::Error| {
        let problems = err.rule_problems();
        assert!(!problems.is_empty(), "a refused rule file names no problem");
        assert!(problems.iter().all(|p| p.file == FILE));
        Err(problems.iter().map(|p| p.message.clone()).collect())
    };
    let set = match scrubs::RuleSet::from_yaml(FILE, text) {
        Ok(set) => set,
        Err(err) => return refused(err),
    };
    let key = scrubs::PseudonymKey::from_bytes(vec![7u8; 32]).expect("32 bytes");
    let engine = match Engine::new(&set, key) {
        Ok(engine) => engine,
        Err(err) => return refused(err),
    };
    let _ = engine.check_examples();
    let mut scratch = engine.scratch();
    for line in [
        &b"GET /health 200 12ms"[..],
        b"SSN: 219099999 social security 219 09 9999",
        data,
    ] {
        let _ = engine.redact(&mut scratch, line);
    }
    Ok(())
}

/// `words: [ssn, "social",!ssa]`: a YAML tag with no value is an empty
/// string. An empty context word became an empty Aho-Corasick pattern whose
/// zero-length match at 0 made the literal pass index `hay[e - 1]` with
/// `e == 0` (src/redact/engine.rs, "attempt to subtract with overflow"; out
/// of bounds without overflow checks), on any line starting with a letter.
/// The loader now refuses empty context words.
#[test]
fn empty_context_word_is_refused_not_a_panic() {
    let problems = check_rules_yaml(&input("rules_yaml-tagged-empty-context-word"))
        .expect_err("an empty context word is refused");
    assert!(
        problems
            .iter()
            .any(|m| m.contains("context.words must not hold an empty string")),
        "{problems:?}"
    );
}

/// The same panic through a regex gate: `requires: [""]`.
#[test]
fn empty_requires_literal_is_refused_not_a_panic() {
    let problems = check_rules_yaml(&input("rules_yaml-empty-requires-literal"))
        .expect_err("an empty requires literal is refused");
    assert!(
        problems
            .iter()
            .any(|m| m.contains("detector.requires must not hold an empty string")),
        "{problems:?}"
    );
}
