//! Rule files: loading, validation and the built-in HIPAA pack.
//!
//! Loading parses YAML and resolves dictionary files; it does not compile
//! anything. Compilation happens once, in [`crate::Engine::new`], which reports
//! every bad pattern with its file, line and rule id.

mod category;
mod spec;

pub use category::Category;
pub(crate) use spec::*;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, RuleProblem};

/// The built-in HIPAA Safe Harbor pack, embedded in the binary so that
/// `scrubs redact` works with no files beside it. Paths are relative to
/// `rules/`.
const BUILTIN: &[(&str, &str)] = &[
    (
        "hipaa/names.yaml",
        include_str!("../../rules/hipaa/names.yaml"),
    ),
    (
        "hipaa/contact.yaml",
        include_str!("../../rules/hipaa/contact.yaml"),
    ),
    (
        "hipaa/government-ids.yaml",
        include_str!("../../rules/hipaa/government-ids.yaml"),
    ),
    (
        "hipaa/health-ids.yaml",
        include_str!("../../rules/hipaa/health-ids.yaml"),
    ),
    (
        "hipaa/financial.yaml",
        include_str!("../../rules/hipaa/financial.yaml"),
    ),
    (
        "hipaa/dates.yaml",
        include_str!("../../rules/hipaa/dates.yaml"),
    ),
    (
        "hipaa/geographic.yaml",
        include_str!("../../rules/hipaa/geographic.yaml"),
    ),
    (
        "hipaa/devices-vehicles.yaml",
        include_str!("../../rules/hipaa/devices-vehicles.yaml"),
    ),
    (
        "hipaa/network.yaml",
        include_str!("../../rules/hipaa/network.yaml"),
    ),
    (
        "hipaa/clinical.yaml",
        include_str!("../../rules/hipaa/clinical.yaml"),
    ),
    (
        "hipaa/names/first.txt",
        include_str!("../../rules/hipaa/names/first.txt"),
    ),
    (
        "hipaa/names/last.txt",
        include_str!("../../rules/hipaa/names/last.txt"),
    ),
    (
        "hipaa/names/ambiguous.txt",
        include_str!("../../rules/hipaa/names/ambiguous.txt"),
    ),
    (
        "hipaa/names/english.txt",
        include_str!("../../rules/hipaa/names/english.txt"),
    ),
    (
        "hipaa/conditions.txt",
        include_str!("../../rules/hipaa/conditions.txt"),
    ),
    (
        "hipaa/clinical_terms.txt",
        include_str!("../../rules/hipaa/clinical_terms.txt"),
    ),
];

/// Where a rule file came from, for resolving its dictionary paths.
#[derive(Clone, Debug)]
enum Origin {
    /// A file on disk; dictionary paths are relative to its folder.
    Disk(PathBuf),
    /// The embedded pack; dictionary paths are relative to this folder name.
    Builtin(&'static str),
}

/// A rule as loaded: its spec, where it was written, and its dictionaries.
#[derive(Debug)]
pub(crate) struct LoadedRule {
    pub spec: RuleSpec,
    pub file: Arc<str>,
    pub line: usize,
    origin: Origin,
}

impl LoadedRule {
    /// Reads a file named by this rule (a dictionary), relative to the rule file.
    pub fn read_relative(&self, rel: &str) -> Result<Cow<'static, str>, String> {
        match &self.origin {
            Origin::Builtin(dir) => {
                let want = format!("{dir}/{rel}");
                BUILTIN
                    .iter()
                    .find(|(p, _)| *p == want)
                    .map(|(_, text)| Cow::Borrowed(*text))
                    .ok_or_else(|| format!("file '{rel}' is not in the built-in pack"))
            }
            Origin::Disk(dir) => {
                let path = dir.join(rel);
                std::fs::read_to_string(&path)
                    .map(Cow::Owned)
                    .map_err(|e| format!("cannot read '{}': {e}", path.display()))
            }
        }
    }

    /// A problem located at this rule.
    pub fn problem(&self, message: impl Into<String>) -> RuleProblem {
        RuleProblem {
            file: self.file.to_string(),
            line: Some(self.line),
            rule: Some(self.spec.id.clone()),
            message: message.into(),
        }
    }
}

/// A set of rule files, parsed and checked for structure, not yet compiled.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) rules: Vec<LoadedRule>,
}

impl RuleSet {
    /// The built-in HIPAA Safe Harbor pack.
    pub fn builtin() -> Result<RuleSet, Error> {
        let mut set = RuleSet::default();
        let mut problems = Vec::new();
        for (path, text) in BUILTIN.iter().filter(|(p, _)| p.ends_with(".yaml")) {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            set.add_text(
                &format!("builtin:{path}"),
                text,
                Origin::Builtin(dir),
                &mut problems,
            );
        }
        set.finish(problems)
    }

    /// Loads rule files. A directory contributes every `*.yaml` / `*.yml`
    /// file directly inside it, in name order. All problems in all files are
    /// reported together.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<RuleSet, Error> {
        let mut set = RuleSet::default();
        let mut problems = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let files = match expand(path) {
                Ok(files) => files,
                Err(e) => {
                    problems.push(RuleProblem {
                        file: path.display().to_string(),
                        line: None,
                        rule: None,
                        message: e,
                    });
                    continue;
                }
            };
            for file in files {
                let name = file.display().to_string();
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                        set.add_text(&name, &text, Origin::Disk(dir), &mut problems);
                    }
                    Err(e) => problems.push(RuleProblem {
                        file: name,
                        line: None,
                        rule: None,
                        message: format!("cannot read: {e}"),
                    }),
                }
            }
        }
        set.finish(problems)
    }

    /// Loads rules from YAML text, as if read from a file named `name` in the
    /// current directory. Meant for tests and for rules held in config.
    pub fn from_yaml(name: &str, text: &str) -> Result<RuleSet, Error> {
        let mut set = RuleSet::default();
        let mut problems = Vec::new();
        set.add_text(name, text, Origin::Disk(PathBuf::from(".")), &mut problems);
        set.finish(problems)
    }

    /// Appends the rules of another set.
    pub fn extend(&mut self, other: RuleSet) -> Result<(), Error> {
        self.rules.extend(other.rules);
        let problems = duplicate_ids(&self.rules);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::rules(problems))
        }
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set holds no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn add_text(
        &mut self,
        name: &str,
        text: &str,
        origin: Origin,
        problems: &mut Vec<RuleProblem>,
    ) {
        let file: Arc<str> = Arc::from(name);
        let parsed: RuleFileSpec = match serde_yaml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                problems.push(RuleProblem {
                    file: name.to_string(),
                    line,
                    rule: line.and_then(|l| rule_id_before(text, l)),
                    message: strip_location(&e.to_string()),
                });
                return;
            }
        };
        for spec in parsed.rules {
            let line = rule_line(text, &spec.id).unwrap_or(1);
            self.rules.push(LoadedRule {
                spec,
                file: file.clone(),
                line,
                origin: origin.clone(),
            });
        }
    }

    fn finish(mut self, mut problems: Vec<RuleProblem>) -> Result<RuleSet, Error> {
        problems.extend(duplicate_ids(&self.rules));
        for rule in &self.rules {
            problems.extend(check_rule(rule));
        }
        if problems.is_empty() {
            // Stable order: file, then line.
            self.rules
                .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Ok(self)
        } else {
            Err(Error::rules(problems))
        }
    }
}

fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("directory holds no *.yaml rule file".into());
    }
    Ok(files)
}

fn duplicate_ids(rules: &[LoadedRule]) -> Vec<RuleProblem> {
    let mut seen = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for r in rules {
        if let Some((file, line)) = seen.insert(r.spec.id.as_str(), (&r.file, r.line)) {
            problems.push(r.problem(format!(
                "duplicate rule id (first defined at {file}:{line})"
            )));
        }
    }
    problems
}

/// Structural checks that need no compilation.
fn check_rule(rule: &LoadedRule) -> Vec<RuleProblem> {
    let spec = &rule.spec;
    let mut out = Vec::new();
    if spec.id.is_empty()
        || !spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        out.push(
            rule.problem("id must be non-empty and use only letters, digits, '.', '_' and '-'"),
        );
    }
    if Category::parse(&spec.category).is_none() {
        let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        out.push(rule.problem(format!(
            "unknown category '{}' (expected one of: {})",
            spec.category,
            all.join(", ")
        )));
    }
    let d = &spec.detector;
    let kinds = [
        d.regex.is_some(),
        d.keywords.is_some() || d.dictionary.is_some(),
        d.keys.is_some() || d.key_words.is_some(),
        d.numeric.is_some(),
        d.token.is_some(),
        d.names.is_some(),
        d.prose.is_some(),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds != 1 {
        out.push(rule.problem(
            "detector must have exactly one of: regex, keywords/dictionary, keys, numeric, token, names, prose",
        ));
    }
    if d.requires.is_some() && d.regex.is_none() {
        out.push(rule.problem("detector.requires only applies to regex detectors"));
    }
    // An empty literal would match everywhere with zero length, which the
    // literal pass does not expect (found by fuzz/rules_yaml).
    if d.requires.iter().flatten().any(|l| l.is_empty()) {
        out.push(rule.problem("detector.requires must not hold an empty string"));
    }
    if let Some(v) = &spec.validator {
        if crate::redact::Validator::parse(v).is_none() {
            out.push(rule.problem(format!(
                "unknown validator '{v}' (expected one of: {})",
                crate::redact::Validator::NAMES.join(", ")
            )));
        }
    }
    if let Some(n) = &d.numeric {
        if n.shapes.is_empty() && n.digits.is_none() {
            out.push(rule.problem("numeric detector needs shapes or digits"));
        }
        if let Some([lo, hi]) = n.digits {
            if lo == 0 || lo > hi || hi > 32 {
                out.push(
                    rule.problem("numeric.digits must be [min, max] with 1 <= min <= max <= 32"),
                );
            }
        }
    }
    if let Some(c) = &spec.context {
        if c.words.is_empty() {
            out.push(rule.problem("context.words must not be empty"));
        }
        if c.words.iter().any(|w| w.is_empty()) {
            out.push(rule.problem("context.words must not hold an empty string"));
        }
        if c.window == 0 || c.window > 4096 {
            out.push(rule.problem("context.window must be between 1 and 4096 bytes"));
        }
    }
    out
}

/// The 1-based line of `id: <id>` in the text.
fn rule_line(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| line_id(l) == Some(id))
        .map(|i| i + 1)
}

/// The id of the rule whose `id:` line comes last at or before `line`.
fn rule_id_before(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(line_id)
        .last()
        .map(str::to_string)
}

fn line_id(line: &str) -> Option<&str> {
    let t = line.trim_start().trim_start_matches("- ").trim_start();
    let rest = t.strip_prefix("id:")?.trim();
    Some(rest.trim_matches(|c| c == '"' || c == '\''))
}

/// serde_yaml appends "at line L column C"; the problem carries the line itself.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
