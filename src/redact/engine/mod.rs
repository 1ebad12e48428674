//! The compiled engine: the rules as compiled, [`Engine::new`], and the
//! engine's public API. A line is read by the detection passes in
//! `detect.rs`, written out by `rewrite.rs`, with the per-thread working
//! memory of `scratch.rs`.

mod detect;
mod rewrite;
mod scratch;

use scratch::Mention;
pub use scratch::Scratch;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use regex_automata::meta;
use regex_automata::util::syntax;
use regex_automata::Input;

use super::address::Streets;
use super::literals::LiteralMatcher;
use super::names::{self, BuildFx, Names};
use super::numeric::{NumToken, NumericMatcher};
use super::prose::Prose;
use super::pseudonym::PseudonymKey;
use super::simd::LineMasks;
use super::structure::{self, normalise_key, MAX_KEY};
use super::validate::Validator;
use crate::error::{Error, RuleProblem};
use crate::rules::{
    ActionSpec, Category, ContextSide, ExampleSpec, ExamplesSpec, RuleSet, SimpleAction,
};
use scratch::KeyCache;

/// The compiled size limit for one regex (and for the union of all).
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// What replaces a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `[REDACTED:TAG]`.
    Label,
    /// `[TAG:8 hex digits]`, a keyed HMAC of the normalised value.
    Pseudonym,
    /// Letters and digits become `*` except the last `keep_last`.
    Mask { keep_last: usize },
    /// The value is removed (structured fields are emptied).
    DropField,
}

impl Rule {
    /// Whether the rule's values are free text, which runs to a delimiter.
    fn free_text(&self) -> bool {
        matches!(self.category, Category::ClinicalText | Category::Diagnosis)
    }
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Label => "label",
            Action::Pseudonym => "pseudonym",
            Action::Mask { .. } => "mask",
            Action::DropField => "drop_field",
        }
    }
}

/// A rule as compiled, without its patterns.
#[derive(Debug)]
struct Rule {
    id: String,
    description: String,
    category: Category,
    action: Action,
    validator: Option<Validator>,
    window: usize,
    side: ContextSide,
    has_context: bool,
    /// For regex rules with a `value` group: the rule's own regex, run with
    /// captures on a match to find the part to redact, and the group's index.
    value_regex: Option<(meta::Regex, usize)>,
    /// Ids of the literals that gate this regex rule.
    triggers: Vec<u32>,
    /// Normalised keys whose values are never this rule's (`exclude_keys`).
    exclude: Vec<Box<[u8]>>,
    /// For a key rule with context: the context words, lower case, one of
    /// which the line must mention anywhere.
    line_words: Vec<Box<[u8]>>,
    /// For a rule with `line_words`: its slot in [`Scratch`]'s per-line
    /// record of which rules' words the line mentions (a line is searched
    /// for a rule's words once, however many of its keys the line holds).
    mention_slot: usize,
    detector: &'static str,
    file: Arc<str>,
    line: usize,
    examples: Option<ExamplesSpec>,
}

/// Public facts about one rule, for `scrubs rules list` and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo<'e> {
    pub id: &'e str,
    pub description: &'e str,
    pub category: Category,
    pub action: &'static str,
    pub detector: &'static str,
    pub file: &'e str,
    pub line: usize,
}

#[derive(Debug, Default)]
struct LiteralUse {
    /// Keyword and context patterns only count on word boundaries.
    keyword_rules: Vec<u32>,
    context_rules: Vec<u32>,
    trigger: bool,
    /// The regex rules this literal gates (`requires`).
    gated_rules: Vec<u32>,
}

/// The literals of every rule, deduplicated case-insensitively, with what
/// each one means to which rules.
#[derive(Default)]
struct LiteralTable {
    literals: Vec<String>,
    index: HashMap<String, usize>,
    uses: Vec<LiteralUse>,
}

impl LiteralTable {
    fn add(&mut self, lit: &str) -> (usize, &mut LiteralUse) {
        let lower = lit.to_ascii_lowercase();
        let i = match self.index.get(&lower) {
            Some(&i) => i,
            None => {
                self.literals.push(lower.clone());
                self.uses.push(LiteralUse::default());
                self.index.insert(lower, self.uses.len() - 1);
                self.uses.len() - 1
            }
        };
        (i, &mut self.uses[i])
    }
}

#[derive(Debug)]
struct TokenRule {
    rule: u32,
    regex: meta::Regex,
    min: usize,
    max: usize,
}

/// Strength of a finding, for overlap resolution: a structured key outranks
/// context, which outranks a bare pattern.
const STRENGTH_KEY: u8 = 3;
const STRENGTH_CONTEXT: u8 = 2;
const STRENGTH_PLAIN: u8 = 1;

#[derive(Clone, Copy, Debug)]
struct Finding {
    start: usize,
    end: usize,
    rule: u32,
    strength: u8,
    /// Write the replacement as a JSON string (it replaces a non-string).
    quote: bool,
}

impl Finding {
    /// A value that a key names for `rule` (`ssn=...`, an HL7 field, a
    /// keyed JSON string): the strongest kind, written as it stood.
    fn keyed(start: usize, end: usize, rule: u32) -> Finding {
        Finding {
            start,
            end,
            rule,
            strength: STRENGTH_KEY,
            quote: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Hit {
    pattern: u32,
    start: usize,
    end: usize,
}

/// Per-line working memory for one detection run.
#[derive(Debug, Default)]
struct State {
    hits: Vec<Hit>,
    /// One bit per rule: a context word of that rule occurred on the line.
    /// Sized on first use, so it does not allocate afterwards.
    context_seen: Vec<u64>,
    /// One bit per rule: a literal that gates that regex rule occurred.
    gate_seen: Vec<u64>,
    /// `hits` is in order of start: true once the literal pass has ended
    /// (it sorts them), and while it reads words, which come in order.
    hits_sorted: bool,
    /// The longest hit on the line, in bytes.
    longest_hit: usize,
    findings: Vec<Finding>,
    triggered: bool,
    /// The byte classes of the line, computed by the literal pass and read
    /// by the tokenizer after it.
    masks: LineMasks,
}

/// The outcome of redacting a structured field.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldResult<'a> {
    /// The value, redacted where needed.
    Value(Cow<'a, str>),
    /// The field's rule says to drop it.
    Drop,
}

/// A rule example that did not behave as written.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    pub rule: String,
    pub file: String,
    pub line: usize,
    /// "redact" or "keep".
    pub kind: &'static str,
    /// The example's index within its list.
    pub index: usize,
    pub message: String,
}

/// The compiled rule set. Cheap to share across threads behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    literals: LiteralMatcher,
    /// What each literal of `literals` means to which rules.
    literal_uses: Vec<LiteralUse>,
    keys: HashMap<Box<[u8]>, u32, BuildFx>,
    /// The words of `key_words` entries, and the entries as word-id sets.
    key_word_ids: HashMap<Box<[u8]>, u32, BuildFx>,
    key_words: Vec<(Vec<u32>, u32)>,
    /// For each key word id, the entries of `key_words` that contain it.
    key_word_entries: Vec<Vec<u32>>,
    numeric: NumericMatcher,
    tokens: Vec<TokenRule>,
    /// For each token length (patterns match at most 64 bytes), bit `k`
    /// set when `tokens[k]` (of the first 64) accepts that length.
    tokens_by_len: Box<[u64; 65]>,
    token_min: usize,
    token_max: usize,
    names: Option<Names>,
    /// Keys under which a value belongs to a rule only when it looks the
    /// part (the names rule's and the prose rule's `keys`), normalised, with
    /// that rule.
    weak_keys: HashMap<Box<[u8]>, u32, BuildFx>,
    prose: Option<Prose>,
    streets: Option<Streets>,
    /// The IPv6 rule, found by the tokenizer.
    ipv6: Option<u32>,
    regex: Option<meta::Regex>,
    /// The rules of each pattern of `regex`. Rules with the same pattern
    /// (a context rule and a validator rule over one shape) share it, and a
    /// match is offered to each: the union search reports one pattern per
    /// span, so a second copy of a pattern would never match.
    regex_rules: Vec<Vec<u32>>,
    regex_always: bool,
    key: PseudonymKey,
}

impl Engine {
    /// The built-in HIPAA pack with an ephemeral pseudonym key.
    pub fn builtin() -> Result<Engine, Error> {
        Engine::new(&RuleSet::builtin()?, PseudonymKey::ephemeral())
    }

    /// Compiles a rule set. Every problem in every rule is reported at once,
    /// each with its file, line and rule id.
    pub fn new(set: &RuleSet, key: PseudonymKey) -> Result<Engine, Error> {
        let mut problems: Vec<RuleProblem> = Vec::new();
        let mut rules = Vec::new();
        let mut mention_slots = 0usize;
        let mut lits = LiteralTable::default();
        let mut keys: HashMap<Box<[u8]>, u32, BuildFx> = HashMap::with_hasher(BuildFx);
        let mut key_word_ids: HashMap<Box<[u8]>, u32, BuildFx> = HashMap::with_hasher(BuildFx);
        let mut key_words: Vec<(Vec<u32>, u32)> = Vec::new();
        let mut numeric = NumericMatcher::default();
        let mut tokens = Vec::new();
        let mut names = None;
        let mut weak_keys: HashMap<Box<[u8]>, u32, BuildFx> = HashMap::with_hasher(BuildFx);
        let mut prose = None;
        let mut streets = None;
        let mut ipv6 = None;
        let mut regex_patterns: Vec<String> = Vec::new();
        let mut regex_rules: Vec<Vec<u32>> = Vec::new();
        let mut regex_always = false;

        let syntax_config = syntax::Config::new().unicode(false).utf8(false);
        let regex_config = meta::Config::new()
            .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
            .utf8_empty(false);
        let compile_one = |pat: &str, anchored: bool| -> Result<meta::Regex, String> {
            let full = if anchored {
                format!("^(?:{pat})$")
            } else {
                pat.to_string()
            };
            meta::Regex::builder()
                .syntax(syntax_config)
                .configure(regex_config.clone())
                .build(&full)
                .map_err(|e| format!("regex does not compile or is too large: {e}"))
        };

        for (idx, lr) in set.rules.iter().enumerate() {
            let idx = idx as u32;
            let spec = &lr.spec;
            let category = Category::parse(&spec.category).expect("checked at load");
            let action = match &spec.action {
                None | Some(ActionSpec::Simple(SimpleAction::Label)) => Action::Label,
                Some(ActionSpec::Simple(SimpleAction::Pseudonym)) => Action::Pseudonym,
                Some(ActionSpec::Simple(SimpleAction::DropField)) => Action::DropField,
                Some(ActionSpec::Mask { mask }) => Action::Mask {
                    keep_last: mask.keep_last,
                },
            };
            let validator = spec.validator.as_deref().and_then(Validator::parse);
            let d = &spec.detector;
            let mut triggers = Vec::new();
            let mut value_regex = None;
            let detector;

            if let Some(ctx) = &spec.context {
                for w in &ctx.words {
                    lits.add(w).1.context_rules.push(idx);
                }
            }

            if let Some(re) = &d.regex {
                detector = "regex";
                for p in re.to_vec() {
                    match compile_one(&p, false) {
                        Ok(r) => {
                            if r.is_match(Input::new("")) {
                                problems.push(lr.problem("regex matches the empty string"));
                                continue;
                            }
                            if let Some(g) = r
                                .group_info()
                                .to_index(regex_automata::PatternID::ZERO, "value")
                            {
                                value_regex = Some((r, g));
                            }
                            match regex_patterns.iter().position(|q| *q == p) {
                                Some(i) => regex_rules[i].push(idx),
                                None => {
                                    regex_patterns.push(p);
                                    regex_rules.push(vec![idx]);
                                }
                            }
                        }
                        Err(e) => problems.push(lr.problem(e)),
                    }
                }
                match &d.requires {
                    Some(req) if !req.is_empty() => {
                        for lit in req {
                            let (p, pat) = lits.add(lit);
                            pat.trigger = true;
                            pat.gated_rules.push(idx);
                            triggers.push(p as u32);
                        }
                    }
                    _ => regex_always = true,
                }
            } else if d.keywords.is_some() || d.dictionary.is_some() {
                detector = "keywords";
                let mut words: Vec<String> = d.keywords.clone().unwrap_or_default();
                if let Some(path) = &d.dictionary {
                    match lr.read_relative(path) {
                        Ok(text) => words.extend(
                            text.lines()
                                .map(|l| l.split('#').next().unwrap_or("").trim())
                                .filter(|l| !l.is_empty())
                                .map(str::to_string),
                        ),
                        Err(e) => problems.push(lr.problem(format!("dictionary: {e}"))),
                    }
                }
                for w in words.iter().filter(|w| !w.trim().is_empty()) {
                    lits.add(w.trim()).1.keyword_rules.push(idx);
                }
            } else if d.keys.is_some() || d.key_words.is_some() {
                detector = "keys";
                for entry in d.key_words.iter().flatten() {
                    let ids: Vec<u32> = entry
                        .split_whitespace()
                        .map(|w| {
                            let w = w.to_ascii_lowercase().into_bytes().into_boxed_slice();
                            let next = key_word_ids.len() as u32;
                            *key_word_ids.entry(w).or_insert(next)
                        })
                        .collect();
                    if ids.is_empty() || ids.len() > 4 {
                        problems.push(
                            lr.problem(format!("key_words entry '{entry}' must have 1 to 4 words")),
                        );
                    } else {
                        key_words.push((ids, idx));
                    }
                }
                for k in d.keys.iter().flatten() {
                    let mut buf = [0u8; MAX_KEY];
                    match normalise_key(k.as_bytes(), &mut buf) {
                        Some(n) => {
                            if let Some(prev) = keys.insert(buf[..n].into(), idx).filter(|&p| p != idx) {
                                let other = &set.rules[prev as usize].spec.id;
                                problems.push(lr.problem(format!(
                                    "key '{k}' is already claimed by rule '{other}'"
                                )));
                            }
                        }
                        None => problems.push(lr.problem(format!(
                            "key '{k}' is empty or longer than {MAX_KEY} characters after normalisation"
                        ))),
                    }
                }
            } else if let Some(n) = &d.numeric {
                detector = "numeric";
                if let Err(e) = numeric.add_shapes(idx, &n.shapes) {
                    problems.push(lr.problem(e));
                }
                if let Some([lo, hi]) = n.digits {
                    let prefix = n.prefix.as_ref().and_then(|p| p.bytes().next());
                    numeric.add_digits(idx, lo, hi, prefix);
                }
            } else if let Some(t) = &d.token {
                detector = "token";
                match compile_one(&t.pattern, true) {
                    Ok(regex) => {
                        let (min, max) = length_bounds(&t.pattern);
                        tokens.push(TokenRule {
                            rule: idx,
                            regex,
                            min,
                            max,
                        });
                    }
                    Err(e) => problems.push(lr.problem(e)),
                }
            } else if let Some(ns) = &d.names {
                detector = "names";
                let read = |p: &Option<String>| -> Option<Cow<'static, str>> {
                    p.as_ref().and_then(|p| lr.read_relative(p).ok())
                };
                let first = lr.read_relative(&ns.first);
                let last = lr.read_relative(&ns.last);
                for (what, r) in [("first", &first), ("last", &last)] {
                    if let Err(e) = r {
                        problems.push(lr.problem(format!("names.{what}: {e}")));
                    }
                }
                for (what, p) in [("ambiguous", &ns.ambiguous), ("english", &ns.english)] {
                    if let Some(p) = p {
                        if let Err(e) = lr.read_relative(p) {
                            problems.push(lr.problem(format!("names.{what}: {e}")));
                        }
                    }
                }
                let scripts = super::script::Scripts::parse(&ns.scripts).unwrap_or_else(|e| {
                    problems.push(lr.problem(format!("names.scripts: {e}")));
                    super::script::Scripts::default()
                });
                for k in &ns.keys {
                    let mut buf = [0u8; MAX_KEY];
                    match normalise_key(k.as_bytes(), &mut buf) {
                        Some(n) => {
                            weak_keys.insert(buf[..n].into(), idx);
                        }
                        None => problems.push(lr.problem(format!(
                            "names.keys: '{k}' is empty or longer than {MAX_KEY} characters after normalisation"
                        ))),
                    }
                }
                if names.is_some() {
                    problems.push(lr.problem("only one names rule may be in force"));
                } else if let (Ok(first), Ok(last)) = (first, last) {
                    let ambiguous = read(&ns.ambiguous);
                    let english = read(&ns.english);
                    names = Some(Names::new(
                        idx,
                        names::NameLists {
                            first: &first,
                            last: &last,
                            ambiguous: ambiguous.as_deref(),
                            english: english.as_deref(),
                        },
                        &ns.titles,
                        &ns.cues,
                        scripts,
                    ));
                }
            } else if let Some(a) = &d.address {
                detector = "address";
                match lr.read_relative(&a.suffixes) {
                    Ok(text) if streets.is_none() => streets = Some(Streets::new(idx, &text)),
                    Ok(_) => problems.push(lr.problem("only one address rule may be in force")),
                    Err(e) => problems.push(lr.problem(format!("address.suffixes: {e}"))),
                }
            } else if d.ipv6.is_some() {
                detector = "ipv6";
                if ipv6.replace(idx).is_some() {
                    problems.push(lr.problem("only one ipv6 rule may be in force"));
                }
            } else if let Some(ps) = &d.prose {
                detector = "prose";
                let mut lists = Vec::new();
                for t in &ps.terms {
                    match lr.read_relative(t) {
                        Ok(text) => lists.push(text),
                        Err(e) => problems.push(lr.problem(format!("prose.terms: {e}"))),
                    }
                }
                for k in &ps.keys {
                    let mut buf = [0u8; MAX_KEY];
                    match normalise_key(k.as_bytes(), &mut buf) {
                        Some(n) => {
                            weak_keys.insert(buf[..n].into(), idx);
                        }
                        None => problems.push(lr.problem(format!(
                            "prose.keys: '{k}' is empty or longer than {MAX_KEY} characters after normalisation"
                        ))),
                    }
                }
                if prose.is_some() {
                    problems.push(lr.problem("only one prose rule may be in force"));
                } else {
                    let lists: Vec<&str> = lists.iter().map(|c| c.as_ref()).collect();
                    prose = Some(Prose::new(idx, &lists, ps.transcripts));
                }
            } else {
                unreachable!("checked at load: exactly one detector");
            }

            let mut exclude = Vec::new();
            for k in &spec.exclude_keys {
                let mut buf = [0u8; MAX_KEY];
                match normalise_key(k.as_bytes(), &mut buf) {
                    Some(n) => exclude.push(buf[..n].into()),
                    None => problems.push(lr.problem(format!(
                        "exclude_keys: '{k}' is empty or longer than {MAX_KEY} characters after normalisation"
                    ))),
                }
            }
            let line_words = if detector == "keys" {
                spec.context
                    .iter()
                    .flat_map(|c| &c.words)
                    .map(|w| w.to_ascii_lowercase().into_bytes().into_boxed_slice())
                    .collect()
            } else {
                Vec::new()
            };
            let mention_slot = if line_words.is_empty() {
                usize::MAX
            } else {
                mention_slots += 1;
                mention_slots - 1
            };
            rules.push(Rule {
                id: spec.id.clone(),
                exclude,
                line_words,
                mention_slot,
                description: spec.description.clone(),
                category,
                action,
                validator,
                window: spec.context.as_ref().map_or(0, |c| c.window),
                side: spec
                    .context
                    .as_ref()
                    .map_or(ContextSide::Either, |c| c.side),
                has_context: spec.context.is_some(),
                value_regex,
                triggers,
                detector,
                file: lr.file.clone(),
                line: lr.line,
                examples: None,
            });
        }

        let LiteralTable {
            literals: literal_strings,
            uses: literal_uses,
            ..
        } = lits;
        let gates: Vec<bool> = literal_uses.iter().map(|u| u.trigger).collect();
        let literals = LiteralMatcher::new(&literal_strings, &gates);
        let regex = if regex_patterns.is_empty() || !problems.is_empty() {
            None
        } else {
            match meta::Regex::builder()
                .syntax(syntax_config)
                .configure(regex_config.clone())
                .build_many(&regex_patterns)
            {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(RuleProblem {
                        file: "<all rules>".into(),
                        line: None,
                        column: None,
                        rule: None,
                        message: format!("the union of all regex rules is too large: {e}"),
                    });
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(Error::rules(problems));
        }
        // Examples are kept for `rules test`; attach them now that indexes are final.
        for (rule, lr) in rules.iter_mut().zip(&set.rules) {
            rule.examples = lr.spec.examples.as_ref().map(clone_examples);
        }
        let mut key_word_entries = vec![Vec::new(); key_word_ids.len()];
        for (e, (ids, _)) in key_words.iter().enumerate() {
            for &w in ids {
                if !key_word_entries[w as usize].contains(&(e as u32)) {
                    key_word_entries[w as usize].push(e as u32);
                }
            }
        }
        let token_min = tokens.iter().map(|t| t.min).min().unwrap_or(0);
        let token_max = tokens.iter().map(|t| t.max).max().unwrap_or(0);
        let mut tokens_by_len = Box::new([0u64; 65]);
        for (k, t) in tokens.iter().enumerate().take(64) {
            for bits in &mut tokens_by_len[t.min.min(64)..=t.max.min(64)] {
                *bits |= 1 << k;
            }
        }
        Ok(Engine {
            rules,
            literals,
            literal_uses,
            keys,
            key_word_ids,
            key_words,
            key_word_entries,
            numeric,
            tokens,
            tokens_by_len,
            token_min,
            token_max,
            names,
            weak_keys,
            prose,
            streets,
            ipv6,
            regex,
            regex_rules,
            regex_always,
            key,
        })
    }

    /// Scratch space for this engine.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            main: State::default(),
            sub: State::default(),
            stack: Vec::with_capacity(structure::MAX_DEPTH),
            decoded: Vec::new(),
            inner: Vec::new(),
            out: Vec::new(),
            norm: Vec::new(),
            num: NumToken::new(),
            regex_cache: self.regex.as_ref().map(|r| r.create_cache()),
            counts: vec![0; self.rules.len()],
            keys: RefCell::new(KeyCache::new()),
            mentions: self.mention_cells(),
        }
    }

    /// One [`Mention`] cell per rule whose key values need a context word on
    /// the line, all unknown.
    fn mention_cells(&self) -> Box<[Cell<Mention>]> {
        let n = self
            .rules
            .iter()
            .filter(|r| !r.line_words.is_empty())
            .count();
        vec![Cell::new(Mention::Unknown); n].into_boxed_slice()
    }

    /// The number of rules in force.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Facts about rule `i`.
    pub fn rule(&self, i: usize) -> RuleInfo<'_> {
        let r = &self.rules[i];
        RuleInfo {
            id: &r.id,
            description: &r.description,
            category: r.category,
            action: r.action.name(),
            detector: r.detector,
            file: &r.file,
            line: r.line,
        }
    }

    /// Whether the pseudonym key is an ephemeral one.
    pub fn key_is_ephemeral(&self) -> bool {
        self.key.is_ephemeral()
    }

    /// The rule a structured key names, if any.
    pub fn key_rule(&self, key: &str) -> Option<usize> {
        self.lookup_key(key.as_bytes()).map(|r| r as usize)
    }

    /// The rule that takes `value` whole under `key`: [`Engine::key_rule`],
    /// unless that rule is conditional and refuses this value (a person key
    /// whose value does not look like a name, a message key whose value is
    /// not a message, a key rule whose validator fails).
    pub fn field_rule(&self, key: &str, value: &str) -> Option<usize> {
        let mut decoded = Vec::new();
        let mentions = self.mention_cells();
        self.key_rule(key).filter(|&r| {
            self.keyed_value_ok(
                r as u32,
                value.as_bytes(),
                &mentions,
                value.as_bytes(),
                false,
                &mut decoded,
            )
        })
    }

    /// [`Engine::key_rule`] through the scratch's cache of recent keys:
    /// for callers that look up the same few keys over and over (the
    /// attributes of OTLP records).
    pub fn key_rule_cached(&self, scratch: &Scratch, key: &str) -> Option<usize> {
        self.lookup_key_cached(&scratch.keys, key.as_bytes())
            .map(|r| r as usize)
    }

    /// A raw key's rule: the normalised key exactly, else its words.
    fn lookup_key(&self, raw: &[u8]) -> Option<u32> {
        let mut buf = [0u8; MAX_KEY];
        let n = normalise_key(raw, &mut buf)?;
        if let Some(&r) = self.keys.get(&buf[..n]) {
            return Some(r);
        }
        if self.key_words.is_empty() && self.weak_keys.is_empty() {
            return None;
        }
        // Split at non-alphanumerics and lower-to-upper case changes.
        let mut present = [u32::MAX; 8];
        let mut np = 0;
        let mut word = [0u8; MAX_KEY];
        let mut wl = 0;
        let mut last = [0u8; MAX_KEY];
        let mut ll = 0;
        let mut flush = |word: &[u8], np: &mut usize| {
            if !word.is_empty() && *np < present.len() {
                if let Some(&id) = self.key_word_ids.get(word) {
                    present[*np] = id;
                    *np += 1;
                }
            }
        };
        let mut prev_lower = false;
        for &b in raw {
            let boundary = !b.is_ascii_alphanumeric() || (b.is_ascii_uppercase() && prev_lower);
            if boundary {
                flush(&word[..wl], &mut np);
                if wl > 0 {
                    last[..wl].copy_from_slice(&word[..wl]);
                    ll = wl;
                }
                wl = 0;
            }
            if b.is_ascii_alphanumeric() && wl < MAX_KEY {
                word[wl] = b.to_ascii_lowercase();
                wl += 1;
            }
            prev_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
        }
        flush(&word[..wl], &mut np);
        if wl > 0 {
            last[..wl].copy_from_slice(&word[..wl]);
            ll = wl;
        }
        let present = &present[..np];
        // Only entries that contain a present word can match; the most
        // specific one wins (`ip address` over `address`).
        let strong = present
            .iter()
            .flat_map(|&w| &self.key_word_entries[w as usize])
            .map(|&e| &self.key_words[e as usize])
            .filter(|(ids, _)| ids.iter().all(|id| present.contains(id)))
            .max_by_key(|(ids, _)| ids.len())
            .map(|&(_, r)| r);
        if strong.is_some() {
            return strong;
        }
        // A person or message key, whole or as its last word: the names or
        // prose rule, whose findings keep only values that look the part.
        self.weak_keys
            .get(&buf[..n])
            .or_else(|| (ll > 0).then(|| self.weak_keys.get(&last[..ll])).flatten())
            .copied()
    }

    /// Redacts one line of bytes. Returns `line` itself when nothing matched,
    /// otherwise the rewritten line held in `scratch`.
    pub fn redact<'a>(&self, scratch: &'a mut Scratch, line: &'a [u8]) -> &'a [u8] {
        self.detect_line(line, scratch);
        if scratch.main.findings.is_empty() {
            return line;
        }
        self.rewrite(line, scratch);
        &scratch.out
    }

    /// Redacts a string; the result is valid UTF-8 (a replacement that
    /// splits a character is repaired lossily).
    pub fn redact_str<'a>(&self, scratch: &mut Scratch, text: &'a str) -> Cow<'a, str> {
        self.detect_line(text.as_bytes(), scratch);
        if scratch.main.findings.is_empty() {
            return Cow::Borrowed(text);
        }
        self.rewrite(text.as_bytes(), scratch);
        Cow::Owned(String::from_utf8_lossy(&scratch.out).into_owned())
    }

    /// Redacts a structured field: the key may name a rule that takes the
    /// whole value; otherwise the value is redacted as text.
    pub fn redact_field<'a>(
        &self,
        scratch: &mut Scratch,
        key: &str,
        value: &'a str,
    ) -> FieldResult<'a> {
        // Under a person key (`name`, `display`) only a value that looks
        // like a name is taken whole; anything else is read as text.
        let rule = self.field_rule(key, value);
        if let Some(rule) = rule {
            let r = &self.rules[rule];
            scratch.counts[rule] += 1;
            if r.action == Action::DropField {
                return FieldResult::Drop;
            }
            scratch.out.clear();
            self.write_replacement(
                rule as u32,
                value.as_bytes(),
                false,
                &mut scratch.out,
                &mut scratch.norm,
            );
            return FieldResult::Value(Cow::Owned(
                String::from_utf8_lossy(&scratch.out).into_owned(),
            ));
        }
        FieldResult::Value(self.redact_str(scratch, value))
    }

    /// Runs every rule's examples against the whole engine.
    pub fn check_examples(&self) -> (usize, Vec<ExampleFailure>) {
        let mut scratch = self.scratch();
        let mut ran = 0;
        let mut failures = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(ex) = &rule.examples else { continue };
            let fail = |kind, index, message: String| ExampleFailure {
                rule: rule.id.clone(),
                file: rule.file.to_string(),
                line: rule.line,
                kind,
                index,
                message,
            };
            for (k, e) in ex.redact.iter().enumerate() {
                ran += 1;
                let (input, want) = match e {
                    ExampleSpec::Input(s) => (s.as_str(), None),
                    ExampleSpec::Exact { input, output } => (input.as_str(), Some(output.as_str())),
                };
                let out = self.redact_str(&mut scratch, input).into_owned();
                // A rule fired if it found something, even where an
                // overlapping, stronger finding named the replacement.
                let fired = scratch.main.findings.iter().any(|f| f.rule as usize == i);
                scratch.drain_counts(|_, _| {});
                if !fired {
                    failures.push(fail(
                        "redact",
                        k,
                        format!("rule did not fire; output: {out:?}"),
                    ));
                } else if let Some(want) = want {
                    if out != want {
                        failures.push(fail("redact", k, format!("expected {want:?}, got {out:?}")));
                    }
                }
            }
            for (k, input) in ex.keep.iter().enumerate() {
                ran += 1;
                let out = self.redact_str(&mut scratch, input);
                if out != input.as_str() {
                    let mut who = Vec::new();
                    scratch.drain_counts(|r, _| who.push(self.rules[r].id.clone()));
                    failures.push(fail(
                        "keep",
                        k,
                        format!("changed by rule(s) {}; output: {out:?}", who.join(", ")),
                    ));
                }
                scratch.drain_counts(|_, _| {});
            }
        }
        (ran, failures)
    }
}

fn clone_examples(e: &ExamplesSpec) -> ExamplesSpec {
    ExamplesSpec {
        redact: e
            .redact
            .iter()
            .map(|x| match x {
                ExampleSpec::Input(s) => ExampleSpec::Input(s.clone()),
                ExampleSpec::Exact { input, output } => ExampleSpec::Exact {
                    input: input.clone(),
                    output: output.clone(),
                },
            })
            .collect(),
        keep: e.keep.clone(),
    }
}

/// The shortest and longest token a token pattern can match, so that most
/// tokens are rejected by length before the pattern runs.
fn length_bounds(pattern: &str) -> (usize, usize) {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern);
    match hir {
        Ok(h) => (
            h.properties().minimum_len().unwrap_or(1).max(1),
            h.properties().maximum_len().unwrap_or(64).min(64),
        ),
        Err(_) => (1, 64),
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Engine>();
}
