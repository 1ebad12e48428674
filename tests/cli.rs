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

// ---- validate and run: the environment the configuration names -------------

/// `scrubs ARGS` with `env` removed from the environment; stdout, stderr
/// and the exit code.
fn scrubs_without(args: &[&str], env_removed: &[&str], stdin: &[u8]) -> (String, String, i32) {
    let mut cmd = scrubs();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in env_removed {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn write_mode(path: &std::path::Path, contents: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The problem lines of `scrubs: N problem(s) in the configuration`.
fn config_problems(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .skip_while(|l| !l.contains("problem(s) in the configuration"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

const UNSET_A: &str = "SCRUBS_TEST_CLI_UNSET_KAFKA_PASSWORD";
const UNSET_B: &str = "SCRUBS_TEST_CLI_UNSET_VENDOR_TOKEN";

#[test]
fn validate_checks_every_secret_file_and_directory_at_once_and_run_reports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A file where a directory belongs.
    let data = d.join("data");
    std::fs::write(&data, "").unwrap();
    // A pseudonym key that is long enough but readable by everyone.
    let pkey = d.join("pseudonym.key");
    write_mode(&pkey, &[b'k'; 40], 0o644);
    // A chain key that is too short (and private).
    let ckey = d.join("chain.key");
    write_mode(&ckey, b"short", 0o600);
    // A CA file that is not PEM; a secret file readable by everyone.
    let ca = d.join("kafka-ca.pem");
    std::fs::write(&ca, "this is not a certificate\n").unwrap();
    let token = d.join("token");
    write_mode(&token, b"TOPSECRETTOKEN\n", 0o644);
    let cfg = d.join("scrubs.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"data_dir: {data}
pseudonym_key_file: {pkey}
sources:
  app: {{type: file, include: ["{d}/no-such-dir/*.log"]}}
audit:
  kafka:
    brokers: 127.0.0.1:9
    topic: phi-audit
    spool_dir: {d}/spool
    chain_key_file: {ckey}
    security:
      protocol: sasl_ssl
      sasl_mechanism: SCRAM-SHA-512
      username: scrubs
      password: {{env: {UNSET_A}}}
      ca_file: {ca}
  select: {{contains: [AUDIT]}}
vendors:
  - name: acme
    endpoint: https://127.0.0.1:9
    baa_covered: true
    headers:
      x-api-key: {{env: {UNSET_B}}}
      x-other: {{file: {token}}}
    tls: {{ca_file: {d}/missing-ca.pem}}
"#,
            data = data.display(),
            pkey = pkey.display(),
            d = d.display(),
            ckey = ckey.display(),
            ca = ca.display(),
            token = token.display(),
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let name = |p: &std::path::Path| p.display().to_string();
    let (out, err, code) = scrubs_without(&["validate", "--config", cfg], &[UNSET_A, UNSET_B], b"");
    assert_eq!(code, 2, "{out}{err}");
    let problems = config_problems(&err);
    let wanted = [
        ("data_dir:", name(&data), "is not a directory"),
        ("pseudonym_key_file:", name(&pkey), "has mode 0644"),
        (
            "sources.app.include[0]:",
            format!("{}/no-such-dir", d.display()),
            "does not exist",
        ),
        (
            "audit.kafka.chain_key_file:",
            name(&ckey),
            "the key is 5 bytes; at least 32",
        ),
        (
            "audit.kafka.security.password:",
            UNSET_A.to_string(),
            "is not set",
        ),
        ("audit.kafka.security.ca_file:", name(&ca), "PEM"),
        (
            "vendors[0].headers.x-api-key:",
            UNSET_B.to_string(),
            "is not set",
        ),
        ("vendors[0].headers.x-other:", name(&token), "has mode 0644"),
        (
            "vendors[0].tls.ca_file:",
            format!("{}/missing-ca.pem", d.display()),
            "no such file",
        ),
    ];
    for (path, what, why) in &wanted {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("{cfg}: {path}"))
                    && p.contains(what.as_str())
                    && p.contains(why)),
            "{path} {what} {why} not reported in:\n{err}"
        );
    }
    assert_eq!(problems.len(), wanted.len(), "{err}");
    assert!(
        err.starts_with(&format!("scrubs: {} problem(s)", wanted.len())),
        "{err}"
    );
    // Secret values are never shown.
    assert!(!err.contains("TOPSECRET"), "{err}");

    // `run` checks the same before anything starts, and says it the same way.
    let (_, run_err, code) = scrubs_without(&["run", "--config", cfg], &[UNSET_A, UNSET_B], b"");
    assert_eq!(code, 2, "{run_err}");
    assert_eq!(config_problems(&run_err), problems, "{run_err}");
    assert!(
        !run_err.contains("listening"),
        "run started something: {run_err}"
    );

    // Without the environment, only the file itself is checked.
    let (out, err, code) = scrubs_without(
        &["validate", "--no-environment", "--config", cfg],
        &[UNSET_A, UNSET_B],
        b"",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("not checked (--no-environment)"), "{out}");
}

#[test]
fn the_example_config_lints_without_environment_and_names_its_missing_secrets_with_it() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/scrubs.yaml");
    let unset = ["SCRUBS_AUDIT_KAFKA_PASSWORD", "ACME_API_KEY"];
    let (out, err, code) = scrubs_without(
        &["validate", "--no-environment", "--config", example],
        &unset,
        b"",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (_, err, code) = scrubs_without(&["validate", "--config", example], &unset, b"");
    assert_eq!(code, 2, "{err}");
    for named in [
        "audit.kafka.security.password: environment variable SCRUBS_AUDIT_KAFKA_PASSWORD",
        "audit.kafka.security.ca_file: /etc/scrubs/kafka-ca.pem",
        "vendors[0].headers.x-api-key: environment variable ACME_API_KEY",
    ] {
        assert!(err.contains(named), "{named} not in:\n{err}");
    }
}

#[test]
fn run_names_the_ca_file_librdkafka_refuses_with_one_audit_prefix() {
    // Well-formed PEM (so the checks before start-up accept it) whose body
    // is not a certificate: OpenSSL refuses it when the producer is made.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cfg = dir.path().join("scrubs.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {d}/data\nadmin: {{address: \"127.0.0.1:0\"}}\nsources:\n  in: {{type: stdin}}\naudit:\n  kafka:\n    brokers: 127.0.0.1:9\n    topic: t\n    spool_dir: {d}/data/spool\n    security: {{protocol: ssl, ca_file: {ca}}}\n  select: {{contains: [AUDIT]}}\n",
            d = dir.path().display(),
            ca = ca.display()
        ),
    )
    .unwrap();
    let (_, err, code) = scrubs_without(&["run", "--config", cfg.to_str().unwrap()], &[], b"");
    assert_eq!(code, 2, "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("scrubs: audit: "), "{err}");
    assert!(!err.contains("audit: audit:"), "{err}");
    assert!(
        last.contains(&format!("audit.kafka.security.ca_file: {}", ca.display())),
        "{err}"
    );
}

#[test]
fn run_says_on_stderr_when_the_builtin_pack_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("badge.yaml");
    std::fs::write(&rules, BADGE_RULE).unwrap();
    let cfg = dir.path().join("scrubs.yaml");
    let write = |builtin: bool| {
        std::fs::write(
            &cfg,
            format!(
                "data_dir: {d}/data\nadmin: {{address: \"127.0.0.1:0\"}}\nrules: {{builtin: {builtin}, files: [{r}]}}\nsources:\n  in: {{type: stdin}}\n",
                d = dir.path().display(),
                r = rules.display()
            ),
        )
        .unwrap()
    };
    write(false);
    let cfg_s = cfg.to_str().unwrap();
    let (_, err, code) = scrubs_without(&["run", "--config", cfg_s], &[], b"badge BDG-12345\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("the built-in HIPAA pack is off (rules.builtin: false)"),
        "{err}"
    );
    let (out, _, code) = scrubs_without(&["validate", "--config", cfg_s], &[], b"");
    assert_eq!(code, 0);
    assert!(out.contains("built-in HIPAA pack OFF"), "{out}");
    write(true);
    let (_, err, code) = scrubs_without(&["run", "--config", cfg_s], &[], b"badge BDG-12345\n");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("pack is off"), "{err}");
}
