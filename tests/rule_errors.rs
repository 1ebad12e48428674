//! Bad rule files give clear errors naming the file, the line and the rule,
//! all problems at once, and nothing starts.

use scrubs::{Engine, PseudonymKey, RuleSet};

fn problems(yaml: &str) -> Vec<String> {
    let err = match RuleSet::from_yaml("bad.yaml", yaml) {
        Err(e) => e,
        Ok(set) => match Engine::new(&set, PseudonymKey::ephemeral()) {
            Err(e) => e,
            Ok(_) => panic!("rules were accepted"),
        },
    };
    err.rule_problems().iter().map(|p| p.to_string()).collect()
}

/// Asserts that every one of `wanted` is in the problems (all of them
/// shown when one is missing).
fn assert_all_named(problems: &[String], wanted: &[&str]) {
    let all = problems.join("\n");
    for w in wanted {
        assert!(all.contains(w), "{w:?} not in:\n{all}");
    }
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let p = problems("rules:\n  - id: a\n    category: [unclosed\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("bad.yaml:"), "{p:?}");
}

#[test]
fn unknown_key_names_file_line_and_rule() {
    let p = problems(
        "rules:\n  - id: first\n    category: ssn\n    detector: {keys: [ssn]}\n  - id: second\n    category: ssn\n    detectr: {keys: [x]}\n",
    );
    // The misspelt key, at its line and column; then what its absence
    // means for the rule.
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("bad.yaml:7:5: rule 'second': unknown field `detectr`"),
        "{p:?}"
    );
    assert!(
        p[1].contains("rule 'second'") && p[1].contains("missing field `detector`"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"rules:
  - id: bad-regex
    category: ssn
    detector: {regex: '(\d{3}'}
  - id: bad-category
    category: secrets
    detector: {keys: [x]}
  - id: bad-validator
    category: ssn
    validator: crc32
    detector: {numeric: {shapes: ["ddd"]}}
  - id: bad-shape
    category: ssn
    detector: {numeric: {shapes: ["dd-xx"]}}
"#,
    );
    assert_all_named(
        &p,
        &[
            "bad.yaml:4: rule 'bad-regex': regex does not compile: unclosed group",
            "bad.yaml:6: rule 'bad-category': unknown category 'secrets'",
            "bad.yaml:10: rule 'bad-validator': unknown validator 'crc32'",
        ],
    );
    // The shape is checked when the engine is built, once the structural
    // problems (the three above) are fixed.
    assert_eq!(p.len(), 3, "{}", p.join("\n"));
    let p = problems(
        r#"rules:
  - id: bad-shape
    category: ssn
    detector: {numeric: {shapes: ["dd-xx"]}}
"#,
    );
    assert_all_named(&p, &["bad.yaml:2: rule 'bad-shape': shape 'dd-xx'"]);
}

#[test]
fn oversized_regex_is_refused() {
    let p = problems(
        "rules:\n  - id: huge\n    category: ssn\n    detector: {regex: '(?:\\w{1000}){1000}'}\n",
    );
    assert!(
        p[0].contains("rule 'huge'") && p[0].contains("too large"),
        "{p:?}"
    );
}

#[test]
fn empty_matching_regex_and_duplicate_ids_are_refused() {
    let p = problems(
        "rules:\n  - id: a\n    category: ssn\n    detector: {regex: 'x*'}\n  - id: a\n    category: ssn\n    detector: {keys: [k]}\n",
    );
    assert_all_named(&p, &["duplicate rule id"]);
}

#[test]
fn missing_dictionary_is_named() {
    let p = problems("rules:\n  - id: d\n    category: diagnosis\n    detector: {dictionary: no-such-file.txt}\n");
    assert!(
        p[0].contains("rule 'd'") && p[0].contains("no-such-file.txt"),
        "{p:?}"
    );
}

#[test]
fn the_builtin_pack_examples_pass() {
    let e = Engine::builtin().unwrap();
    let (ran, failures) = e.check_examples();
    assert!(ran > 100, "only {ran} examples ran");
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---- the binary: `scrubs rules test` on files and directories ---------------

/// Runs `scrubs ARGS` in `dir`: stdout, stderr and the exit code.
fn scrubs_in(dir: &std::path::Path, args: &[&str]) -> (String, String, i32) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A temporary directory holding `files` (name, contents).
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The problem lines of a refused rule set (stderr, after the count line).
fn problem_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(str::trim)
        .collect()
}

#[test]
fn cli_reports_unknown_field_bad_regex_category_and_validator_of_one_file_at_once() {
    let dir = dir_with(&[(
        "custom.yaml",
        r#"rules:
  - id: unknown-field
    category: ssn
    detector: {keys: [member_ssn]}
    colour: blue
  - id: bad-regex
    category: ssn
    detector:
      regex: '(\d{3}'
  - id: bad-category
    category: secrets
    detector: {keys: [vault_token]}
  - id: bad-validator
    category: ssn
    detector: {numeric: {shapes: ["ddd"]}}
    validator: crc32
"#,
    )]);
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "custom.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("scrubs: 4 problem(s) in rule files"),
        "{err}"
    );
    let p = problem_lines(&err);
    assert_eq!(p.len(), 4, "{err}");
    assert!(
        p[0].starts_with("custom.yaml:5:5: rule 'unknown-field': unknown field `colour`"),
        "{err}"
    );
    assert!(
        p[1].starts_with("custom.yaml:9: rule 'bad-regex': regex does not compile"),
        "{err}"
    );
    assert!(
        p[2].starts_with("custom.yaml:11: rule 'bad-category': unknown category 'secrets'"),
        "{err}"
    );
    assert!(
        p[3].starts_with("custom.yaml:16: rule 'bad-validator': unknown validator 'crc32'"),
        "{err}"
    );
}

#[test]
fn cli_bad_regex_says_why_and_where_in_the_pattern() {
    let dir = dir_with(&[(
        "custom.yaml",
        r#"rules:
  - id: open-group
    category: other_identifier
    detector:
      regex: 'member-(\d{6}'
  - id: bad-class
    category: other_identifier
    detector:
      regex: ['ok-\d{4}', 'x[z-a]']
  - id: bad-token
    category: other_identifier
    detector:
      token: {pattern: 'AB(?P<v'}
"#,
    )]);
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "custom.yaml"]);
    assert_eq!(code, 2, "{err}");
    let p = problem_lines(&err);
    assert_eq!(p.len(), 3, "{err}");
    assert_eq!(
        p[0],
        "custom.yaml:5: rule 'open-group': regex does not compile: unclosed group, at character 8 of the pattern"
    );
    assert_eq!(
        p[1],
        "custom.yaml:9: rule 'bad-class': regex does not compile: invalid character class range, the start must be <= the end, at character 3 of the pattern"
    );
    assert!(
        p[2].starts_with(
            "custom.yaml:13: rule 'bad-token': regex does not compile: unclosed capture group name"
        ),
        "{err}"
    );
    assert!(!err.contains("error parsing pattern"), "{err}");
}

#[test]
fn cli_yaml_syntax_error_names_the_broken_rule_with_line_and_column() {
    // A flow mapping left open in rule 'a': libyaml notices at rule 'b'
    // (line 5) and says where the mapping began (line 4), which is 'a'.
    let dir = dir_with(&[
        (
            "open-brace.yaml",
            "rules:\n  - id: a\n    category: ssn\n    detector: {keys: [a]\n  - id: b\n    category: ssn\n    detector: {keys: [b]}\n",
        ),
        // An unclosed quote in rule 'b': noticed at the end of the file,
        // after rule 'c'.
        (
            "open-quote.yaml",
            "rules:\n  - id: a\n    category: ssn\n    detector: {keys: [a]}\n  - id: b\n    category: \"ssn\n    detector: {keys: [b]}\n  - id: c\n    category: ssn\n    detector: {keys: [c]}\n",
        ),
        // Broken before any rule: no rule is named.
        (
            "no-rule.yaml",
            "rules: [\n  - id: a\n    category: ssn\n",
        ),
    ]);
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "open-brace.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        problem_lines(&err),
        ["open-brace.yaml:5:3: rule 'a': did not find expected ',' or '}', while parsing a flow mapping at line 4 column 15"]
    );
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "open-quote.yaml"]);
    assert_eq!(code, 2, "{err}");
    let p = problem_lines(&err);
    assert_eq!(p.len(), 1, "{err}");
    assert!(
        p[0].starts_with("open-quote.yaml:11:1: rule 'b': "),
        "{err}"
    );
    assert!(p[0].contains("quoted scalar at line 6 column 15"), "{err}");
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "no-rule.yaml"]);
    assert_eq!(code, 2, "{err}");
    let p = problem_lines(&err);
    assert_eq!(p.len(), 1, "{err}");
    assert!(p[0].starts_with("no-rule.yaml:"), "{err}");
    assert!(!p[0].contains("rule '"), "names a rule: {err}");
    // Line and column.
    let loc: Vec<&str> = p[0].split(':').take(3).collect();
    assert!(
        loc[1].parse::<usize>().is_ok() && loc[2].parse::<usize>().is_ok(),
        "no line and column: {err}"
    );
}

#[test]
fn cli_validator_error_points_at_the_validator_line() {
    let dir = dir_with(&[(
        "custom.yaml",
        "rules:\n  - id: member\n    description: A member number.\n    category: health_plan_number\n    detector:\n      numeric: {shapes: [\"ddddddd\"]}\n    context: {words: [member]}\n    validator: crc32\n",
    )]);
    let (_, err, code) = scrubs_in(dir.path(), &["rules", "test", "custom.yaml"]);
    assert_eq!(code, 2, "{err}");
    let p = problem_lines(&err);
    assert_eq!(p.len(), 1, "{err}");
    assert!(
        p[0].starts_with("custom.yaml:8: rule 'member': unknown validator 'crc32'"),
        "{err}"
    );
}

#[test]
fn cli_rules_test_dir_reads_every_file_and_reports_a_bad_regex() {
    let dir = dir_with(&[
        (
            "a-good.yaml",
            "rules:\n  - id: member\n    category: health_plan_number\n    detector: {keys: [member_no]}\n    examples: {redact: ['member_no=5'], keep: ['member=ok']}\n",
        ),
        (
            "b-bad-regex.yaml",
            "rules:\n  - id: broken\n    category: other_identifier\n    detector:\n      regex: 'id-(\\d+'\n",
        ),
        (
            "c-bad-category.yml",
            "rules:\n  - id: other\n    category: secrets\n    detector: {keys: [vault_token]}\n",
        ),
    ]);
    let (out, err, code) = scrubs_in(dir.path(), &["rules", "test", "."]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("b-bad-regex.yaml:5: rule 'broken': regex does not compile: unclosed group"),
        "{err}"
    );
    assert!(
        err.contains("c-bad-category.yml:3: rule 'other': unknown category"),
        "{err}"
    );
    // Without the bad files, the good one's examples run (with the pack's).
    std::fs::remove_file(dir.path().join("b-bad-regex.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("c-bad-category.yml")).unwrap();
    let (out, err, code) = scrubs_in(dir.path(), &["rules", "test", "--no-builtin", "."]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), "rules: 2 passed, 0 failed", "{out}");
}

#[test]
fn cli_rules_test_warns_about_rules_without_examples_and_strict_fails() {
    let dir = dir_with(&[(
        "custom.yaml",
        "rules:\n  - id: tested\n    category: health_plan_number\n    detector: {keys: [member_no]}\n    examples: {redact: ['member_no=5']}\n  - id: untested\n    category: other_identifier\n    detector: {keys: [badge_no]}\n",
    )]);
    let (out, err, code) = scrubs_in(
        dir.path(),
        &["rules", "test", "--no-builtin", "custom.yaml"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning custom.yaml:6: rule 'untested' has no examples"),
        "{out}"
    );
    assert!(!out.contains("rule 'tested' has no"), "{out}");
    assert!(
        out.contains("rules: 1 passed, 0 failed; 1 rule(s) without examples"),
        "{out}"
    );
    let (out, err, code) = scrubs_in(
        dir.path(),
        &["rules", "test", "--strict", "--no-builtin", "custom.yaml"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL custom.yaml:6: rule 'untested' has no examples"),
        "{out}"
    );
}

/// CI runs this (it is part of `cargo test`): every rule of the built-in
/// pack has examples, and they all pass, under `rules test --strict`.
#[test]
fn cli_builtin_pack_passes_rules_test_strict() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, code) = scrubs_in(dir.path(), &["rules", "test", "--strict"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("without examples"), "{out}");
    let passed: usize = out
        .trim()
        .strip_prefix("rules: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {out}"));
    assert!(passed > 100, "{out}");
}

#[test]
fn anchors_shared_between_rules_still_load() {
    // A valid file is read whole, so YAML anchors across rules keep working;
    // a problem is still located at its own line.
    let p = problems(
        "rules:\n  - id: a\n    category: ssn\n    context: &ctx {words: [member]}\n    detector: {keys: [a_no]}\n  - id: b\n    category: ssn\n    context: *ctx\n    detector: {keys: [b_no]}\n    validator: crc32\n",
    );
    assert_eq!(
        p,
        [format!(
            "bad.yaml:10: rule 'b': unknown validator 'crc32' (expected one of: {})",
            scrubs::Validator::NAMES.join(", ")
        )]
    );
}

#[test]
fn truncated_and_mangled_rule_files_never_panic_the_loader() {
    // Every prefix of a real rule file (cut at a character boundary), and
    // the same with each line's first dash removed: the loader answers with
    // problems naming the file, never a panic.
    let text = include_str!("../rules/hipaa/contact.yaml");
    let mangled: String = text
        .lines()
        .map(|l| l.replacen("- ", "  ", 1))
        .collect::<Vec<_>>()
        .join("\n");
    for source in [text, mangled.as_str()] {
        for cut in (0..source.len())
            .filter(|&c| source.is_char_boundary(c))
            .step_by(7)
        {
            if let Err(e) = RuleSet::from_yaml("cut.yaml", &source[..cut]) {
                assert!(
                    e.rule_problems().iter().all(|p| p.file == "cut.yaml"),
                    "{e}"
                );
            }
        }
    }
}
