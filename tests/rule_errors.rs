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
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("bad.yaml:7"), "{p:?}");
    assert!(p[0].contains("rule 'second'"), "{p:?}");
    assert!(p[0].contains("unknown field `detectr`"), "{p:?}");
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
            "bad.yaml:5: rule 'bad-category': unknown category 'secrets'",
            "bad.yaml:8: rule 'bad-validator': unknown validator 'crc32'",
        ],
    );
    // Compilation problems come after structural ones are fixed; structural
    // ones are all reported together first.
    assert_eq!(p.len(), 2, "{}", p.join("\n"));
    let p = problems(
        r#"rules:
  - id: bad-regex
    category: ssn
    detector: {regex: '(\d{3}'}
  - id: bad-shape
    category: ssn
    detector: {numeric: {shapes: ["dd-xx"]}}
"#,
    );
    assert_all_named(
        &p,
        &[
            "bad.yaml:2: rule 'bad-regex': regex does not compile",
            "bad.yaml:5: rule 'bad-shape': shape 'dd-xx'",
        ],
    );
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
