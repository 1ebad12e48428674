//! Inputs the fuzz targets in `fuzz/` found to crash, each kept in
//! `tests/fuzz_regressions/<target>-<name>` and run here through the same
//! code as its target, so that CI checks them on the stable toolchain.
//!
//! The entry points are behind the `fuzzing` feature, so this test is built
//! only with it (`cargo test --features fuzzing --test fuzz_regressions`;
//! `scripts/test.sh` runs it).
//!
//! An input that fails because of a bug not yet fixed is `#[ignore]`d with
//! the reason; `cargo test --test fuzz_regressions -- --ignored` shows it.

use std::path::PathBuf;
use std::sync::OnceLock;

use scrubs::fuzzing::structured;
use scrubs::Engine;

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

/// What the `structured` target checks for a line in mode 0 (the first byte
/// of the input, then the line): a JSON object stays a JSON object with the
/// same keys in the same places, and a string under a key whose rule
/// replaces the whole value (`ssn`, for one) does not survive.
fn check_structured(data: &[u8]) {
    let (&mode, line) = data.split_first().expect("mode byte");
    assert_eq!(
        mode % 7,
        0,
        "kept structured inputs use mode 0 (a raw line)"
    );
    let e = engine();
    structured::check_json(e, &mut e.scratch(), line);
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

/// What the `structured` target checks for a mode 5 input (byte 1 picks a
/// key, the rest is its value): the line `level=info KEY=VALUE status=200`,
/// the value quoted logfmt-style, keeps all three keys, in order, and a
/// value under a key whose rule replaces it does not survive.
fn check_structured_logfmt(data: &[u8]) {
    assert_eq!(data[0] % 7, 5, "a mode 5 input");
    let key = structured::KEYS[data[1] as usize % structured::KEYS.len()];
    let value = String::from_utf8_lossy(&data[2..]).into_owned();
    let e = engine();
    structured::check_logfmt(
        e,
        &mut e.scratch(),
        &[
            ("level".into(), "info".into()),
            (key.into(), value),
            ("status".into(), "200".into()),
        ],
    );
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

// ---- simd_masks: the committed seeds --------------------------------------

/// The `simd_masks` target has found nothing to keep; its seeds run here so
/// that the entry point and the vector-against-scalar check stay built and
/// exercised on the stable toolchain (the property test in
/// src/redact/simd.rs covers arbitrary bytes).
#[test]
fn simd_masks_seeds_agree_with_the_byte_loops() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/simd_masks");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/simd_masks") {
        let data = std::fs::read(entry.expect("entry").path()).expect("seed");
        scrubs::fuzzing::simd_masks(&data);
        n += 1;
    }
    assert!(n >= 2, "seeds found: {n}");
}
