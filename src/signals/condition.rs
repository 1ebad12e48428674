//! Conditions on a record, compiled from [`ConditionConfig`].

use std::collections::HashSet;
use std::fmt;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use super::config::ConditionConfig;
use super::record::{normalise, Fields, RecordView};
use super::Problems;

/// A compiled condition.
pub(crate) enum Condition {
    Equals(String, String),
    In(String, HashSet<String>),
    Matches(String, Regex),
    LineContains(Box<memchr::memmem::Finder<'static>>),
    LineMatches(BytesRegex),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

impl fmt::Debug for Condition {
    // Field names only; the values compared against are configuration, but
    // keep them out of Debug all the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Equals(k, _) => write!(f, "Equals({k})"),
            Condition::In(k, s) => write!(f, "In({k}, {} values)", s.len()),
            Condition::Matches(k, _) => write!(f, "Matches({k})"),
            Condition::LineContains(_) => f.write_str("LineContains"),
            Condition::LineMatches(_) => f.write_str("LineMatches"),
            Condition::All(c) => f.debug_tuple("All").field(c).finish(),
            Condition::Any(c) => f.debug_tuple("Any").field(c).finish(),
        }
    }
}

/// Whether a literal can stand for a field value in the line: JSON and
/// logfmt write such a value verbatim (lines with `\u` escapes are always
/// candidates, see `Prefilter`; `/` may be written `\/` in JSON).
fn verbatim(lit: &str) -> bool {
    !lit.is_empty()
        && !lit
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || b == b'/' || b < 0x20)
}

/// A literal of the prefilter: text some line contains, either anywhere
/// (`line_contains`) or as a whole field value (`equals`, `in`).
pub(crate) type Literal = (Vec<u8>, bool);

impl Condition {
    pub(crate) fn compile(c: &ConditionConfig, path: &str, p: &mut Problems) -> Option<Condition> {
        let kinds = [
            c.field.is_some(),
            c.line_contains.is_some(),
            c.line_matches.is_some(),
            c.all.is_some(),
            c.any.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let tests = [c.equals.is_some(), c.in_.is_some(), c.matches.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if kinds != 1 {
            p.push(
                path,
                "give exactly one of `field`, `line_contains`, `line_matches`, `all`, `any`",
            );
            return None;
        }
        if c.field.is_none() && tests > 0 {
            p.push(path, "`equals`, `in` and `matches` go with `field`");
            return None;
        }
        if let Some(field) = &c.field {
            let key = normalise(field);
            if key.is_empty() {
                p.push(
                    &format!("{path}.field"),
                    "has no letters or digits, or more than 48 after dropping the others",
                );
                return None;
            }
            if tests != 1 {
                p.push(
                    path,
                    "with `field`, give exactly one of `equals`, `in`, `matches`",
                );
                return None;
            }
            if let Some(v) = &c.equals {
                return Some(Condition::Equals(key, v.clone()));
            }
            if let Some(vs) = &c.in_ {
                if vs.is_empty() {
                    p.push(&format!("{path}.in"), "is empty");
                    return None;
                }
                return Some(Condition::In(key, vs.iter().cloned().collect()));
            }
            if let Some(re) = &c.matches {
                return match Regex::new(re) {
                    Ok(r) => Some(Condition::Matches(key, r)),
                    Err(_) => {
                        p.push(&format!("{path}.matches"), "is not a valid regex");
                        None
                    }
                };
            }
        }
        if let Some(lit) = &c.line_contains {
            if lit.is_empty() {
                p.push(&format!("{path}.line_contains"), "is empty");
                return None;
            }
            return Some(Condition::LineContains(Box::new(
                memchr::memmem::Finder::new(lit.as_bytes()).into_owned(),
            )));
        }
        if let Some(re) = &c.line_matches {
            return match BytesRegex::new(re) {
                Ok(r) => Some(Condition::LineMatches(r)),
                Err(_) => {
                    p.push(&format!("{path}.line_matches"), "is not a valid regex");
                    None
                }
            };
        }
        let (list, name) = match (&c.all, &c.any) {
            (Some(l), _) => (l, "all"),
            (_, Some(l)) => (l, "any"),
            _ => unreachable!("one kind is set"),
        };
        if list.is_empty() {
            p.push(&format!("{path}.{name}"), "is empty");
            return None;
        }
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, c) in list.iter().enumerate() {
            match Condition::compile(c, &format!("{path}.{name}[{i}]"), p) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(if name == "all" {
            Condition::All(out)
        } else {
            Condition::Any(out)
        })
    }

    /// Adds the normalised field names this condition reads.
    pub(crate) fn fields(&self, out: &mut HashSet<String>) {
        match self {
            Condition::Equals(k, _) | Condition::In(k, _) | Condition::Matches(k, _) => {
                out.insert(k.clone());
            }
            Condition::LineContains(_) | Condition::LineMatches(_) => {}
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.fields(out)),
        }
    }

    /// Literals of which a matching line (JSON, logfmt or raw) contains at
    /// least one, or `None` when no such set is known (a regex).
    pub(crate) fn literals(&self) -> Option<Vec<Literal>> {
        match self {
            Condition::Equals(_, v) => verbatim(v).then(|| vec![(v.as_bytes().to_vec(), true)]),
            Condition::In(_, vs) => vs
                .iter()
                .map(|v| verbatim(v).then(|| (v.as_bytes().to_vec(), true)))
                .collect(),
            Condition::Matches(..) | Condition::LineMatches(_) => None,
            Condition::LineContains(f) => Some(vec![(f.needle().to_vec(), false)]),
            // Every child holds: any one child's literals will do; take the
            // smallest set.
            Condition::All(cs) => cs
                .iter()
                .filter_map(Condition::literals)
                .min_by_key(Vec::len),
            // Some child holds: all children need literals.
            Condition::Any(cs) => {
                let mut out = Vec::new();
                for c in cs {
                    out.extend(c.literals()?);
                }
                Some(out)
            }
        }
    }

    pub(crate) fn eval(&self, rec: &RecordView<'_>, fields: &Fields) -> bool {
        match self {
            Condition::Equals(k, v) => fields.get(k) == Some(v.as_str()),
            Condition::In(k, vs) => fields.get(k).is_some_and(|v| vs.contains(v)),
            Condition::Matches(k, re) => fields.get(k).is_some_and(|v| re.is_match(v)),
            Condition::LineContains(f) => f.find(rec.line()).is_some(),
            Condition::LineMatches(re) => re.is_match(rec.line()),
            Condition::All(cs) => cs.iter().all(|c| c.eval(rec, fields)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(rec, fields)),
        }
    }
}

/// The cheap test run on every record before any parsing: a line can match
/// a signal only if it contains one of the signals' literals. One
/// Aho-Corasick searcher over all of them (its packed SIMD searcher, Teddy,
/// for sets this small) answers for every signal at once, with no
/// allocation; a hit is then checked in place.
///
/// A field value compared for equality must stand as a whole value in the
/// line: quoted (`"completed"`), after `=` up to a space or the end
/// (logfmt), or after `:`, `,` or `[` up to `,`, `}`, `]`, a space or the
/// end (JSON numbers and literals). So `"evt":"completed"` and
/// `evt=completed` are candidates, and `msg="request completed"` is not.
///
/// This was one regex of the same alternatives until the tail bench showed
/// the signals costing far more than their 10% budget: the JSON-number
/// branch starts with `[:,\[]`, bytes on every JSON line, so the regex's
/// literal prefilter could not skip anything and its lazy DFA read every
/// byte of every line, twice (the signals' and the crisis selector's).
#[derive(Clone)]
pub(crate) struct Prefilter {
    /// `None`: some signal has no literal set; every line is a candidate.
    any: Option<Literals>,
}

#[derive(Clone)]
struct Literals {
    searcher: Searcher,
    /// Per pattern: whether it must stand as a whole value (else anywhere).
    whole_value: Vec<bool>,
}

/// Teddy, the packed SIMD searcher, asked for by name: left to choose,
/// `AhoCorasick` took a start-byte prefilter for the crisis selector's
/// literals (`crisis_...` and `\u`: two start bytes, `c` and `\`) that
/// stopped at every `c` of every line. The automaton is the fallback where
/// Teddy cannot be built (no SSSE3, too many literals).
#[derive(Clone)]
enum Searcher {
    Teddy(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Searcher {
    fn new(patterns: &[Vec<u8>]) -> Option<Searcher> {
        use aho_corasick::packed;
        let teddy = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(patterns)
            .build();
        if let Some(t) = teddy {
            return Some(Searcher::Teddy(t));
        }
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .ok()
            .map(Searcher::Automaton)
    }

    /// The leftmost-longest match starting at `at` or later.
    fn find(&self, line: &[u8], at: usize) -> Option<aho_corasick::Match> {
        match self {
            Searcher::Teddy(t) => t.find_in(line, aho_corasick::Span::from(at..line.len())),
            Searcher::Automaton(a) => a.find(Input::new(line).range(at..)),
        }
    }
}

impl fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefilter")
            .field("enabled", &self.any.is_some())
            .finish()
    }
}

impl Prefilter {
    /// From each signal's literal set (`None` for a signal without one).
    pub(crate) fn new(sets: &[Option<Vec<Literal>>]) -> Prefilter {
        if sets.iter().any(Option::is_none) {
            return Prefilter { any: None };
        }
        // A literal wanted anywhere also covers its whole-value uses.
        let mut literals: std::collections::BTreeMap<Vec<u8>, bool> =
            std::collections::BTreeMap::new();
        // A JSON line may spell any character as `\uXXXX`.
        literals.insert(b"\\u".to_vec(), false);
        for (lit, whole_value) in sets.iter().flatten().flatten() {
            let w = literals.entry(lit.clone()).or_insert(*whole_value);
            *w &= *whole_value;
        }
        let (patterns, whole_value): (Vec<Vec<u8>>, Vec<bool>) = literals.into_iter().unzip();
        let any = Searcher::new(&patterns).map(|searcher| Literals {
            searcher,
            whole_value,
        });
        Prefilter { any }
    }

    /// Whether the line may match some signal.
    pub(crate) fn may_match(&self, rec: &RecordView<'_>) -> bool {
        if !rec.fields_in_line() {
            return true;
        }
        let Some(l) = &self.any else {
            return true;
        };
        let line = rec.line();
        let mut at = 0;
        while at < line.len() {
            let Some(m) = l.searcher.find(line, at) else {
                return false;
            };
            if !l.whole_value[m.pattern().as_usize()] || whole_value(line, m.start(), m.end()) {
                return true;
            }
            // A shorter literal may start inside this one: go on from the
            // next byte, not from the end of the match.
            at = m.start() + 1;
        }
        false
    }
}

/// Whether `line[start..end]` stands as a whole value: `"v"`, `=v` up to a
/// space or the end, or `v` after `:`, `,` or `[` (and spaces) up to `,`,
/// `}`, `]`, a space or the end.
fn whole_value(line: &[u8], start: usize, end: usize) -> bool {
    let after = line.get(end).copied();
    let bare_end =
        |extra: &[u8]| after.is_none_or(|b| b.is_ascii_whitespace() || extra.contains(&b));
    match start.checked_sub(1).map(|i| line[i]) {
        Some(b'"') => after == Some(b'"'),
        Some(b'=') => bare_end(b""),
        _ => {
            let before = line[..start].iter().rposition(|b| !b.is_ascii_whitespace());
            before.is_some_and(|i| matches!(line[i], b':' | b',' | b'[')) && bare_end(b",}]")
        }
    }
}
