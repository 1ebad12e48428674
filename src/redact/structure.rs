//! Structure in a line: JSON objects, `key=value` pairs, `key: value`,
//! quoted keys from language dumps, SQL literals and URL query strings.
//!
//! Keys say what a value is, so the scanners here find (key, value span)
//! pairs without building a tree and without allocating: JSON is walked with a
//! fixed-depth stack of frames kept in the caller's scratch space, and keys are
//! normalised into stack buffers.

use std::sync::LazyLock;

use super::class;
use super::simd::LineMasks;
use memchr::memmem::Finder;
use memchr::{memchr, memchr2, memchr2_iter, memchr3};

// Key normalisation is shared with the classifier and the route stage, so it
// lives in `crate::keys`; it is re-exported here because the scanners and
// the engine name it as part of the structure vocabulary.
pub use crate::keys::{normalise_key, MAX_KEY};

/// A value found by a structure scanner.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// The rule its key names, if any.
    pub rule: Option<u32>,
    /// The value's span. For quoted values, the text inside the quotes.
    pub start: usize,
    pub end: usize,
    /// The value is a JSON non-string (number, literal, container) and a
    /// replacement must be written as a JSON string.
    pub quote: bool,
    /// The value is a URL query parameter and may be percent-encoded.
    pub query: bool,
    /// The value was unquoted free text, so its end is a guess.
    pub bare: bool,
}

/// One JSON container on the scanner's stack.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    object: bool,
    /// The rule inherited from the key that holds this container.
    rule: Option<u32>,
    /// The normalised key that holds this container, for `parent.child` keys.
    key: [u8; PARENT_KEY],
    key_len: u8,
}

/// JSON nesting deeper than this is scanned as text: values inside are still
/// seen by the value detectors, only their keys are not.
pub const MAX_DEPTH: usize = 64;

/// Walks a JSON object line and reports every scalar value whose key (or an
/// enclosing key) names a rule. Returns false when the line is not JSON or is
/// nested too deep; pairs reported before that point stand.
pub fn scan_json(
    hay: &[u8],
    stack: &mut Vec<Frame>,
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
    inherit: &dyn Fn(u32) -> bool,
    out: &mut dyn FnMut(Pair),
) -> bool {
    stack.clear();
    let n = hay.len();
    let mut p = skip_ws(hay, 0);
    if p >= n || hay[p] != b'{' {
        return false;
    }
    // The key of the value about to be read, and whether we expect a key.
    let mut cur_rule: Option<u32> = None;
    let mut cur_key = [0u8; PARENT_KEY];
    let mut cur_key_len = 0u8;
    loop {
        p = skip_ws(hay, p);
        if p >= n {
            return stack.is_empty();
        }
        let in_object = stack.last().is_some_and(|f| f.object);
        match hay[p] {
            b'{' | b'[' => {
                if stack.len() == MAX_DEPTH {
                    return false;
                }
                stack.push(Frame {
                    object: hay[p] == b'{',
                    // An array's items are values of its key (`"given":
                    // ["Ana"]`); an object's are judged by their own keys.
                    rule: cur_rule.filter(|&r| hay[p] == b'[' || inherit(r)),
                    key: cur_key,
                    key_len: cur_key_len,
                });
                p += 1;
                p = skip_ws(hay, p);
                if hay.get(p) == Some(&b'{') || hay.get(p) == Some(&b'[') {
                    continue;
                }
                if stack.last().is_some_and(|f| f.object) {
                    // Read the first key.
                    if hay.get(p) == Some(&b'}') {
                        continue;
                    }
                    match read_key(hay, p, stack, lookup) {
                        Some((np, rule, key, len)) => {
                            p = np;
                            cur_rule = rule;
                            cur_key = key;
                            cur_key_len = len;
                        }
                        None => return false,
                    }
                } else {
                    cur_rule = stack.last().and_then(|f| f.rule);
                }
            }
            b'}' | b']' => {
                stack.pop();
                p += 1;
                if stack.is_empty() {
                    return true;
                }
            }
            b',' => {
                p += 1;
                if in_object {
                    p = skip_ws(hay, p);
                    match read_key(hay, p, stack, lookup) {
                        Some((np, rule, key, len)) => {
                            p = np;
                            cur_rule = rule;
                            cur_key = key;
                            cur_key_len = len;
                        }
                        None => return false,
                    }
                } else {
                    cur_rule = stack.last().and_then(|f| f.rule);
                }
            }
            b'"' => {
                let Some(close) = string_end(hay, p + 1) else {
                    return false;
                };
                if let Some(rule) = cur_rule {
                    out(Pair {
                        rule: Some(rule),
                        start: p + 1,
                        end: close,
                        quote: false,
                        query: false,
                        bare: false,
                    });
                }
                p = close + 1;
            }
            _ => {
                // A number or literal.
                let s = p;
                while p < n && !b",}] \t\r\n".contains(&hay[p]) {
                    p += 1;
                }
                if p == s {
                    return false;
                }
                if let Some(rule) = cur_rule {
                    out(Pair {
                        rule: Some(rule),
                        start: s,
                        end: p,
                        quote: true,
                        query: false,
                        bare: false,
                    });
                }
            }
        }
    }
}

type KeyRead = (usize, Option<u32>, [u8; PARENT_KEY], u8);

/// The longest parent key kept for `parent.child` lookups.
const PARENT_KEY: usize = 24;

/// Reads `"key" :` at `p`; returns the offset after the colon, the rule for
/// the key (own, `parent+key`, or inherited), and the key's short form.
fn read_key(
    hay: &[u8],
    p: usize,
    stack: &[Frame],
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
) -> Option<KeyRead> {
    if hay.get(p) != Some(&b'"') {
        return None;
    }
    let close = string_end(hay, p + 1)?;
    let mut q = skip_ws(hay, close + 1);
    if hay.get(q) != Some(&b':') {
        return None;
    }
    q += 1;
    let parent = stack.last();
    let raw = &hay[p + 1..close];
    // `{"patient": {"name": ...}}` is the key `patient.name`, which says
    // more than `name` alone, so it is asked first.
    let mut rule = None;
    if let Some(f) = parent.filter(|f| f.key_len > 0) {
        let pl = f.key_len as usize;
        if pl + 1 + raw.len() <= MAX_KEY {
            let mut joined = [0u8; MAX_KEY];
            joined[..pl].copy_from_slice(&f.key[..pl]);
            joined[pl] = b'.';
            joined[pl + 1..pl + 1 + raw.len()].copy_from_slice(raw);
            rule = lookup(&joined[..pl + 1 + raw.len()]);
        }
    }
    if rule.is_none() {
        rule = lookup(raw);
    }
    let mut short = [0u8; PARENT_KEY];
    let sl = raw.len().min(PARENT_KEY);
    short[..sl].copy_from_slice(&raw[..sl]);
    let rule = rule.or_else(|| parent.and_then(|f| f.rule));
    Some((q, rule, short, sl as u8))
}

fn skip_ws(hay: &[u8], mut p: usize) -> usize {
    while p < hay.len() && matches!(hay[p], b' ' | b'\t' | b'\r' | b'\n') {
        p += 1;
    }
    p
}

/// The index of the quote closing a JSON string whose content starts at `p`.
fn string_end(hay: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let i = memchr2(b'"', b'\\', &hay[p..])? + p;
        if hay[i] == b'"' {
            return Some(i);
        }
        p = i + 2;
        if p > hay.len() {
            return None;
        }
    }
}

/// ASCII letters and digits, `_`, `.` and `-`: one table load (four
/// compares were 1.8% of the engine's instructions on clean lines, keys
/// being walked back from every `:` and `=`).
#[inline]
fn is_key_byte(b: u8) -> bool {
    class::is(b, class::DIGIT | class::ALPHA | class::TOKEN_JOIN)
}

/// How many times its length [`scan_pairs`] may spend on a line's values
/// (plus [`REREAD_SLACK`] bytes) before it stops reading refused values
/// again for the pairs inside them: the bound that keeps a line's cost
/// linear in its length.
const REREAD_FACTOR: usize = 4;
const REREAD_SLACK: usize = 64 << 10;

/// The bytes of values a pass may read on a line of `len` bytes when values
/// nest in one another: [`scan_pairs`]' re-read values, and the engine's
/// message values extended to their text's end.
pub fn reread_budget(len: usize) -> usize {
    len.saturating_mul(REREAD_FACTOR)
        .saturating_add(REREAD_SLACK)
}

/// A forward search asked from positions that only grow: its answer (the
/// first match at or after the position, or the line's length) is kept
/// until the position passes it, so the line is read once however often
/// it is asked. Searching afresh from each position read a line once per
/// key (`[`-values without a `]`, escapes on a line without spaces).
#[derive(Debug, Default)]
pub struct KeptSearch {
    found: Option<usize>,
}

impl KeptSearch {
    /// The first match at or after `from`, by `search(from)`, which must
    /// give the same first match for every `from` up to it.
    pub fn next(&mut self, from: usize, search: impl FnOnce(usize) -> usize) -> usize {
        match self.found {
            Some(f) if f >= from => f,
            _ => {
                let f = search(from);
                self.found = Some(f);
                f
            }
        }
    }
}

/// Finds `key=value`, `key: value`, `'key': 'value'`, `key = 'value'` and
/// `key => value` pairs in free text. Reports pairs whose key names a rule,
/// and every URL query parameter (which may hide encoded values); `out`
/// says whether it took the value.
///
/// With `eq_only`, only `=` separates (the line is JSON, whose own `"k": v`
/// pairs the JSON walk has read; what is left are `k=v` pairs and query
/// strings inside its string values).
pub fn scan_pairs(
    hay: &[u8],
    eq_only: bool,
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
    out: &mut dyn FnMut(Pair) -> bool,
) {
    // A JSON line has a colon per field: with `eq_only` they are not even
    // visited.
    let (a, b) = if eq_only { (b'=', b'=') } else { (b'=', b':') };
    pairs_at(hay, memchr2_iter(a, b, hay), lookup, out);
}

/// [`scan_pairs`] over a line the engine has classified: the separators
/// come from its masks instead of a `memchr2` call each.
pub fn scan_pairs_masked(
    hay: &[u8],
    masks: &LineMasks,
    eq_only: bool,
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
    out: &mut dyn FnMut(Pair) -> bool,
) {
    debug_assert_eq!(masks.len(), hay.len());
    pairs_at(hay, masks.separators(eq_only), lookup, out);
}

/// The pairs at `separators`, the offsets of the `=` (and `:`) of `hay`
/// in order.
fn pairs_at(
    hay: &[u8],
    separators: impl Iterator<Item = usize>,
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
    out: &mut dyn FnMut(Pair) -> bool,
) {
    let n = hay.len();
    let mut resume = 0;
    let mut escapes = EscapeLookahead::default();
    let mut next_close = KeptSearch::default();
    let budget = reread_budget(n);
    let mut reread = 0usize;
    for p in separators {
        if p < resume {
            continue;
        }
        let sep = hay[p];
        // Skip `==`, `:=`, `::`, `!=` and URL schemes (`https://`).
        let prev = if p > 0 { hay[p - 1] } else { 0 };
        if prev == b'=' || prev == b':' || prev == b'!' || prev == b'<' || prev == b'>' {
            continue;
        }
        let next = hay.get(p + 1).copied().unwrap_or(0);
        if next == b'=' || (sep == b':' && (next == b':' || next == b'/')) {
            continue;
        }
        // The key, walking back over spaces (only before `=`: `col = 'x'`;
        // `Class : message` is a logger's layout, not a key) and a closing
        // quote.
        let mut k = p;
        while sep == b'=' && k > 0 && hay[k - 1] == b' ' && p - k < 2 {
            k -= 1;
        }
        let mut quote = 0u8;
        if k > 0 && matches!(hay[k - 1], b'"' | b'\'' | b'`') {
            quote = hay[k - 1];
            k -= 1;
        } else if k > 0 && hay[k - 1] == b']' && sep == b'=' && next == b'>' {
            // PHP's print_r: `[key] => value`.
            quote = b'[';
            k -= 1;
        }
        let key_end = k;
        while k > 0 && is_key_byte(hay[k - 1]) {
            k -= 1;
        }
        let key_start = k;
        if key_start == key_end {
            continue;
        }
        // `fax-gateway:2.37.23`, `api-svc:8080`, `api.example.org:443`: a
        // service, host or image name and its tag or port, not a key and its
        // value.
        if sep == b':'
            && quote == 0
            && next != b' '
            && (hay[key_start..key_end].contains(&b'-')
                || (hay[key_start..key_end].contains(&b'.') && next.is_ascii_digit()))
        {
            continue;
        }
        if quote != 0 {
            if key_start == 0 || hay[key_start - 1] != quote {
                continue;
            }
        } else if key_start > 0
            && (hay[key_start - 1].is_ascii_alphanumeric() || hay[key_start - 1] >= 0x80)
        {
            continue;
        }
        let before = if key_start > usize::from(quote != 0) {
            hay[key_start - 1 - usize::from(quote != 0)]
        } else {
            0
        };
        let query = sep == b'=' && (before == b'?' || before == b'&');
        let rule = lookup(&hay[key_start..key_end]);
        // An unkeyed value is still reported when it is percent-encoded
        // (`redirect_uri=https%3A%2F%2F...%3Ffirst%3DAna`): what it hides is
        // only seen decoded.
        if rule.is_none() && !query && !escapes.encoded_after(hay, p + 1) {
            continue;
        }
        // The value.
        let mut v = p + 1;
        if sep == b'=' && next == b'>' {
            v += 1;
        }
        while v < n && hay[v] == b' ' {
            v += 1;
        }
        if v >= n {
            continue;
        }
        let bare = !matches!(hay[v], b'"' | b'\'' | b'`');
        let (vs, ve, after) = if !bare {
            let q = hay[v];
            match quoted_end(hay, v + 1, q) {
                Some(e) => (v + 1, e, e + 1),
                // An unclosed quote after a key inside a quoted string
                // (`msg="contact phone:" status=200`) closes that string; it
                // opens no value.
                None if inside_quotes(&hay[..key_start], q) => continue,
                // A line cut inside a quoted value: the rest is the value.
                None => (v + 1, n, n),
            }
        } else if hay[v] == b'[' {
            // A bracketed value (`[1, 2]`, or a replacement token from an
            // earlier pass) runs to its closing bracket.
            // The next `]` is kept for the values after this one: a line of
            // `[` without one was searched to its end once per value.
            let close = next_close.next(v, |v| memchr(b']', &hay[v..]).map_or(n, |i| v + i));
            if close < n {
                (v, close + 1, close + 1)
            } else {
                let e = bare_end(hay, v);
                (v, e, e)
            }
        } else if query {
            let e = hay[v..]
                .iter()
                .position(|b| b"& #\"'\t".contains(b))
                .map_or(n, |i| v + i);
            (v, e, e)
        } else {
            let e = bare_end(hay, v);
            (v, e, e)
        };
        // A value taken whole is skipped over; a value the caller refused (a
        // message key whose text is not a message) is read on, for the pairs
        // inside it (`body: first=Ana&last=Ruiz`).
        let taken = ve > vs
            && out(Pair {
                rule,
                start: vs,
                end: ve,
                quote: false,
                query,
                bare,
            });
        // A refused value is read on for the pairs inside it, and each of
        // those values ends where the refused one did: `name=name=name=...`
        // would hand the caller every suffix of the line. Past a budget of a
        // few times the line's length, a refused value is skipped over like
        // a taken one (the line's values are still searched by shape).
        reread += after - v;
        if taken || reread > budget {
            resume = after;
        }
    }
}

/// Whether the value starting at or just after `v` begins with text that
/// holds a percent escape (`%3A`) before the next white space or `&`.
///
/// [`scan_pairs`] asks this of every key it finds, in increasing order of
/// `v`, so both answers are kept and only searched again once `v` has
/// passed them: the whole line is read at most twice. Searching from each
/// `v` to the next white space instead read a line without spaces once per
/// key, and a 240 KB line of nested JSON took 5.7 s.
#[derive(Debug, Default)]
struct EscapeLookahead {
    /// The first escape.
    escape: KeptSearch,
    /// The first white space or `&`.
    stop: KeptSearch,
}

impl EscapeLookahead {
    fn encoded_after(&mut self, hay: &[u8], v: usize) -> bool {
        let v = v.min(hay.len());
        let escape = self.escape.next(v, |v| next_escape(hay, v));
        let stop = self.stop.next(v, |v| {
            memchr3(b' ', b'\t', b'&', &hay[v..]).map_or(hay.len(), |i| v + i)
        });
        escape < stop
    }
}

/// The position of the first percent escape (`%` and two hex digits) at or
/// after `from`, or the length of `hay`.
fn next_escape(hay: &[u8], from: usize) -> usize {
    let mut p = from;
    while let Some(i) = memchr(b'%', &hay[p..]) {
        let at = p + i;
        if hay.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
            && hay.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            return at;
        }
        p = at + 1;
    }
    hay.len()
}

/// Whether the end of `text` lies inside a `q`-quoted string: an odd number
/// of unescaped `q` quotes.
fn inside_quotes(text: &[u8], q: u8) -> bool {
    let mut inside = false;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 1,
            b if b == q => inside = !inside,
            _ => {}
        }
        i += 1;
    }
    inside
}

/// SQL in log lines: pairs column names with their values by position and
/// reports values whose column names a rule, the SQL form of a key and its
/// value. Three shapes are read:
///
/// * `INSERT INTO t (a, b) VALUES ('x', 'y'), (...)`;
/// * the same with placeholders (`%(a)s`, `?`, `$1`) and the values in a
///   following `parameters: ('x', 'y')` tuple (SQLAlchemy's error text);
/// * PostgreSQL's `Key (a, b)=(x, y)` in constraint-violation details.
pub fn scan_sql(hay: &[u8], lookup: &dyn Fn(&[u8]) -> Option<u32>, out: &mut dyn FnMut(Pair)) {
    // Both forms hold `)=(` or ` VALUES (`: a `)` is the cheap first test.
    if memchr::memchr(b')', hay).is_none() {
        return;
    }
    scan_sql_insert(hay, lookup, out);
    scan_key_detail(hay, lookup, out);
}

/// The columns of the tuple `(open, close)` and the rule each one names.
type Columns = ([Option<u32>; 64], usize);

fn column_rules(
    hay: &[u8],
    open: usize,
    close: usize,
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
) -> Option<Columns> {
    let mut rules = [None; 64];
    let mut nc = 0;
    for (s, e) in split_top(hay, open + 1, close) {
        if nc == rules.len() {
            break;
        }
        let (mut s, mut e) = (s, e);
        while s < e && matches!(hay[s], b' ' | b'`' | b'"' | b'[') {
            s += 1;
        }
        while e > s && matches!(hay[e - 1], b' ' | b'`' | b'"' | b']') {
            e -= 1;
        }
        rules[nc] = lookup(&hay[s..e]);
        nc += 1;
    }
    rules.iter().any(Option::is_some).then_some((rules, nc))
}

/// Reports the values of the tuple whose content is `(s, e)` under the
/// columns' rules. Quotes are stripped; `NULL` and placeholders are skipped.
fn emit_tuple(hay: &[u8], s: usize, e: usize, cols: &Columns, out: &mut dyn FnMut(Pair)) {
    for (i, (s, e)) in split_top(hay, s, e).enumerate() {
        let Some(rule) = cols.0.get(i).copied().flatten() else {
            continue;
        };
        let (mut s, mut e) = (s, e);
        while s < e && hay[s] == b' ' {
            s += 1;
        }
        while e > s && hay[e - 1] == b' ' {
            e -= 1;
        }
        let quoted = e - s >= 2 && hay[s] == b'\'' && hay[e - 1] == b'\'';
        let (s, e) = if quoted { (s + 1, e - 1) } else { (s, e) };
        let v = &hay[s..e];
        if e > s && !v.eq_ignore_ascii_case(b"null") && !is_placeholder(v) {
            out(Pair {
                rule: Some(rule),
                start: s,
                end: e,
                quote: false,
                query: false,
                bare: false,
            });
        }
    }
}

/// A bind placeholder: `%(name)s`, `%s`, `?`, `$1`, `:name`.
fn is_placeholder(v: &[u8]) -> bool {
    match v {
        b"?" | b"%s" => true,
        [b'%', b'(', .., b')', b's'] => true,
        [b'$', rest @ ..] => !rest.is_empty() && rest.iter().all(u8::is_ascii_digit),
        [b':', rest @ ..] => {
            !rest.is_empty() && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        _ => false,
    }
}

fn scan_sql_insert(hay: &[u8], lookup: &dyn Fn(&[u8]) -> Option<u32>, out: &mut dyn FnMut(Pair)) {
    let Some(vpos) = find_values_keyword(hay) else {
        return;
    };
    // The column list is the last parenthesised group before VALUES.
    let Some(close) = hay[..vpos].iter().rposition(|&b| b == b')') else {
        return;
    };
    let Some(open) = hay[..close].iter().rposition(|&b| b == b'(') else {
        return;
    };
    let Some(cols) = column_rules(hay, open, close, lookup) else {
        return;
    };
    // Each VALUES tuple.
    let mut p = vpos + 7;
    loop {
        while p < hay.len() && matches!(hay[p], b' ' | b',') {
            p += 1;
        }
        if hay.get(p) != Some(&b'(') {
            break;
        }
        let Some(end) = tuple_end(hay, p + 1) else {
            return;
        };
        emit_tuple(hay, p + 1, end, &cols, out);
        p = end + 1;
    }
    // The bound values of a statement with placeholders.
    static PARAMS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"parameters: ("));
    if let Some(i) = PARAMS.find(&hay[p..]) {
        let open = p + i + 13;
        if let Some(end) = tuple_end(hay, open) {
            emit_tuple(hay, open, end, &cols, out);
        }
    }
}

/// PostgreSQL's `Key (a, b)=(x, y)`: the columns of a violated constraint
/// and the offending row's values.
fn scan_key_detail(hay: &[u8], lookup: &dyn Fn(&[u8]) -> Option<u32>, out: &mut dyn FnMut(Pair)) {
    static KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Key ("));
    let mut from = 0;
    while let Some(i) = KEY.find(&hay[from..]) {
        let open = from + i + 4;
        from = open + 1;
        let Some(close) = tuple_end(hay, open + 1) else {
            return;
        };
        if hay.get(close + 1) != Some(&b'=') || hay.get(close + 2) != Some(&b'(') {
            continue;
        }
        let Some(vend) = tuple_end(hay, close + 3) else {
            return;
        };
        if let Some(cols) = column_rules(hay, open, close, lookup) {
            emit_tuple(hay, close + 3, vend, &cols, out);
        }
        from = vend;
    }
}

/// The end of a bare value under a name key that goes on after a comma:
/// `Riddle,Elizabeth` and `PENA, WILLIAM` are one name (`Last, First`). The
/// words after the comma are taken while they are words of letters in the
/// style of the first (`Johnston,Jeffrey NPI ...` stops before `NPI`).
pub fn name_value_end(hay: &[u8], end: usize) -> usize {
    if hay.get(end) != Some(&b',') {
        return end;
    }
    let mut p = end + 1;
    if hay.get(p) == Some(&b' ') {
        p += 1;
    }
    let is_letter = |b: u8| b.is_ascii_alphabetic() || b >= 0x80 || b == b'\'' || b == b'-';
    let word_at = |s: usize| {
        let mut e = s;
        while e < hay.len() && is_letter(hay[e]) {
            e += 1;
        }
        e
    };
    let first_end = word_at(p);
    if first_end == p || !(hay[p].is_ascii_uppercase() || hay[p] >= 0x80) {
        return end;
    }
    let caps = hay[p..first_end].iter().all(|b| !b.is_ascii_lowercase());
    let mut out = first_end;
    let mut q = first_end;
    for _ in 0..3 {
        if hay.get(q) != Some(&b' ') {
            break;
        }
        let s = q + 1;
        let e = word_at(s);
        if e == s || !(hay[s].is_ascii_uppercase() || hay[s] >= 0x80) {
            break;
        }
        let w_caps = hay[s..e].iter().all(|b| !b.is_ascii_lowercase());
        if w_caps != caps || hay.get(e).is_some_and(|&b| b == b'=' || b == b':') {
            break;
        }
        out = e;
        q = e;
    }
    // The value must end at a delimiter, not inside a longer token.
    if hay.get(out).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return end;
    }
    out
}

/// Finds ` values` in upper or lower case (SIMD substring search; this runs
/// on every line, so no per-byte case folding, and the searchers are built
/// once: building one costs more than searching a short line).
fn find_values_keyword(hay: &[u8]) -> Option<usize> {
    static UPPER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" VALUES"));
    static LOWER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" values"));
    UPPER.find(hay).or_else(|| LOWER.find(hay))
}

/// The `)` closing a tuple whose content starts at `p`, skipping quoted
/// strings and nested parentheses.
fn tuple_end(hay: &[u8], mut p: usize) -> Option<usize> {
    let mut depth = 0usize;
    while p < hay.len() {
        match hay[p] {
            b'\'' => p = quoted_end(hay, p + 1, b'\'')?,
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(p),
            b')' => depth -= 1,
            _ => {}
        }
        p += 1;
    }
    None
}

/// Splits `hay[s..e]` at top-level commas (outside quotes and parentheses).
fn split_top(hay: &[u8], s: usize, e: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut p = s;
    let mut done = s >= e;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let start = p;
        let mut depth = 0usize;
        while p < e {
            match hay[p] {
                b'\'' => match quoted_end(hay, p + 1, b'\'') {
                    Some(q) if q < e => p = q,
                    _ => p = e - 1,
                },
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    let item = (start, p);
                    p += 1;
                    return Some(item);
                }
                _ => {}
            }
            p += 1;
        }
        done = true;
        Some((start, e))
    })
}

/// The closing quote of a quoted value; doubled quotes (SQL) and backslash
/// escapes stay inside.
fn quoted_end(hay: &[u8], mut p: usize, q: u8) -> Option<usize> {
    while p < hay.len() {
        let b = hay[p];
        if b == b'\\' {
            p += 2;
            continue;
        }
        if b == q {
            if hay.get(p + 1) == Some(&q) {
                p += 2;
                continue;
            }
            return Some(p);
        }
        p += 1;
    }
    None
}

/// The end of an unquoted value. A value runs over several words ("John
/// Smith") until a delimiter or the start of the next `key=` / `key:`, so a
/// name with a space in it is not cut in half.
fn bare_end(hay: &[u8], v: usize) -> usize {
    let n = hay.len();
    let stop: &[u8] = b",;&|)]}\"\t";
    let mut p = v;
    while p < n {
        let b = hay[p];
        if stop.contains(&b) {
            return p;
        }
        if b == b' ' {
            // Look at the next word: a key (`word=` or `word:`) ends the value.
            let mut q = p + 1;
            while q < n && is_key_byte(hay[q]) {
                q += 1;
            }
            if q > p + 1 && q < n && (hay[q] == b'=' || hay[q] == b':') {
                return p;
            }
            if q == p + 1 {
                // Two spaces or a space before punctuation ends the value.
                return p;
            }
        }
        p += 1;
    }
    n
}

/// The end of a bare free-text value starting at `v`: a message runs over
/// commas and spaces to the end of the line, a closing quote or brace, a
/// `|` field separator, or the next `key=` / `key:`.
pub fn text_value_end(hay: &[u8], v: usize) -> usize {
    let n = hay.len();
    let mut p = v;
    while p < n {
        match hay[p] {
            b'"' | b'|' | b'}' | b'\t' | b'&' => return p,
            b' ' => {
                let mut q = p + 1;
                while q < n && is_key_byte(hay[q]) {
                    q += 1;
                }
                if q > p + 1
                    && q < n
                    && (hay[q] == b'=' || (hay[q] == b':' && hay.get(q + 1) == Some(&b' ')))
                {
                    return p;
                }
            }
            _ => {}
        }
        p += 1;
    }
    n
}

/// Whether `v` is an opaque id with a short type prefix (`clm_4471`,
/// `pat_8f3a2b`, `usr_Q3x9`): two to six lower-case letters, `_`, then
/// letters and digits.
pub fn is_opaque_id(v: &[u8]) -> bool {
    let Some(u) = v.iter().position(|&b| b == b'_') else {
        return false;
    };
    (2..=6).contains(&u)
        && v[..u].iter().all(u8::is_ascii_lowercase)
        && v.len() > u + 3
        && v[u + 1..].iter().all(u8::is_ascii_alphanumeric)
}

/// Whether `v` is a replacement token scrubs wrote (`[REDACTED:SSN]`,
/// `[NAME:7f3a9c2e]`), which must not be redacted again: a second pass over
/// scrubbed output leaves it as it is.
/// The longest replacement token scrubs writes, with room to spare.
pub const MAX_OWN_TOKEN: usize = 96;

pub fn is_own_token(v: &[u8]) -> bool {
    // A tag and a pseudonym fit well within this; a longer bracketed text
    // is not read (a line of `[[[...]` offers one candidate per bracket).
    if v.len() > MAX_OWN_TOKEN {
        return false;
    }
    let Some(inner) = v.strip_prefix(b"[").and_then(|v| v.strip_suffix(b"]")) else {
        return false;
    };
    let Some(colon) = inner.iter().position(|&b| b == b':') else {
        return false;
    };
    let (tag, rest) = (&inner[..colon], &inner[colon + 1..]);
    !tag.is_empty()
        && !rest.is_empty()
        && tag.iter().all(|b| b.is_ascii_uppercase() || *b == b'_')
        && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Decodes percent and plus encoding into `out`. Invalid escapes are kept as
/// they are.
pub fn url_decode(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a << 4 | b);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_are_ascii_letters_digits_underscore_dot_and_hyphen() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
            assert_eq!(is_key_byte(b), want, "{b}");
        }
    }

    fn lookup(raw: &[u8]) -> Option<u32> {
        let mut buf = [0u8; MAX_KEY];
        let n = normalise_key(raw, &mut buf)?;
        match &buf[..n] {
            b"patientname" | b"lastname" => Some(1),
            b"ssn" => Some(2),
            b"diagnoses" => Some(3),
            _ => None,
        }
    }

    fn json(s: &str) -> Vec<(Option<u32>, String, bool)> {
        let mut stack = Vec::new();
        let mut v = Vec::new();
        scan_json(s.as_bytes(), &mut stack, &lookup, &|_| true, &mut |p| {
            v.push((p.rule, s[p.start..p.end].to_string(), p.quote))
        });
        v
    }

    /// The pairs of `s`, found with separators from `memchr2` and from the
    /// line's masks (which must agree).
    fn pairs(s: &str) -> Vec<(Option<u32>, String)> {
        let mut v = Vec::new();
        scan_pairs(s.as_bytes(), false, &lookup, &mut |p| {
            v.push((p.rule, s[p.start..p.end].to_string()));
            true
        });
        let mut masked = Vec::new();
        let mut masks = LineMasks::default();
        masks.classify(s.as_bytes());
        scan_pairs_masked(s.as_bytes(), &masks, false, &lookup, &mut |p| {
            masked.push((p.rule, s[p.start..p.end].to_string()));
            true
        });
        assert_eq!(masked, v, "masked separators disagree on {s:?}");
        v
    }

    #[test]
    fn json_keys() {
        assert_eq!(
            json(
                r#"{"patient":{"name":"A \"B\" C","x":1},"ssn":123456789,"diagnoses":["E11.9",{"k":"I10"}]}"#
            ),
            vec![
                (Some(1), r#"A \"B\" C"#.to_string(), false),
                (Some(2), "123456789".to_string(), true),
                (Some(3), "E11.9".to_string(), false),
                (Some(3), "I10".to_string(), false),
            ]
        );
        assert!(json("not json").is_empty());
    }

    #[test]
    fn text_pairs() {
        assert_eq!(
            pairs("patient_name=John Smith ssn=1"),
            vec![
                (Some(1), "John Smith".to_string()),
                (Some(2), "1".to_string())
            ]
        );
        assert_eq!(
            pairs("WHERE last_name = 'O''Hara'"),
            vec![(Some(1), "O''Hara".to_string())]
        );
        assert_eq!(
            pairs("{'patientName': 'Ann Lee', 'x': 2}"),
            vec![(Some(1), "Ann Lee".to_string())]
        );
        assert_eq!(
            pairs("GET /a?q=John%20Smith&page=2 HTTP/1.1"),
            vec![(None, "John%20Smith".to_string()), (None, "2".to_string())]
        );
        assert_eq!(
            pairs("Patient[patientName=Ann Lee, ssn=9]"),
            vec![(Some(1), "Ann Lee".to_string()), (Some(2), "9".to_string())]
        );
        assert!(pairs("https://x.org/a time=12:30:00").is_empty());
    }

    #[test]
    fn sql_insert_pairs_columns_and_values() {
        let s = "INSERT INTO t (id, patient_name, ssn) VALUES (1, 'Ann O''Lee', NULL), (2, 'Bo (B)', '9')";
        let mut v = Vec::new();
        scan_sql_insert(s.as_bytes(), &lookup, &mut |p| {
            v.push((p.rule, s[p.start..p.end].to_string()))
        });
        assert_eq!(
            v,
            vec![
                (Some(1), "Ann O''Lee".to_string()),
                (Some(1), "Bo (B)".to_string()),
                (Some(2), "9".to_string())
            ]
        );
    }

    #[test]
    fn decode() {
        let mut out = Vec::new();
        url_decode(b"John%20Smith+Jr%2", &mut out);
        assert_eq!(out, b"John Smith Jr%2");
    }

    /// Regression: a refused value was read again for every pair inside it,
    /// so `ssn=ssn=ssn=...` (each value refused) handed the caller every
    /// suffix of the line, and a 256 KB line took tens of seconds. The
    /// values handed out now add up to a few times the line's length.
    #[test]
    fn refused_values_are_not_reread_without_bound() {
        for unit in ["ssn=", "ssn: ", "ssn = ", "ssn=[", "?ssn=", "[ssn] => "] {
            let line = unit.repeat((256 << 10) / unit.len());
            let mut handed = 0usize;
            scan_pairs(line.as_bytes(), false, &lookup, &mut |p| {
                handed += p.end - p.start;
                false
            });
            let bound = line.len() + reread_budget(line.len());
            assert!(
                handed <= bound,
                "{unit:?}: {handed} bytes handed out, bound {bound}"
            );
        }
    }

    /// The same answer as reading from `v` to the next white space or `&`,
    /// however the questions go (in increasing order, as [`scan_pairs`]
    /// asks them).
    fn encoded_after_naive(hay: &[u8], v: usize) -> bool {
        let v = v.min(hay.len());
        let end = hay[v..]
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'&'))
            .map_or(hay.len(), |i| v + i);
        hay[v..end]
            .windows(3)
            .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    }

    proptest::proptest! {
        #[test]
        fn escape_lookahead_agrees_with_reading_each_value(
            hay in proptest::collection::vec(
                proptest::sample::select(b"%3aF &\tx=".to_vec()), 0..80),
            mut at in proptest::collection::vec(0usize..90, 0..20),
        ) {
            at.sort_unstable();
            let mut look = EscapeLookahead::default();
            for &v in &at {
                proptest::prop_assert_eq!(
                    look.encoded_after(&hay, v),
                    encoded_after_naive(&hay, v),
                    "at {}", v
                );
            }
        }
    }
}
