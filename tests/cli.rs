//! The `scrubs` binary end to end: streaming, limits, exit codes, errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn scrubs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scrubs"))
}

fn redact(args: &[&str], input: &[u8]) -> (Vec<u8>, String, i32) {
    let mut child = scrubs()
        .arg("redact")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A file `name` holding `contents` in a new temporary directory, which
/// lives as long as the returned guard; the path as text, for arguments.
fn temp_file(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn one_line_out_per_line_in_and_phi_is_gone() {
    let input =
        b"ok 200 12ms\nssn 219-09-9999\n\n{\"patientName\":\"Ann Lee\"}\nlast line without newline";
    let (out, err, code) = redact(&[], input);
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], "ok 200 12ms");
    assert_eq!(lines[1], "ssn [REDACTED:SSN]");
    assert_eq!(lines[2], "");
    assert!(
        lines[3].starts_with("{\"patientName\":\"[NAME:"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "last line without newline");
}

#[test]
fn invalid_utf8_and_nul_bytes_pass_through_without_panic() {
    let input = b"bad \xff\xfe bytes\x00 and ssn 219-09-9999\n";
    let (out, _, code) = redact(&[], input);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        b"bad \xff\xfe bytes\x00 and ssn [REDACTED:SSN]\n".to_vec()
    );
}

#[test]
fn an_oversized_line_is_cut_redacted_and_marked() {
    let mut input = b"ssn 219-09-9999 ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend(b" 219-09-9999\nnext\n");
    let (out, _, code) = redact(&["--max-line-bytes", "1000"], &input);
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    // The first 1000 bytes end inside the run of x; the cut moves back to
    // the last delimiter so no partial token survives, and the marker says
    // how many bytes went (5028 in, 16 kept).
    assert_eq!(lines[0], "ssn [REDACTED:SSN]  [TRUNCATED:5012 bytes]");
    assert_eq!(lines[1], "next");
}

#[test]
fn output_is_flushed_line_by_line_for_tail_f() {
    let mut child = scrubs()
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for i in 0..3 {
        writeln!(stdin, "call 415-555-013{i} now").unwrap();
        stdin.flush().unwrap();
        line.clear();
        // Blocks until scrubs flushes: stdin stays open, so only a flush
        // per line gets the line here.
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "call [REDACTED:PHONE] now\n");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_broken_pipe_is_a_normal_exit() {
    let mut child = scrubs()
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdin.write_all(b"first line\n").unwrap();
    stdout.read_exact(&mut first[..11]).unwrap();
    drop(stdout);
    // Keep writing until scrubs notices the closed pipe and exits.
    let line = b"more output that goes nowhere\n".repeat(1000);
    while stdin.write_all(&line).is_ok() {}
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stats_name_rules_and_counts_only() {
    let (_, err, code) = redact(&["--stats"], b"ssn 219-09-9999 call 415-555-0132\n");
    assert_eq!(code, 0);
    assert!(err.contains("rule\tssn.formatted\t1"), "{err}");
    assert!(
        !err.contains("219-09") && !err.contains("555-0132"),
        "{err}"
    );
}

#[test]
fn a_bad_rule_file_exits_2_naming_file_line_and_rule() {
    let (_dir, path) = temp_file("bad.yaml", "rules:\n  - id: ok\n    category: ssn\n    detector: {keys: [a]}\n  - id: broken\n    category: ssn\n    detector: {regex: '(unclosed'}\n");
    let (out, err, code) = redact(&["--rules", &path], b"x\n");
    assert_eq!(code, 2);
    assert!(out.is_empty(), "nothing may start");
    assert!(
        err.contains("bad.yaml:7: rule 'broken': regex does not compile: unclosed group"),
        "{err}"
    );
}

#[test]
fn a_short_key_file_is_refused_and_never_printed() {
    let (_dir, path) = temp_file("key", "TOPSECRETKEYMATERIAL\n");
    let (_, err, code) = redact(&["--key-file", &path], b"x\n");
    assert_eq!(code, 2);
    assert!(err.contains("at least 32"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");
}

#[test]
fn pseudonyms_are_stable_for_a_key_and_differ_across_keys() {
    let (_d1, k1) = temp_file("k1", [1u8; 32]);
    let (_d2, k2) = temp_file("k2", [2u8; 32]);
    let input = b"email=ann.lee@example.org\nemail=ann.lee@example.org\n";
    let (a, _, _) = redact(&["--key-file", &k1], input);
    let (b, _, _) = redact(&["--key-file", &k1], input);
    let (c, _, _) = redact(&["--key-file", &k2], input);
    let a = String::from_utf8(a).unwrap();
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines[0], lines[1]);
    assert!(lines[0].starts_with("email=[EMAIL:"), "{}", lines[0]);
    assert_eq!(a, String::from_utf8(b).unwrap());
    assert_ne!(a, String::from_utf8(c).unwrap());
}

#[test]
fn rules_test_reports_failures_like_a_test_runner() {
    let (_dir, path) = temp_file(
        "r.yaml",
        "rules:\n  - id: ticket\n    category: other_identifier\n    detector: {regex: 'TCK-\\d{4}', requires: ['tck-']}\n    examples:\n      redact: ['see TCK-1234', 'see TCK-12']\n      keep: ['see TCK-1']\n",
    );
    let out = scrubs()
        .args(["rules", "test", "--no-builtin", &path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("rule 'ticket' redact example #2"),
        "{stdout}"
    );
    assert!(stdout.contains("2 passed, 1 failed"), "{stdout}");

    let out = scrubs().args(["rules", "test"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rules_list_prints_the_rules_in_force() {
    let out = scrubs().args(["rules", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [
        "name.person",
        "ssn.formatted",
        "email.address",
        "diagnosis.icd10",
        "clinical.text_key",
    ] {
        assert!(text.contains(id), "{id} missing");
    }
}

/// A custom rule that finds badge numbers (not PHI the pack knows about).
const BADGE_RULE: &str = "rules:\n  - id: acme.badge_number_of_the_visiting_clinician\n    category: other_identifier\n    detector: {regex: 'BDG-\\d{5}', requires: ['bdg-']}\n    examples: {redact: ['badge BDG-12345'], keep: ['badge ok']}\n";

#[test]
fn custom_rules_add_to_the_builtin_pack() {
    let (_dir, path) = temp_file("badge.yaml", BADGE_RULE);
    let input = b"patient Maria Gonzalez ssn 219-09-9999 badge BDG-12345\n";
    let (out, err, code) = redact(&["--rules", &path], input);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    // The custom rule and the pack's name and SSN rules all apply.
    assert!(!out.contains("BDG-12345"), "{out}");
    assert!(!out.contains("219-09-9999"), "{out}");
    assert!(!out.contains("Gonzalez"), "{out}");
    assert!(!err.contains("pack is off"), "{err}");
}

#[test]
fn no_builtin_turns_the_pack_off_and_says_so_on_stderr() {
    let (_dir, path) = temp_file("badge.yaml", BADGE_RULE);
    let input = b"patient Maria Gonzalez ssn 219-09-9999 badge BDG-12345\n";
    let (out, err, code) = redact(&["--rules", &path, "--no-builtin"], input);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "patient Maria Gonzalez ssn 219-09-9999 badge [REDACTED:ID]\n"
    );
    assert!(
        err.contains("warning: the built-in HIPAA pack is off (--no-builtin)"),
        "{err}"
    );
    // Off with nothing else is refused: no rule would be in force.
    let (out, err, code) = redact(&["--no-builtin"], input);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("no rule is in force"), "{err}");
}

#[test]
fn rules_list_columns_are_aligned() {
    let (_dir, path) = temp_file("badge.yaml", BADGE_RULE);
    let out = scrubs().args(["rules", "list", &path]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 50, "{text}");
    // Where each column starts in the header: every row has a cell
    // starting there, preceded by at least two spaces.
    let header = lines[0];
    let starts: Vec<usize> = ["CATEGORY", "DETECTOR", "ACTION", "SOURCE"]
        .iter()
        .map(|h| header.find(h).unwrap())
        .collect();
    for line in &lines[1..] {
        for &s in &starts {
            let b = line.as_bytes();
            assert!(
                b.len() > s && b[s] != b' ' && &b[s - 2..s] == b"  ",
                "column at {s} not aligned in:\n{header}\n{line}"
            );
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("acme.badge_number_of_the_visiting_clinician  ")),
        "{text}"
    );
}

#[test]
fn rules_list_json_is_one_array_of_rules() {
    let (_dir, path) = temp_file("badge.yaml", BADGE_RULE);
    let out = scrubs()
        .args(["rules", "list", "--format", "json", &path])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rules: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rules.len() > 50);
    let badge = rules
        .iter()
        .find(|r| r["id"] == "acme.badge_number_of_the_visiting_clinician")
        .expect("the custom rule is listed");
    assert_eq!(badge["category"], "other_identifier");
    assert_eq!(badge["detector"], "regex");
    assert_eq!(badge["action"], "label");
    assert_eq!(badge["line"], 2);
    assert!(badge["file"].as_str().unwrap().ends_with("badge.yaml"));
    assert!(rules.iter().any(|r| r["id"] == "ssn.formatted"));
}
