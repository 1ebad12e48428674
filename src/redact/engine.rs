//! The compiled engine and the per-line detection and rewrite.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Arc;

use regex_automata::meta;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::Input;

use super::address::Streets;
use super::class;
use super::formats;
use super::literals::LiteralMatcher;
use super::names::{self, BuildFx, Names};
use super::numeric::{self, NumToken, NumericMatcher};
use super::prose::{self, Prose};
use super::pseudonym::PseudonymKey;
use super::structure::{self, normalise_key, Frame, Pair, MAX_KEY};
use super::validate::{self, Validator};
use crate::error::{Error, RuleProblem};
use crate::rules::{
    ActionSpec, Category, ContextSide, ExampleSpec, ExamplesSpec, RuleSet, SimpleAction,
};

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
    findings: Vec<Finding>,
    triggered: bool,
}

/// Reusable scratch space for redaction: one per thread. Holding on to it
/// between lines is what makes a clean line allocation-free. Its buffers
/// hold raw and decoded event content, so its `Debug` shows sizes only.
pub struct Scratch {
    main: State,
    sub: State,
    stack: Vec<Frame>,
    decoded: Vec<u8>,
    /// A second decoding buffer, for encoded values inside a decoded one.
    inner: Vec<u8>,
    out: Vec<u8>,
    norm: Vec<u8>,
    num: NumToken,
    regex_cache: Option<meta::Cache>,
    counts: Vec<u64>,
    keys: RefCell<KeyCache>,
}

/// Remembers recent structured-key lookups. Log lines repeat the same few
/// dozen keys (`ts`, `level`, `trace_id`), and a lookup that normalises the
/// key, hashes it and splits it into words costs far more than one hash and
/// one compare. Direct-mapped and fixed in size: a miss overwrites its slot,
/// so the cache never allocates after it is made, whatever keys arrive.
struct KeyCache {
    slots: Box<[KeySlot]>,
}

const KEY_CACHE_SLOTS: usize = 512;
/// Keys longer than this are looked up every time.
const KEY_CACHE_KEY: usize = 30;

#[derive(Clone, Copy)]
struct KeySlot {
    /// 0 marks an empty slot (an empty key is never cached).
    len: u8,
    key: [u8; KEY_CACHE_KEY],
    /// The rule, or `u32::MAX` for none.
    rule: u32,
}

impl KeyCache {
    fn new() -> KeyCache {
        let empty = KeySlot {
            len: 0,
            key: [0; KEY_CACHE_KEY],
            rule: u32::MAX,
        };
        KeyCache {
            slots: vec![empty; KEY_CACHE_SLOTS].into_boxed_slice(),
        }
    }

    fn slot(raw: &[u8]) -> usize {
        (BuildFx.hash_one(raw) as usize) % KEY_CACHE_SLOTS
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The buffers hold raw lines, decoded values and the rewritten line:
        // event content. Capacities and counts only.
        f.debug_struct("Scratch")
            .field("findings", &self.main.findings.len())
            .field("decoded_capacity", &self.decoded.capacity())
            .field("out_capacity", &self.out.capacity())
            .field("rules_counted", &self.counts.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys come from events; show only how full the cache is.
        let used = self.slots.iter().filter(|s| s.len > 0).count();
        write!(f, "KeyCache {{ used: {used} }}")
    }
}

impl std::fmt::Debug for NumToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token's bytes are event content; show nothing of them.
        f.write_str("NumToken")
    }
}

impl Scratch {
    /// Calls `f(rule index, count)` for every rule that redacted something
    /// since the last call, and resets the counts.
    pub fn drain_counts(&mut self, mut f: impl FnMut(usize, u64)) {
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c > 0 {
                f(i, *c);
                *c = 0;
            }
        }
    }

    /// The total number of redactions since the last drain.
    pub fn pending_total(&self) -> u64 {
        self.counts.iter().sum()
    }
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

/// Whether the word ending at `e` continues: a word byte follows, or a
/// hyphen, dot or underscore and then a letter or digit. `fax-gateway` and
/// `discharge-summary` are names of things, not the words fax and discharge.
fn joined_after(hay: &[u8], e: usize) -> bool {
    class::is_word(hay[e])
        || (matches!(hay[e], b'-' | b'.')
            && hay.get(e + 1).is_some_and(|b| b.is_ascii_alphanumeric()))
}

/// The same, for the word starting at `s`.
fn joined_before(hay: &[u8], s: usize) -> bool {
    class::is_word(hay[s - 1])
        || (matches!(hay[s - 1], b'-' | b'.') && s >= 2 && hay[s - 2].is_ascii_alphanumeric())
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
            rules.push(Rule {
                id: spec.id.clone(),
                exclude,
                line_words,
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
        }
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
        self.key_rule(key).filter(|&r| {
            self.keyed_value_ok(
                r as u32,
                value.as_bytes(),
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

    /// [`Engine::lookup_key`] through the scratch's cache.
    fn lookup_key_cached(&self, cache: &RefCell<KeyCache>, raw: &[u8]) -> Option<u32> {
        if raw.is_empty() || raw.len() > KEY_CACHE_KEY {
            return self.lookup_key(raw);
        }
        let i = KeyCache::slot(raw);
        let mut cache = cache.borrow_mut();
        let slot = &mut cache.slots[i];
        if usize::from(slot.len) == raw.len() && &slot.key[..raw.len()] == raw {
            return (slot.rule != u32::MAX).then_some(slot.rule);
        }
        let rule = self.lookup_key(raw);
        slot.len = raw.len() as u8;
        slot.key[..raw.len()].copy_from_slice(raw);
        slot.rule = rule.unwrap_or(u32::MAX);
        rule
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

    /// Whether the text at `s` lies at the start of the value of one of
    /// rule `rule`'s `exclude_keys` (`component="Austin Edge"`,
    /// `trace_id=4695404946591239701`).
    fn excluded(&self, rule: u32, hay: &[u8], s: usize) -> bool {
        let ex = &self.rules[rule as usize].exclude;
        if ex.is_empty() {
            return false;
        }
        let mut p = s;
        while p > 0 && matches!(hay[p - 1], b'"' | b'\'' | b' ') {
            p -= 1;
        }
        if p == 0 || !matches!(hay[p - 1], b'=' | b':') {
            return false;
        }
        p -= 1;
        while p > 0 && matches!(hay[p - 1], b'"' | b'\'' | b' ') {
            p -= 1;
        }
        let end = p;
        while p > 0
            && (hay[p - 1].is_ascii_alphanumeric() || matches!(hay[p - 1], b'_' | b'.' | b'-'))
            && end - p < MAX_KEY
        {
            p -= 1;
        }
        let mut buf = [0u8; MAX_KEY];
        let Some(n) = normalise_key(&hay[p..end], &mut buf) else {
            return false;
        };
        ex.iter().any(|k| buf[..n].ends_with(k))
    }

    /// Whether a value found under key rule `rule` stands: under a person
    /// key (the names rule) only a value that looks like a name does.
    /// Percent-encoded query values are judged decoded.
    fn keyed_value_ok(
        &self,
        rule: u32,
        line: &[u8],
        value: &[u8],
        query: bool,
        decoded: &mut Vec<u8>,
    ) -> bool {
        // A key rule with context words takes the value only on a line that
        // mentions one of them, anywhere (`doc=IL_DL number=C436-3722-3802`).
        let r = &self.rules[rule as usize];
        if !r.line_words.is_empty() && !mentions(line, &r.line_words) {
            return false;
        }
        // An opaque id (`clm_4471`) under a claim or case key is a code
        // that is not derived from the person (45 CFR 164.514(c)).
        if r.category == Category::OtherIdentifier && structure::is_opaque_id(value) {
            return false;
        }
        // A key rule with a validator takes only values that pass it
        // (`ip.key` takes public addresses: a private one is infrastructure).
        if let Some(v) = self.rules[rule as usize].validator {
            return v.check(value);
        }
        let names = self.names.as_ref().filter(|nm| nm.rule == rule);
        let prose = self.prose.as_ref().filter(|p| p.rule == rule);
        if names.is_none() && prose.is_none() {
            return true;
        }
        let value = if query && value.iter().any(|&b| b == b'%' || b == b'+') {
            structure::url_decode(value, decoded);
            &decoded[..]
        } else {
            value
        };
        match (names, prose) {
            (Some(nm), _) => nm.looks_like_name(value),
            // A form body or a record (`first=Ana&dob=...`, `{...}`) is data,
            // read by its own keys, not a message.
            (_, Some(p)) => !value.iter().any(|&b| b == b'=' || b == b'{') && p.is_clinical(value),
            _ => true,
        }
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

    // ---- detection -------------------------------------------------------

    fn detect_line(&self, hay: &[u8], s: &mut Scratch) {
        let Scratch {
            main,
            sub,
            stack,
            decoded,
            inner,
            num,
            regex_cache,
            keys,
            ..
        } = s;
        main.findings.clear();
        self.literal_pass(hay, main);

        // Structure: keys name values; query values may be encoded.
        let lookup = |k: &[u8]| self.lookup_key_cached(keys, k);
        let mut pairs_done = false;
        if hay.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let findings = &mut main.findings;
            // A container under a name key (`"patient": {...}`) holds other
            // fields too: its children are judged by their own keys
            // (`patient.name`), not all taken as the name.
            let inherit = |r: u32| self.rules[r as usize].category != Category::Name;
            let decoded = &mut *decoded;
            pairs_done = structure::scan_json(hay, stack, &lookup, &inherit, &mut |p: Pair| {
                let v = &hay[p.start..p.end];
                let rule = p.rule.expect("json pairs carry a rule");
                if structure::is_own_token(v) || !self.keyed_value_ok(rule, hay, v, false, decoded)
                {
                    return;
                }
                findings.push(Finding {
                    start: p.start,
                    end: p.end,
                    rule,
                    strength: STRENGTH_KEY,
                    quote: p.quote,
                });
            });
        }
        // Interchange formats, SQL and `key=value` pairs: on other lines, and
        // inside the string values of JSON lines (a query string in a URL
        // field, an HL7 message in a `message`).
        {
            let findings = &mut main.findings;
            let decoded = &mut *decoded;
            let mut keyed = |p: Pair| {
                let rule = p.rule.expect("format pairs carry a rule");
                if self.keyed_value_ok(rule, hay, &hay[p.start..p.end], false, decoded) {
                    findings.push(Finding {
                        start: p.start,
                        end: p.end,
                        rule,
                        strength: STRENGTH_KEY,
                        quote: false,
                    });
                }
            };
            formats::scan_hl7(hay, &lookup, &mut keyed);
            formats::scan_x12(hay, &lookup, &mut keyed);
            if let Some(nm) = &self.names {
                formats::scan_records(hay, nm, &lookup, &mut keyed);
            }

            structure::scan_sql(hay, &lookup, &mut keyed);
        }
        if let Some(p) = self.prose.as_ref().filter(|p| p.transcripts) {
            // A transcript's utterance: a person speaking in a visit or a
            // chat, whatever about; one word (`ok`) says nothing.
            if let Some((s, e)) = prose::utterance(hay) {
                if hay[s..e].contains(&b' ') {
                    main.findings.push(Finding {
                        start: s,
                        end: e,
                        rule: p.rule,
                        strength: STRENGTH_KEY,
                        quote: false,
                    });
                }
            }
        }
        let mut query_values: [(usize, usize); 16] = [(0, 0); 16];
        let mut nq = 0;
        if !pairs_done || memchr::memchr(b'=', hay).is_some() {
            let findings = &mut main.findings;
            let decoded = &mut *decoded;
            structure::scan_pairs(hay, pairs_done, &lookup, &mut |p: Pair| {
                if structure::is_own_token(&hay[p.start..p.end]) {
                    return true;
                }
                // A bare message under a text key runs on over its commas.
                let p = match p.rule {
                    Some(r)
                        if p.bare
                            && !p.query
                            && self.prose.as_ref().is_some_and(|x| x.rule == r) =>
                    {
                        Pair {
                            end: structure::text_value_end(hay, p.start).max(p.end),
                            ..p
                        }
                    }
                    _ => p,
                };
                let rule = p.rule.filter(|&r| {
                    self.keyed_value_ok(r, hay, &hay[p.start..p.end], p.query, decoded)
                });
                if let Some(rule) = rule {
                    // An unquoted value's end is a guess. Free text runs
                    // to the delimiter; an identifier ("DOB: 03/14/1985
                    // verified") ends before the first lower-case word; a
                    // name may go on after a comma (`Riddle,Elizabeth`,
                    // `PENA, WILLIAM`).
                    let r = &self.rules[rule as usize];
                    let end = if !p.bare {
                        p.end
                    } else if r.category == Category::Name {
                        structure::name_value_end(hay, p.end)
                    } else if !r.free_text() {
                        lower_word_cut(hay, p.start, p.end)
                    } else {
                        p.end
                    };
                    findings.push(Finding {
                        start: p.start,
                        end,
                        rule,
                        strength: STRENGTH_KEY,
                        quote: false,
                    });
                    true
                } else {
                    let v = &hay[p.start..p.end];
                    // A query value, or a value encoded whole (a URL in a
                    // parameter, `%3F` for its `?`); a path with a literal
                    // query string has its own pairs.
                    if nq < query_values.len()
                        && ((p.query && v.iter().any(|b| *b == b'%' || *b == b'+'))
                            || (v.contains(&b'%') && !v.contains(&b'?') && !v.contains(&b'&')))
                    {
                        query_values[nq] = (p.start, p.end);
                        nq += 1;
                    }
                    // A query value is not read on: its pairs are `&`-joined
                    // and come next anyway.
                    p.rule.is_none()
                }
            });
        }
        {
            // Decode encoded query values and look at them as text; any
            // finding redacts the whole encoded value.
            for &(vs, ve) in &query_values[..nq] {
                structure::url_decode(&hay[vs..ve], decoded);
                sub.findings.clear();
                self.literal_pass(decoded, sub);
                // A decoded value can hold pairs of its own (a URL with a
                // query string); their values may be encoded once more.
                {
                    let text = &decoded[..];
                    let inner = &mut *inner;
                    let findings = &mut sub.findings;
                    structure::scan_pairs(text, false, &lookup, &mut |p: Pair| {
                        let v = &text[p.start..p.end];
                        if let Some(rule) = p
                            .rule
                            .filter(|&r| self.keyed_value_ok(r, hay, v, true, inner))
                        {
                            findings.push(Finding {
                                start: p.start,
                                end: p.end,
                                rule,
                                strength: STRENGTH_KEY,
                                quote: false,
                            });
                            return true;
                        }
                        p.rule.is_none()
                    });
                }
                self.value_pass(decoded, sub, num, regex_cache);
                if let Some(best) = sub
                    .findings
                    .iter()
                    .max_by_key(|f| (f.strength, f.end - f.start))
                {
                    main.findings.push(Finding {
                        start: vs,
                        end: ve,
                        rule: best.rule,
                        strength: best.strength,
                        quote: false,
                    });
                }
            }
        }
        self.value_pass(hay, main, num, regex_cache);
        if !main.findings.is_empty() {
            // A value under a key its rule excludes is not that rule's
            // (findings of key rules stand: the key itself said so).
            main.findings
                .retain(|f| f.strength == STRENGTH_KEY || !self.excluded(f.rule, hay, f.start));
            drop_inside_own_tokens(hay, &mut main.findings);
            keep_off_escapes(hay, &mut main.findings);
            if pairs_done {
                quote_bare_json_values(hay, &mut main.findings);
            }
        }
    }

    /// The literal pass: keywords become findings; context words and regex
    /// gates are remembered for the later passes.
    fn literal_pass(&self, hay: &[u8], st: &mut State) {
        st.hits.clear();
        st.triggered = false;
        st.context_seen.clear();
        st.context_seen.resize(self.rules.len().div_ceil(64), 0);
        let State {
            hits,
            context_seen,
            findings,
            triggered,
        } = st;
        self.literals.find(hay, |pid, s, e| {
            let pat = &self.literal_uses[pid as usize];
            if pat.trigger {
                *triggered = true;
            }
            let bounded = (s == 0 || !joined_before(hay, s) || !class::is_word(hay[s]))
                && (e == hay.len() || !joined_after(hay, e) || !class::is_word(hay[e - 1]));
            if !bounded && !pat.trigger {
                return;
            }
            hits.push(Hit {
                pattern: pid,
                start: s,
                end: e,
            });
            for &r in &pat.context_rules {
                context_seen[r as usize / 64] |= 1 << (r % 64);
            }
            if bounded {
                for &r in &pat.keyword_rules {
                    if let Some(strength) = self.accept(r, hay, s, e, hits) {
                        findings.push(Finding {
                            start: s,
                            end: e,
                            rule: r,
                            strength,
                            quote: false,
                        });
                    }
                }
            }
        });
    }

    /// Whether a regex rule's gate literal occurred (or it has none).
    fn gate_open(&self, rule: u32, hits: &[Hit]) -> bool {
        let r = &self.rules[rule as usize];
        r.triggers.is_empty() || hits.iter().any(|h| r.triggers.contains(&h.pattern))
    }

    /// Whether a rule's context requirement can be met on this line at all.
    fn context_possible(&self, rule: u32, st: &State) -> bool {
        !self.rules[rule as usize].has_context
            || st
                .context_seen
                .get(rule as usize / 64)
                .is_some_and(|w| w & (1 << (rule % 64)) != 0)
    }

    /// Validator and context checks; returns the finding's strength.
    fn accept(&self, rule: u32, hay: &[u8], s: usize, e: usize, hits: &[Hit]) -> Option<u8> {
        let r = &self.rules[rule as usize];
        // Context first: on most lines there are no context words at all, and
        // that answer costs nothing next to a validator.
        let strength = if r.has_context {
            let lo = if r.side == ContextSide::After {
                s
            } else {
                s.saturating_sub(r.window)
            };
            let hi = if r.side == ContextSide::Before {
                s
            } else {
                e + r.window
            };
            // A context word counts when any part of it lies within the window
            // and it speaks of this candidate: no other number and no other
            // key lies between them (`plate DHC 285 eta=52m`: the word plate
            // is about 285, not about 52m).
            let near = hits.iter().any(|h| {
                h.start <= hi
                    && h.end >= lo
                    && !(h.start >= s && h.end <= e)
                    && self.literal_uses[h.pattern as usize]
                        .context_rules
                        .contains(&rule)
                    && nothing_between(hay, h, s, e)
            });
            if !near {
                return None;
            }
            STRENGTH_CONTEXT
        } else {
            STRENGTH_PLAIN
        };
        if let Some(v) = r.validator {
            if !v.check(&hay[s..e]) {
                return None;
            }
        }
        Some(strength)
    }

    /// The tokenizer (numbers, tokens, names) and the gated regex pass.
    fn value_pass(
        &self,
        hay: &[u8],
        st: &mut State,
        num: &mut NumToken,
        regex_cache: &mut Option<meta::Cache>,
    ) {
        let n = hay.len();
        let mut i = 0;
        let mut prev_word: Option<(usize, usize)> = None;
        // Token rules mostly need context words; on a line without them no
        // token can match, and the per-token loop over the rules is skipped.
        let tokens_armed = self
            .tokens
            .iter()
            .any(|t| self.context_possible(t.rule, st));
        while i < n {
            let b = hay[i];
            let c = class::of(b);
            if c & class::TOKEN == 0 {
                if b == b'\\' {
                    // An escape (`\n`, `\"`) is not part of the word after it.
                    i += 2;
                    continue;
                }
                let signed = (b == b'+' || b == b'(')
                    && hay.get(i + 1).is_some_and(|&d| class::is(d, class::DIGIT));
                if signed && !self.numeric.is_empty() && numeric::scan(hay, i, num) {
                    self.numeric_candidates(hay, num, st);
                    i = num.end;
                    prev_word = None;
                    continue;
                }
                i += 1;
                continue;
            }
            // An IPv6 address: hex digits then a colon within five bytes.
            if let Some(rule) = self.ipv6 {
                if let Some(e) = validate::ipv6_at(hay, i) {
                    if let Some(strength) = self.accept(rule, hay, i, e, &st.hits) {
                        st.findings.push(Finding {
                            start: i,
                            end: e,
                            rule,
                            strength,
                            quote: false,
                        });
                    }
                    i = e;
                    prev_word = None;
                    continue;
                }
            }
            if c & class::DIGIT != 0 {
                // A house number starts a street address.
                if let Some(sa) = &self.streets {
                    if let Some((s, e)) = sa.address(hay, i) {
                        st.findings.push(Finding {
                            start: s,
                            end: e,
                            rule: sa.rule,
                            strength: STRENGTH_CONTEXT,
                            quote: false,
                        });
                        i = e;
                        prev_word = None;
                        continue;
                    }
                }
            }
            if c & class::DIGIT != 0 && !self.numeric.is_empty() && numeric::scan(hay, i, num) {
                self.numeric_candidates(hay, num, st);
                i = num.end;
                prev_word = None;
                continue;
            }
            let (e, seen, joined) = token_end(hay, i);
            if seen & class::DIGIT != 0 {
                let len = e - i;
                if tokens_armed
                    && len >= self.token_min
                    && len <= self.token_max
                    && seen & class::ALPHA != 0
                {
                    let tok = &hay[i..e];
                    for t in &self.tokens {
                        // A rule that needs context cannot fire on a line
                        // without its words: skip its pattern (most ops lines).
                        if len < t.min || len > t.max || !self.context_possible(t.rule, st) {
                            continue;
                        }
                        if t.regex.is_match(tok) {
                            if let Some(strength) = self.accept(t.rule, hay, i, e, &st.hits) {
                                st.findings.push(Finding {
                                    start: i,
                                    end: e,
                                    rule: t.rule,
                                    strength,
                                    quote: false,
                                });
                                break;
                            }
                        }
                    }
                }
                prev_word = None;
                i = e;
                continue;
            }
            // A word of letters. Without a joiner inside, the token is the
            // word, unless an apostrophe continues it (`O'Brien`): token
            // ends never stop at a hyphen that a word would cross.
            let we = if !joined && hay.get(e) != Some(&b'\'') {
                e
            } else {
                names::word_end(hay, i).max(i + 1)
            };
            if let Some(nm) = &self.names {
                // A word in a non-Latin script is a name wherever it is.
                if hay[i] >= 0x80 && !nm.scripts.is_empty() {
                    if let Some(e) = nm.scripts.phrase_end(hay, i) {
                        st.findings.push(Finding {
                            start: i,
                            end: e,
                            rule: nm.rule,
                            strength: STRENGTH_CONTEXT,
                            quote: false,
                        });
                        i = e;
                        prev_word = None;
                        continue;
                    }
                }
                if names::is_capitalised(&hay[i..we]) {
                    if let Some((s, e)) = nm
                        .phrase(hay, i, we, prev_word)
                        .filter(|&(s, _)| !self.excluded(nm.rule, hay, s))
                    {
                        st.findings.push(Finding {
                            start: s,
                            end: e,
                            rule: nm.rule,
                            strength: STRENGTH_CONTEXT,
                            quote: false,
                        });
                        i = e;
                        prev_word = None;
                        continue;
                    }
                }
            }
            prev_word = Some((i, we));
            i = we;
        }

        if let Some(re) = &self.regex {
            if self.regex_armed(st) {
                let cache = regex_cache.get_or_insert_with(|| re.create_cache());
                let mut input = Input::new(hay);
                while let Some(m) = re.search_with(cache, &input) {
                    let mut best: Option<Finding> = None;
                    for &rule in &self.regex_rules[m.pattern().as_usize()] {
                        let r = &self.rules[rule as usize];
                        let gated = self.gate_open(rule, &st.hits);
                        let (vs, ve) = match &r.value_regex {
                            Some((vr, g)) if gated => value_group(vr, *g, hay, m.start(), m.end()),
                            _ => Some((m.start(), m.end())),
                        }
                        .unwrap_or((m.start(), m.end()));
                        if gated && ve > vs {
                            if let Some(strength) = self.accept(rule, hay, vs, ve, &st.hits) {
                                if best.is_none_or(|b| strength > b.strength) {
                                    best = Some(Finding {
                                        start: vs,
                                        end: ve,
                                        rule,
                                        strength,
                                        quote: false,
                                    });
                                }
                            }
                        }
                    }
                    if let Some(f) = best {
                        st.findings.push(f);
                    }
                    let next = if m.end() > m.start() {
                        m.end()
                    } else {
                        m.end() + 1
                    };
                    if next > hay.len() {
                        break;
                    }
                    input.set_start(next);
                }
            }
        }
    }

    /// Whether any regex rule can fire on this line: its gate literal
    /// occurred (or it has none) and, for a rule that needs context, one of
    /// its context words occurred. Most lines arm no rule, and the regex pass
    /// is skipped.
    fn regex_armed(&self, st: &State) -> bool {
        if !self.regex_always && !st.triggered {
            return false;
        }
        let mut seen = [u32::MAX; 64];
        let mut n = 0;
        for &rule in self.regex_rules.iter().flatten() {
            if n < seen.len() {
                if seen[..n].contains(&rule) {
                    continue;
                }
                seen[n] = rule;
                n += 1;
            }
            if self.gate_open(rule, &st.hits) && self.context_possible(rule, st) {
                return true;
            }
        }
        false
    }

    fn numeric_candidates(&self, hay: &[u8], num: &NumToken, st: &mut State) {
        let segs = num.segments();
        let mut i = 0;
        while i < segs {
            let mut matched = false;
            for j in (i..segs).rev() {
                let (shape, s, e) = num.sub(i, j);
                let mut best: Option<(u32, u8)> = None;
                self.numeric.candidates(shape, |rule| {
                    if !self.context_possible(rule, st) {
                        return;
                    }
                    if let Some(strength) = self.accept(rule, hay, s, e, &st.hits) {
                        if best.is_none_or(|(_, bs)| strength > bs) {
                            best = Some((rule, strength));
                        }
                    }
                });
                if let Some((rule, strength)) = best {
                    st.findings.push(Finding {
                        start: s,
                        end: e,
                        rule,
                        strength,
                        quote: false,
                    });
                    i = j + 1;
                    matched = true;
                    break;
                }
            }
            if !matched {
                i += 1;
            }
        }
    }

    // ---- rewrite ---------------------------------------------------------

    fn rewrite(&self, hay: &[u8], s: &mut Scratch) {
        let Scratch {
            main,
            out,
            norm,
            counts,
            ..
        } = s;
        let f = &mut main.findings;
        f.sort_unstable_by_key(|x| (x.start, std::cmp::Reverse(x.end)));
        out.clear();
        out.reserve(hay.len() + 16);
        let mut pos = 0;
        let mut k = 0;
        while k < f.len() {
            // Merge every finding that overlaps this one; the strongest,
            // then the longest, names the replacement.
            let mut cur = f[k];
            let mut end = cur.end;
            let mut quote = cur.quote;
            k += 1;
            while k < f.len() && f[k].start < end {
                let o = f[k];
                if (o.strength, o.end - o.start) > (cur.strength, cur.end - cur.start) {
                    cur = o;
                }
                end = end.max(o.end);
                quote |= o.quote;
                k += 1;
            }
            let start = f[..k]
                .iter()
                .rev()
                .take_while(|x| x.end > pos)
                .map(|x| x.start)
                .min()
                .unwrap_or(cur.start)
                .max(pos);
            out.extend_from_slice(&hay[pos..start]);
            self.write_replacement(cur.rule, &hay[start..end], quote, out, norm);
            counts[cur.rule as usize] += 1;
            pos = end;
        }
        out.extend_from_slice(&hay[pos..]);
    }

    fn write_replacement(
        &self,
        rule: u32,
        value: &[u8],
        quote: bool,
        out: &mut Vec<u8>,
        norm: &mut Vec<u8>,
    ) {
        let r = &self.rules[rule as usize];
        if quote {
            out.push(b'"');
        }
        match r.action {
            Action::Label => {
                out.extend_from_slice(b"[REDACTED:");
                out.extend_from_slice(r.category.tag().as_bytes());
                out.push(b']');
            }
            Action::Pseudonym => {
                // Normalise so that "John Smith" and "JOHN  SMITH", or
                // "415-555-0132" and "(415) 555 0132", give one token.
                norm.clear();
                norm.extend(
                    value
                        .iter()
                        .filter(|b| b.is_ascii_alphanumeric() || **b >= 0x80)
                        .map(u8::to_ascii_uppercase),
                );
                let tag = r.category.tag();
                out.push(b'[');
                out.extend_from_slice(tag.as_bytes());
                out.push(b':');
                out.extend_from_slice(&self.key.token(tag, norm));
                out.push(b']');
            }
            Action::Mask { keep_last } => {
                let total = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                let mut seen = 0;
                for &b in value {
                    if b.is_ascii_alphanumeric() {
                        seen += 1;
                        out.push(if total - seen < keep_last { b } else { b'*' });
                    } else if b < 0x80 {
                        out.push(b);
                    } else {
                        out.push(b'*');
                    }
                }
            }
            Action::DropField => {}
        }
        if quote {
            out.push(b'"');
        }
    }
}

/// Whether `line` holds one of `words` (lower case) as a whole word,
/// case-insensitively; `_` separates words here (`IL_DL` mentions `dl`).
fn mentions(line: &[u8], words: &[Box<[u8]>]) -> bool {
    words.iter().any(|w| {
        let n = w.len();
        n > 0
            && line.windows(n).enumerate().any(|(i, win)| {
                win.eq_ignore_ascii_case(w)
                    && (i == 0 || !line[i - 1].is_ascii_alphanumeric())
                    && line.get(i + n).is_none_or(|b| !b.is_ascii_alphanumeric())
            })
    })
}

/// Whether the text between a context word and a candidate is free of
/// another number and another `key=`: the word then speaks of this
/// candidate and not of a value further along.
fn nothing_between(hay: &[u8], h: &Hit, s: usize, e: usize) -> bool {
    let gap = if h.end <= s {
        &hay[h.end..s]
    } else if h.start >= e {
        &hay[e..h.start]
    } else {
        return true;
    };
    // A number of its own (a digit run not inside a word such as
    // `appt_G8vl`) is another candidate.
    let mut i = 0;
    while i < gap.len() {
        if class::is_word(gap[i]) {
            let w = i;
            while i < gap.len()
                && (class::is_word(gap[i])
                    || (matches!(gap[i], b'.' | b'-' | b'/')
                        && gap.get(i + 1).is_some_and(|&b| class::is_word(b))))
            {
                i += 1;
            }
            if !gap[w..i].iter().any(u8::is_ascii_alphabetic) {
                return false;
            }
        } else {
            i += 1;
        }
    }
    // The end of a quoted value (`..HTTP/1.1" 500`): what follows is
    // another field.
    if gap
        .windows(2)
        .any(|w| w[0] == b'"' && matches!(w[1], b' ' | b',' | b'}'))
    {
        return false;
    }
    // A key of its own: letters then `=` inside the gap (the `=` right
    // after the context word is its own).
    !gap.iter()
        .enumerate()
        .any(|(i, &b)| b == b'=' && gap[..i].iter().any(u8::is_ascii_alphabetic))
}

/// Removes findings that touch a replacement token scrubs wrote earlier, so
/// that redacting scrubbed output changes nothing.
fn drop_inside_own_tokens(hay: &[u8], findings: &mut Vec<Finding>) {
    if memchr::memchr(b'[', hay).is_none() {
        return;
    }
    // A keyed value that holds a token and other text
    // (`"ssn":"ob[REDACTED:SSN]"`) is still the key's value: the text
    // around the tokens is redacted piece by piece and the tokens stay.
    for k in 0..findings.len() {
        let f = findings[k];
        if f.strength != STRENGTH_KEY {
            continue;
        }
        let mut split = false;
        let mut seg = f.start;
        let mut i = f.start;
        while i < f.end {
            if hay[i] == b'[' {
                if let Some(j) = memchr::memchr(b']', &hay[i..f.end]) {
                    if structure::is_own_token(&hay[i..i + j + 1]) {
                        push_text_piece(hay, findings, f, seg, i);
                        split = true;
                        i += j + 1;
                        seg = i;
                        continue;
                    }
                }
            }
            i += 1;
        }
        if split {
            push_text_piece(hay, findings, f, seg, f.end);
            findings[k].end = findings[k].start;
        }
    }
    findings.retain(|f| f.end > f.start);
    let mut p = 0;
    while let Some(i) = memchr::memchr(b'[', &hay[p..]) {
        let s = p + i;
        let Some(j) = memchr::memchr(b']', &hay[s..]) else {
            break;
        };
        let e = s + j + 1;
        if structure::is_own_token(&hay[s..e]) {
            findings.retain(|f| f.end <= s || f.start >= e);
        }
        p = s + 1;
    }
}

/// Adds the part `s..e` of keyed finding `f` when it holds a letter or digit.
fn push_text_piece(hay: &[u8], findings: &mut Vec<Finding>, f: Finding, s: usize, e: usize) {
    if hay[s..e].iter().any(u8::is_ascii_alphanumeric) {
        findings.push(Finding {
            start: s,
            end: e,
            quote: false,
            ..f
        });
    }
}

/// The length of the backslash escape starting at `b` (`\n` is 2,
/// `\u00e9` is 6).
fn escape_len(hay: &[u8], b: usize) -> usize {
    if hay.get(b + 1) == Some(&b'u') {
        6
    } else {
        2
    }
}

/// Whether the byte at `i` is escaped: an odd run of backslashes before it.
fn escaped(hay: &[u8], i: usize) -> bool {
    hay[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// Keeps findings off the inside of backslash escapes. A pattern can start
/// on the letter of an escape (the email pattern takes `njohn@example.org`
/// out of `error\njohn@example.org`) or end inside one; replacing from
/// there leaves `\[EMAIL:...]`, which is not valid JSON (found by
/// fuzz/structured). The escape is not part of the value, so the finding is
/// moved past it (or ends before it).
fn keep_off_escapes(hay: &[u8], findings: &mut Vec<Finding>) {
    if memchr::memchr(b'\\', hay).is_none() {
        return;
    }
    for f in findings.iter_mut() {
        // An escape that starts before the finding and runs into it: on its
        // letter (`\\n` of `\\njohn@...`) or in the hex digits of `\\u0041`.
        let back = f.start.saturating_sub(5);
        if let Some(b) = (back..f.start)
            .rev()
            .find(|&b| hay[b] == b'\\' && !escaped(hay, b))
        {
            if b + escape_len(hay, b) > f.start {
                f.start = (b + escape_len(hay, b)).min(f.end);
            }
        }
        // An escape that starts inside and runs past the end.
        let lo = f.start.max(f.end.saturating_sub(6));
        if let Some(b) = (lo..f.end)
            .rev()
            .find(|&b| hay[b] == b'\\' && !escaped(hay, b))
        {
            if b + escape_len(hay, b) > f.end {
                f.end = b;
            }
        }
    }
    findings.retain(|f| f.end > f.start);
}

/// In a JSON line, a finding outside any string (a bare number taken by a
/// text detector: `"msg":-3405814423` as a phone number) takes the whole
/// bare value and is written as a JSON string; replacing only its digits
/// would leave `-[REDACTED:PHONE]`, which is not JSON (found by
/// fuzz/structured). A finding inside a string ends at that string's end.
fn quote_bare_json_values(hay: &[u8], findings: &mut [Finding]) {
    findings.sort_unstable_by_key(|f| f.start);
    let mut in_string = false;
    let mut p = 0;
    for f in findings.iter_mut() {
        // Advance the string state to the finding's start.
        while p < f.start.min(hay.len()) {
            match hay[p] {
                b'\\' if in_string => p += 1,
                b'"' => in_string = !in_string,
                _ => {}
            }
            p += 1;
        }
        if p > f.start {
            // The start is the byte after a backslash: inside a string.
            continue;
        }
        if in_string {
            let mut q = f.start;
            while q < f.end {
                match hay[q] {
                    b'\\' => q += 2,
                    b'"' => break,
                    _ => q += 1,
                }
            }
            f.end = f.end.min(q);
            continue;
        }
        if f.quote || hay.get(f.start) == Some(&b'"') {
            continue;
        }
        let bare = |b: u8| {
            !matches!(b, b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"') && !b.is_ascii_whitespace()
        };
        while f.start > 0 && bare(hay[f.start - 1]) {
            f.start -= 1;
        }
        while f.end < hay.len() && bare(hay[f.end]) {
            f.end += 1;
        }
        f.quote = true;
    }
}

/// The end of a bare value at the first space followed by a lower-case
/// ASCII letter, or `end`.
fn lower_word_cut(hay: &[u8], start: usize, end: usize) -> usize {
    hay[start..end]
        .windows(2)
        .position(|w| w[0] == b' ' && w[1].is_ascii_lowercase())
        .map_or(end, |i| start + i)
}

/// Slots on the stack cover groups up to this index; a rule whose `value`
/// group comes later pays for a `Captures` allocation per match.
const STACK_GROUPS: usize = 8;

/// The span of group `group` (the rule's `value` group) of a rule's own
/// regex within a match.
fn value_group(
    re: &meta::Regex,
    group: usize,
    hay: &[u8],
    s: usize,
    e: usize,
) -> Option<(usize, usize)> {
    let input = Input::new(hay).range(s..e);
    if group < STACK_GROUPS {
        let mut slots: [Option<NonMaxUsize>; 2 * STACK_GROUPS] = [None; 2 * STACK_GROUPS];
        let slots = &mut slots[..2 * (group + 1)];
        re.search_slots(&input, slots)?;
        return Some((slots[2 * group]?.get(), slots[2 * group + 1]?.get()));
    }
    let mut caps = re.create_captures();
    re.search_captures(&input, &mut caps);
    let g = caps.get_group(group)?;
    Some((g.start, g.end))
}

/// The end of a token: letters and digits (and non-ASCII bytes), with `.`,
/// `-` or `_` between them. Also returns the union of the class bits of its
/// bytes, so the caller knows without another pass whether it holds a digit
/// or a letter, and whether a joiner was crossed (a token without one is a
/// plain word when it holds no digit).
fn token_end(hay: &[u8], start: usize) -> (usize, u8, bool) {
    let mut p = start;
    let mut seen = 0;
    let mut joined = false;
    while p < hay.len() {
        let c = class::of(hay[p]);
        if c & class::TOKEN != 0 {
            seen |= c;
            p += 1;
        } else if c & class::TOKEN_JOIN != 0
            && p + 1 < hay.len()
            && class::is(hay[p + 1], class::TOKEN)
        {
            joined = true;
            p += 1;
        } else {
            break;
        }
    }
    (p, seen, joined)
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
