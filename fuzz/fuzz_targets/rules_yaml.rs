//! The rule loader and compiler on arbitrary YAML: what `scrubs rules test`,
//! `scrubs validate` and `scrubs run --rules` do with an operator's file.
//!
//! A rule file is loaded, compiled, its examples run, and the engine it
//! gives redacts a few lines. Nothing may panic; a refused file is refused
//! with at least one problem, and every problem names the file ("one line
//! per problem, all problems at once, each naming the file").

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scrubs::{Engine, Error, PseudonymKey, RuleSet};

const FILE: &str = "fuzz.yaml";

/// Lines of the kinds every detector looks at.
const LINES: &[&[u8]] = &[
    b"GET /health 200 12ms",
    b"{\"patientName\":\"Maria Gonzalez\",\"ssn\":\"219-09-9999\",\"visit\":{\"dob\":\"03/14/1985\"}}",
    b"level=info patient_name=\"Dr. Priya Patel\" phone=(415) 555-0132 mrn=MRN-00482913",
    b"GET /api/v1/patients?name=Maria%20Gonzalez&dob=1985-03-14 HTTP/1.1",
    b"UPDATE patients SET ssn = '219099999' WHERE id = 7",
    b"callback 415-555-0132 for SSN 219-09-9999 card 4111 1111 1111 1111 TCK-1234",
    b"\xff\xfe\x00 Nguy\xe1\xbb\x85n 1EG4-TE5-MK73",
];

fn key() -> PseudonymKey {
    static KEY: OnceLock<PseudonymKey> = OnceLock::new();
    KEY.get_or_init(|| PseudonymKey::from_bytes(vec![7u8; 32]).expect("32 bytes is enough"))
        .clone()
}

fn check_refusal(err: &Error) {
    let problems = err.rule_problems();
    assert!(!problems.is_empty(), "a refused rule file names no problem");
    for p in problems {
        assert_eq!(p.file, FILE, "a problem does not name the rule file");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Dictionary paths are read relative to the current directory. Device
    // and kernel files (/dev/zero, /dev/stdin, /proc/kcore) would make the
    // target hang or run out of memory reading them, which says nothing
    // about the loader, so inputs that could name them are skipped.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let set = match RuleSet::from_yaml(FILE, text) {
        Ok(set) => set,
        Err(err) => return check_refusal(&err),
    };
    let engine = match Engine::new(&set, key()) {
        Ok(engine) => engine,
        Err(err) => return check_refusal(&err),
    };
    assert_eq!(engine.rule_count(), set.len(), "a loaded rule went missing");
    let _ = engine.check_examples();
    let mut scratch = engine.scratch();
    for line in LINES {
        let out = engine.redact(&mut scratch, line);
        assert!(!out.contains(&b'\n'), "redaction added a line break");
    }
    // The rule text itself is a line like any other.
    let _ = engine.redact(&mut scratch, data);
});
