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
    (
        "hipaa/street_suffixes.txt",
        include_str!("../../rules/hipaa/street_suffixes.txt"),
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
    /// The line of each field written in block style (`validator`,
    /// `detector.regex`), so that a problem points at the line to change.
    fields: FieldLines,
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
            column: None,
            rule: Some(self.spec.id.clone()),
            message: message.into(),
        }
    }

    /// A problem located at one field of this rule (`validator`,
    /// `detector.regex`): the field's own line when it is written on a line
    /// of its own, else its parent's (`detector`), else the rule's.
    pub fn problem_at(&self, field: &str, message: impl Into<String>) -> RuleProblem {
        let mut path = field;
        let line = loop {
            if let Some((_, line)) = self.fields.iter().find(|(f, _)| f == path) {
                break *line;
            }
            match path.rsplit_once('.') {
                Some((parent, _)) => path = parent,
                None => break self.line,
            }
        };
        RuleProblem {
            line: Some(line),
            ..self.problem(message)
        }
    }
}

/// A rule without examples (see [`RuleSet::without_examples`]).
#[derive(Debug, Clone)]
pub struct UntestedRule {
    /// The rule id.
    pub id: String,
    /// The file it is in.
    pub file: String,
    /// The line of its id.
    pub line: usize,
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
                        column: None,
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
                        column: None,
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

    /// The rules that have no example to test them, in file and line order.
    pub fn without_examples(&self) -> Vec<UntestedRule> {
        self.rules
            .iter()
            .filter(|r| {
                r.spec
                    .examples
                    .as_ref()
                    .is_none_or(|e| e.redact.is_empty() && e.keep.is_empty())
            })
            .map(|r| UntestedRule {
                id: r.spec.id.clone(),
                file: r.file.to_string(),
                line: r.line,
            })
            .collect()
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
        let lines: Vec<&str> = text.lines().collect();
        let blocks = rule_blocks(&lines);
        // Syntax first: a file that is not YAML has no rules to look at.
        let doc: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(yaml_problem(name, &lines, &blocks, &e));
                return;
            }
        };
        // Rules are located by the layout of a block-style list (one item
        // per rule), when it agrees with the YAML.
        let items = doc
            .get("rules")
            .and_then(serde_yaml::Value::as_sequence)
            .map(Vec::len);
        let only_rules = doc.as_mapping().is_some_and(|m| m.len() == 1);
        let laid_out = only_rules && !blocks.is_empty() && items == Some(blocks.len());
        match serde_yaml::from_str::<RuleFileSpec>(text) {
            Ok(parsed) => {
                for (i, spec) in parsed.rules.into_iter().enumerate() {
                    let (line, fields) = match blocks.get(i).filter(|_| laid_out) {
                        Some(block) => block_lines(&lines, block),
                        None => (rule_line(text, &spec.id).unwrap_or(1), Vec::new()),
                    };
                    self.rules.push(LoadedRule {
                        spec,
                        file: file.clone(),
                        line,
                        origin: origin.clone(),
                        fields,
                    });
                }
            }
            // Each rule is then read on its own, so that a problem in one
            // rule (an unknown field, a value of the wrong type) does not
            // hide the problems of the others. That needs the text of each
            // rule, which a block-style list gives; a file in another layout
            // (a flow-style list) stops at its first such problem.
            Err(e) if !laid_out => problems.push(yaml_problem(name, &lines, &blocks, &e)),
            Err(_) => {
                for block in &blocks {
                    if let Some((spec, line, fields)) = parse_block(name, &lines, block, problems) {
                        self.rules.push(LoadedRule {
                            spec,
                            file: file.clone(),
                            line,
                            origin: origin.clone(),
                            fields,
                        });
                    }
                }
            }
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
        out.push(rule.problem_at(
            "id",
            "id must be non-empty and use only letters, digits, '.', '_' and '-'",
        ));
    }
    if Category::parse(&spec.category).is_none() {
        let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        out.push(rule.problem_at(
            "category",
            format!(
                "unknown category '{}' (expected one of: {})",
                spec.category,
                all.join(", ")
            ),
        ));
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
        d.address.is_some(),
        d.ipv6.is_some(),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds != 1 {
        out.push(rule.problem_at(
            "detector",
            "detector must have exactly one of: regex, keywords/dictionary, keys, numeric, token, names, prose, address, ipv6",
        ));
    }
    if d.requires.is_some() && d.regex.is_none() {
        out.push(rule.problem_at(
            "detector.requires",
            "detector.requires only applies to regex detectors",
        ));
    }
    // An empty literal would match everywhere with zero length, which the
    // literal pass does not expect (found by fuzz/rules_yaml).
    if d.requires.iter().flatten().any(|l| l.is_empty()) {
        out.push(rule.problem_at(
            "detector.requires",
            "detector.requires must not hold an empty string",
        ));
    }
    if let Some(v) = &spec.validator {
        if crate::redact::Validator::parse(v).is_none() {
            out.push(rule.problem_at(
                "validator",
                format!(
                    "unknown validator '{v}' (expected one of: {})",
                    crate::redact::Validator::NAMES.join(", ")
                ),
            ));
        }
    }
    // A pattern that does not parse is reported here, with the other
    // problems of the file; the engine reports what only compiling shows
    // (a pattern too large, one that matches the empty string).
    if let Some(re) = &d.regex {
        for pattern in re.to_vec() {
            if let Some(p) = regex_syntax_problem(&pattern) {
                out.push(rule.problem_at("detector.regex", p));
            }
        }
    }
    if let Some(t) = &d.token {
        if let Some(p) = regex_syntax_problem(&t.pattern) {
            out.push(rule.problem_at("detector.token", p));
        }
    }
    if let Some(n) = &d.numeric {
        if n.shapes.is_empty() && n.digits.is_none() {
            out.push(rule.problem_at(
                "detector.numeric",
                "numeric detector needs shapes or digits",
            ));
        }
        if let Some([lo, hi]) = n.digits {
            if lo == 0 || lo > hi || hi > 32 {
                out.push(rule.problem_at(
                    "detector.numeric",
                    "numeric.digits must be [min, max] with 1 <= min <= max <= 32",
                ));
            }
        }
    }
    if let Some(c) = &spec.context {
        if c.words.is_empty() {
            out.push(rule.problem_at("context", "context.words must not be empty"));
        }
        if c.words.iter().any(|w| w.is_empty()) {
            out.push(rule.problem_at("context", "context.words must not hold an empty string"));
        }
        if c.window == 0 || c.window > 4096 {
            out.push(rule.problem_at("context", "context.window must be between 1 and 4096 bytes"));
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

fn line_id(line: &str) -> Option<&str> {
    let t = line.trim_start().trim_start_matches("- ").trim_start();
    let rest = t.strip_prefix("id:")?.trim();
    Some(rest.trim_matches(|c| c == '"' || c == '\''))
}

/// One item of the block-style `rules:` list: lines `start..end` (0-based),
/// with the item's `-` at column `dash` of line `start`.
#[derive(Debug)]
struct Block {
    start: usize,
    end: usize,
    dash: usize,
}

/// The items of a block-style `rules:` list at the top of the file, found
/// from the layout alone, so that it works on text that is not valid YAML
/// (to name the rule a syntax error is in). Empty when the list is not in
/// block style.
fn rule_blocks(lines: &[&str]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let Some(top) = lines.iter().position(|l| l.starts_with("rules:")) else {
        return blocks;
    };
    let rest = lines[top]["rules:".len()..].trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return blocks;
    }
    let mut dash = None;
    for (i, line) in lines.iter().enumerate().skip(top + 1) {
        let t = line.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let col = line.len() - t.len();
        let item = t == "-" || t.starts_with("- ") || t.starts_with("-\t");
        match dash {
            None if item => dash = Some(col),
            Some(d) if item && col == d => {}
            Some(d) if col > d => continue,
            // Another top-level key, or not a block list at all.
            _ => {
                if let Some(last) = blocks.last_mut() {
                    last.end = i;
                }
                break;
            }
        }
        if let Some(last) = blocks.last_mut() {
            last.end = i;
        }
        blocks.push(Block {
            start: i,
            end: lines.len(),
            dash: col,
        });
    }
    blocks
}

/// The line (1-based) of each field of a rule, by path (`detector.regex`).
type FieldLines = Vec<(String, usize)>;

/// How many problems one rule may report before the rest of it is skipped
/// (each unknown field is reported, then removed and the rule read again).
const MAX_PROBLEMS_PER_RULE: usize = 16;

/// Reads one rule of a block-style list: its spec, the line of its id and
/// the lines of its fields. Every unknown field is reported (and skipped);
/// any other problem ends the rule with that problem.
fn parse_block(
    file: &str,
    lines: &[&str],
    block: &Block,
    problems: &mut Vec<RuleProblem>,
) -> Option<(RuleSpec, usize, FieldLines)> {
    let mut text = block_text(lines, block);
    let fields = field_lines(&text, block.start);
    let id_line = fields.iter().find(|(f, _)| f == "id").map(|(_, l)| *l);
    let id = id_line.and_then(|l| line_id(&text[l - 1]).map(str::to_string));
    let line = id_line.unwrap_or(block.start + 1);
    for _ in 0..MAX_PROBLEMS_PER_RULE {
        let e = match serde_yaml::from_str::<RuleSpec>(&text.join("\n")) {
            Ok(spec) => return Some((spec, line, fields)),
            Err(e) => e,
        };
        let message = strip_location(&e.to_string());
        let location = e.location();
        problems.push(RuleProblem {
            file: file.to_string(),
            line: Some(location.as_ref().map_or(line, |l| l.line())),
            column: location.as_ref().map(|l| l.column()),
            rule: id.clone(),
            message: message.clone(),
        });
        // An unknown field that starts its line is removed with its value,
        // and the rule is read again for its other problems. One written
        // inline (`detector: {keys: [a], bogus: 1}`) cannot be cut out of
        // its line without parsing it, so the rule stops there.
        let l = location.filter(|_| message.contains("unknown field"))?;
        let row = l.line().checked_sub(1)?;
        let col = l.column().checked_sub(1)?;
        let starts_line = text.get(row).is_some_and(|t| {
            t.len() > col
                && t.as_bytes()[..col].iter().all(|b| *b == b' ')
                && t.as_bytes()[col] != b' '
        });
        if !starts_line {
            return None;
        }
        text[row].clear();
        for t in text.iter_mut().skip(row + 1) {
            let body = t.trim_start_matches(' ');
            if !body.is_empty() && !body.starts_with('#') && t.len() - body.len() <= col {
                break;
            }
            t.clear();
        }
    }
    None
}

/// A rule's text at its own lines and columns: the lines before it are left
/// empty and the item's `-` becomes a space, so the rule reads as a mapping
/// indented like its first key, and every location serde_yaml reports is a
/// location in the file.
fn block_text(lines: &[&str], block: &Block) -> Vec<String> {
    let mut text: Vec<String> = vec![String::new(); block.start];
    for (i, line) in lines[block.start..block.end].iter().enumerate() {
        let mut line = line.to_string();
        if i == 0 {
            // The dash is ASCII at a byte offset counted over spaces.
            line.replace_range(block.dash..block.dash + 1, " ");
        }
        text.push(line);
    }
    text
}

/// The line of a rule (its `id:` line, else the item's first line) and the
/// lines of its fields.
fn block_lines(lines: &[&str], block: &Block) -> (usize, FieldLines) {
    let fields = field_lines(&block_text(lines, block), block.start);
    let line = fields
        .iter()
        .find(|(f, _)| f == "id")
        .map_or(block.start + 1, |(_, l)| *l);
    (line, fields)
}

/// The line (1-based) of each field of a rule written on a line of its own:
/// the rule's own keys (`validator`) and their children (`detector.regex`).
/// `text` holds the rule at its lines in the file, from `start` on.
fn field_lines(text: &[String], start: usize) -> FieldLines {
    let mut out: FieldLines = Vec::new();
    let mut key_col = None;
    // The current top-level key and the column of its children.
    let mut parent: Option<(String, Option<usize>)> = None;
    for (i, line) in text.iter().enumerate().skip(start) {
        let t = line.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let col = line.len() - t.len();
        let Some(key) = key_of(t) else { continue };
        let key_col = *key_col.get_or_insert(col);
        if col == key_col {
            out.push((key.to_string(), i + 1));
            parent = Some((key.to_string(), None));
        } else if col > key_col {
            if let Some((p, child_col)) = &mut parent {
                if *child_col.get_or_insert(col) == col {
                    out.push((format!("{p}.{key}"), i + 1));
                }
            }
        }
    }
    out
}

/// The key a `key: value` (or `key:`) line starts with.
fn key_of(t: &str) -> Option<&str> {
    let end = t.find(':')?;
    let key = &t[..end];
    let after = &t[end + 1..];
    let is_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (is_key && (after.is_empty() || after.starts_with([' ', '\t']))).then_some(key)
}

/// A problem for a YAML error in a whole file: its line and column, and the
/// rule it is in. libyaml reports some errors where it noticed them (the
/// next rule, or the end of the file) and says where the broken part began
/// (`while scanning a quoted scalar at line 6 column 15`); the rule that
/// holds the beginning is the one to name.
fn yaml_problem(
    file: &str,
    lines: &[&str],
    blocks: &[Block],
    e: &serde_yaml::Error,
) -> RuleProblem {
    let message = e.to_string();
    let location = e.location();
    let origin = began_at(&message).or(location.as_ref().map(|l| l.line()));
    let rule = origin.and_then(|line| {
        let row = line.checked_sub(1)?;
        let b = blocks.iter().find(|b| (b.start..b.end).contains(&row))?;
        lines[b.start..b.end]
            .iter()
            .find_map(|l| line_id(l))
            .map(str::to_string)
    });
    RuleProblem {
        file: file.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        rule,
        message: strip_location(&message),
    }
}

/// The line in libyaml's `, while parsing X at line L column C`.
fn began_at(message: &str) -> Option<usize> {
    let (_, context) = message.split_once(", while ")?;
    let (_, at) = context.split_once(" at line ")?;
    at.split(' ').next()?.parse().ok()
}

/// serde_yaml says where an error is with "at line L column C"; the problem
/// carries the line and column itself. The location of the part where the
/// error began (", while parsing a flow mapping at line 4 column 15") stays.
fn strip_location(msg: &str) -> String {
    let Some(i) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[i + " at line ".len()..];
    let mut words = rest.splitn(4, ' ');
    let (line, col_word, col) = (words.next(), words.next(), words.next());
    let is_location = line.is_some_and(|w| w.parse::<usize>().is_ok())
        && col_word == Some("column")
        && col.is_some_and(|w| w.trim_end_matches(',').parse::<usize>().is_ok());
    if !is_location {
        return msg.to_string();
    }
    let tail = words.next().map_or(String::new(), |t| format!(" {t}"));
    let comma = if col.is_some_and(|w| w.ends_with(',')) {
        ","
    } else {
        ""
    };
    format!("{}{comma}{tail}", &msg[..i])
}

/// A regex syntax error in a sentence: what is wrong and where in the
/// pattern (`unclosed group, at character 1 of the pattern`).
fn describe_regex_error(e: &regex_syntax::Error) -> String {
    let (kind, span) = match e {
        regex_syntax::Error::Parse(e) => (e.kind().to_string(), *e.span()),
        regex_syntax::Error::Translate(e) => (e.kind().to_string(), *e.span()),
        _ => return "the pattern is not a valid regex".into(),
    };
    let at = span.start;
    if at.line > 1 {
        format!(
            "{kind}, at line {} character {} of the pattern",
            at.line, at.column
        )
    } else {
        format!("{kind}, at character {} of the pattern", at.column)
    }
}

/// Parses a pattern as the engine compiles it (bytes, ASCII classes), so
/// that a syntax error is reported with the loader's other problems.
fn regex_syntax_problem(pattern: &str) -> Option<String> {
    let config = regex_automata::util::syntax::Config::new()
        .unicode(false)
        .utf8(false);
    regex_automata::util::syntax::parse_with(pattern, &config)
        .err()
        .map(|e| format!("regex does not compile: {}", describe_regex_error(&e)))
}
