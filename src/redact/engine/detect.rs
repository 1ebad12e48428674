//! Detection: the passes that read one line (literals, structure and
//! formats, the tokenizer, the gated regex) and leave its findings in the
//! scratch, and the helpers that settle which findings stand.

use std::cell::Cell;

use regex_automata::meta;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::Input;

use super::{
    Engine, Finding, Hit, Mention, Scratch, State, TokenRule, STRENGTH_CONTEXT, STRENGTH_KEY,
    STRENGTH_PLAIN,
};
use crate::redact::class;
use crate::redact::formats;
use crate::redact::names;
use crate::redact::numeric::{self, NumToken};
use crate::redact::prose;
use crate::redact::simd;
use crate::redact::structure::{self, normalise_key, Pair, MAX_KEY};
use crate::redact::validate;
use crate::rules::{Category, ContextSide};

/// The literal hits found so far on a line, for the context checks.
#[derive(Clone, Copy)]
struct HitsSeen<'a> {
    hits: &'a [Hit],
    /// `hits` is in order of start.
    sorted: bool,
    /// The longest hit, in bytes.
    longest: usize,
}

impl<'a> HitsSeen<'a> {
    /// The hits that may overlap `lo..=hi` (a superset when not sorted).
    fn around(self, lo: usize, hi: usize) -> &'a [Hit] {
        if !self.sorted {
            return self.hits;
        }
        let from = lo.saturating_sub(self.longest);
        let a = self.hits.partition_point(|h| h.start < from);
        let b = self.hits.partition_point(|h| h.start <= hi);
        &self.hits[a..b.max(a)]
    }
}

impl State {
    fn seen(&self) -> HitsSeen<'_> {
        HitsSeen {
            hits: &self.hits,
            sorted: self.hits_sorted,
            longest: self.longest_hit,
        }
    }
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
    pub(super) fn keyed_value_ok(
        &self,
        rule: u32,
        line: &[u8],
        mentions: &[Cell<Mention>],
        value: &[u8],
        query: bool,
        decoded: &mut Vec<u8>,
    ) -> bool {
        // A key rule with context words takes the value only on a line that
        // mentions one of them, anywhere (`doc=IL_DL number=C436-3722-3802`).
        let r = &self.rules[rule as usize];
        if !r.line_words.is_empty() {
            // Looked up once per line: a line of many such keys would
            // otherwise be read once per key.
            let cell = &mentions[r.mention_slot];
            if cell.get() == Mention::Unknown {
                cell.set(if mentions_any(line, &r.line_words) {
                    Mention::Yes
                } else {
                    Mention::No
                });
            }
            if cell.get() == Mention::No {
                return false;
            }
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

    pub(super) fn detect_line(&self, hay: &[u8], s: &mut Scratch) {
        let Scratch {
            main,
            sub,
            stack,
            decoded,
            inner,
            num,
            regex_cache,
            keys,
            mentions,
            ..
        } = s;
        main.findings.clear();
        for m in mentions.iter() {
            m.set(Mention::Unknown);
        }
        let mentions = &**mentions;
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
                if structure::is_own_token(v)
                    || !self.keyed_value_ok(rule, hay, mentions, v, false, decoded)
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
                if self.keyed_value_ok(rule, hay, mentions, &hay[p.start..p.end], false, decoded) {
                    findings.push(Finding::keyed(p.start, p.end, rule));
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
                    main.findings.push(Finding::keyed(s, e, p.rule));
                }
            }
        }
        let mut query_values: [(usize, usize); 16] = [(0, 0); 16];
        let mut nq = 0;
        if !pairs_done || class::has_byte(hay, b'=') {
            let findings = &mut main.findings;
            let decoded = &mut *decoded;
            let mut text_end = (1, 0);
            let mut extended = 0usize;
            let extend_budget = structure::reread_budget(hay.len());
            structure::scan_pairs_masked(hay, &main.masks, pairs_done, &lookup, &mut |p: Pair| {
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
                        // Every message value nested in this one ends where
                        // it does: found once (a line of `msg = msg = ...`
                        // was read once per key).
                        if !(text_end.0..=text_end.1).contains(&p.start) {
                            text_end = (p.start, structure::text_value_end(hay, p.start));
                        }
                        // Each such value is read whole below: past a few
                        // times the line's length (`msg=a,msg=a,...`), the
                        // value is left as the pair scanner cut it.
                        let end = text_end.1.max(p.end);
                        extended += end - p.start;
                        if extended > extend_budget {
                            p
                        } else {
                            Pair { end, ..p }
                        }
                    }
                    _ => p,
                };
                let rule = p.rule.filter(|&r| {
                    self.keyed_value_ok(r, hay, mentions, &hay[p.start..p.end], p.query, decoded)
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
                    findings.push(Finding::keyed(p.start, end, rule));
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
                    structure::scan_pairs_masked(
                        text,
                        &sub.masks,
                        false,
                        &lookup,
                        &mut |p: Pair| {
                            let v = &text[p.start..p.end];
                            if let Some(rule) = p
                                .rule
                                .filter(|&r| self.keyed_value_ok(r, hay, mentions, v, true, inner))
                            {
                                findings.push(Finding::keyed(p.start, p.end, rule));
                                return true;
                            }
                            p.rule.is_none()
                        },
                    );
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
        st.hits_sorted = true;
        st.longest_hit = 0;
        // Zeroed in place: `clear` and `resize` called `memset` for these
        // few words on every value.
        let words = self.rules.len().div_ceil(64);
        for seen in [&mut st.context_seen, &mut st.gate_seen] {
            if seen.len() == words {
                seen.iter_mut().for_each(|w| *w = 0);
            } else {
                seen.clear();
                seen.resize(words, 0);
            }
        }
        st.masks.classify(hay);
        let State {
            hits,
            context_seen,
            gate_seen,
            hits_sorted,
            longest_hit,
            findings,
            triggered,
            masks,
        } = st;
        self.literals.find(hay, masks, |pid, s, e| {
            let pat = &self.literal_uses[pid as usize];
            if pat.trigger {
                *triggered = true;
                for &r in &pat.gated_rules {
                    gate_seen[r as usize / 64] |= 1 << (r % 64);
                }
            }
            let bounded = (s == 0 || !joined_before(hay, s) || !class::is_word(hay[s]))
                && (e == hay.len() || !joined_after(hay, e) || !class::is_word(hay[e - 1]));
            if !bounded && !pat.trigger {
                return;
            }
            if hits.last().is_some_and(|h| h.start > s) {
                *hits_sorted = false;
            }
            *longest_hit = (*longest_hit).max(e - s);
            hits.push(Hit {
                pattern: pid,
                start: s,
                end: e,
            });
            for &r in &pat.context_rules {
                context_seen[r as usize / 64] |= 1 << (r % 64);
            }
            if bounded {
                let seen = HitsSeen {
                    hits,
                    sorted: *hits_sorted,
                    longest: *longest_hit,
                };
                for &r in &pat.keyword_rules {
                    if let Some(strength) = self.accept(r, hay, s, e, seen) {
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
        if !*hits_sorted {
            // Punctuation-led literals are found after the words: the
            // checks below look hits up by position.
            hits.sort_by_key(|h| h.start);
            *hits_sorted = true;
        }
    }

    /// Whether a regex rule's gate literal occurred (or it has none).
    fn gate_open(&self, rule: u32, st: &State) -> bool {
        self.rules[rule as usize].triggers.is_empty()
            || st
                .gate_seen
                .get(rule as usize / 64)
                .is_some_and(|w| w & (1 << (rule % 64)) != 0)
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
    fn accept(&self, rule: u32, hay: &[u8], s: usize, e: usize, seen: HitsSeen<'_>) -> Option<u8> {
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
            // Only the hits that can reach the window are looked at: a line
            // of many numbers and many context words would otherwise cost
            // their product.
            let hits = seen.around(lo, hi);
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
        // Token rules mostly need context words. The first 64 rules that can
        // fire on this line (their context words occurred, or they need
        // none) as a bit set: a token takes its candidates from the rules
        // that accept its length, instead of a branch per rule that went
        // either way (5.7% of the engine's mispredicted branches on clean
        // lines, callgrind's model). On a line that arms none, tokens skip
        // the rules altogether.
        let armed_tokens = self
            .tokens
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, t)| self.context_possible(t.rule, st))
            .fold(0u64, |m, (k, _)| m | 1 << k);
        let tokens_armed = armed_tokens != 0
            || self
                .tokens
                .iter()
                .skip(64)
                .any(|t| self.context_possible(t.rule, st));
        // Byte classes 64 at a time: separators are skipped, and token ends
        // found, from bit masks rather than byte by byte. The literal pass
        // classified this line; the masks are taken out of the state for
        // the loop (which adds findings to it) and put back after it, so
        // that their buffer is reused.
        // Every exit from a token goes on at `cur.next_stop(end)`: what the
        // loop would reach from `end` through its separator branch, one
        // iteration (and a branch that went either way) fewer per token.
        debug_assert_eq!(st.masks.len(), hay.len());
        let cur = std::mem::take(&mut st.masks);
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
                    i = cur.next_stop(num.end);
                    prev_word = None;
                    continue;
                }
                i = cur.next_stop(i + 1);
                continue;
            }
            // An IPv6 address: hex digits then a colon within five bytes.
            if let Some(rule) = self.ipv6 {
                // The colon is looked up in the masks first: most tokens
                // have none near, and the byte loop of the check is skipped.
                let v6 = if cur.colon_soon(i) {
                    validate::ipv6_at(hay, i)
                } else {
                    None
                };
                if let Some(e) = v6 {
                    if let Some(strength) = self.accept(rule, hay, i, e, st.seen()) {
                        st.findings.push(Finding {
                            start: i,
                            end: e,
                            rule,
                            strength,
                            quote: false,
                        });
                    }
                    i = cur.next_stop(e);
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
                        i = cur.next_stop(e);
                        prev_word = None;
                        continue;
                    }
                }
            }
            if c & class::DIGIT != 0 && !self.numeric.is_empty() && numeric::scan(hay, i, num) {
                self.numeric_candidates(hay, num, st);
                i = cur.next_stop(num.end);
                prev_word = None;
                continue;
            }
            let (e, seen, joined) = token_end(hay, i, &cur);
            if seen & class::DIGIT != 0 {
                let len = e - i;
                if tokens_armed
                    && len >= self.token_min
                    && len <= self.token_max
                    && seen & class::ALPHA != 0
                {
                    // In rule order, as the rules past the 64th after them.
                    let mut found = false;
                    for k in simd::Bits(self.tokens_by_len[len] & armed_tokens) {
                        found = self.token_rule_at(&self.tokens[k], hay, i, e, st);
                        if found {
                            break;
                        }
                    }
                    for t in self.tokens.iter().skip(64) {
                        if found {
                            break;
                        }
                        if len >= t.min && len <= t.max && self.context_possible(t.rule, st) {
                            found = self.token_rule_at(t, hay, i, e, st);
                        }
                    }
                }
                prev_word = None;
                i = cur.next_stop(e);
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
                        i = cur.next_stop(e);
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
                        i = cur.next_stop(e);
                        prev_word = None;
                        continue;
                    }
                }
            }
            prev_word = Some((i, we));
            i = cur.next_stop(we);
        }
        st.masks = cur;

        if let Some(re) = &self.regex {
            if self.regex_armed(st) {
                let cache = regex_cache.get_or_insert_with(|| re.create_cache());
                let mut input = Input::new(hay);
                while let Some(m) = re.search_with(cache, &input) {
                    let mut best: Option<Finding> = None;
                    for &rule in &self.regex_rules[m.pattern().as_usize()] {
                        let r = &self.rules[rule as usize];
                        let gated = self.gate_open(rule, st);
                        let (vs, ve) = match &r.value_regex {
                            Some((vr, g)) if gated => value_group(vr, *g, hay, m.start(), m.end()),
                            _ => Some((m.start(), m.end())),
                        }
                        .unwrap_or((m.start(), m.end()));
                        if gated && ve > vs {
                            if let Some(strength) = self.accept(rule, hay, vs, ve, st.seen()) {
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

    /// Whether token rule `t` takes the token `hay[i..e]` (its pattern and
    /// its checks); if so, its finding is added.
    fn token_rule_at(&self, t: &TokenRule, hay: &[u8], i: usize, e: usize, st: &mut State) -> bool {
        if !t.regex.is_match(&hay[i..e]) {
            return false;
        }
        let Some(strength) = self.accept(t.rule, hay, i, e, st.seen()) else {
            return false;
        };
        st.findings.push(Finding {
            start: i,
            end: e,
            rule: t.rule,
            strength,
            quote: false,
        });
        true
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
            if self.gate_open(rule, st) && self.context_possible(rule, st) {
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
                let (shape, s, e, digits) = num.sub(i, j);
                let mut best: Option<(u32, u8)> = None;
                self.numeric.candidates(shape, digits, |rule| {
                    if !self.context_possible(rule, st) {
                        return;
                    }
                    if let Some(strength) = self.accept(rule, hay, s, e, st.seen()) {
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
}

/// Whether `line` holds one of `words` (lower case) as a whole word,
/// case-insensitively; `_` separates words here (`IL_DL` mentions `dl`).
fn mentions_any(line: &[u8], words: &[Box<[u8]>]) -> bool {
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
///
/// The tokens are found first, in one pass: each `[` is paired with the
/// next `]`, kept from one `[` to the next, so that a line of brackets
/// without a close is not searched to its end once per bracket.
fn drop_inside_own_tokens(hay: &[u8], findings: &mut Vec<Finding>) {
    if memchr::memchr(b'[', hay).is_none() {
        return;
    }
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let mut close = structure::KeptSearch::default();
    for s in memchr::memchr_iter(b'[', hay) {
        let c = close.next(s, |s| {
            memchr::memchr(b']', &hay[s..]).map_or(hay.len(), |j| s + j)
        });
        if c == hay.len() {
            break;
        }
        if structure::is_own_token(&hay[s..=c]) {
            tokens.push((s, c + 1));
        }
    }
    if tokens.is_empty() {
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
        let first = tokens.partition_point(|t| t.0 < f.start);
        let mut seg = f.start;
        let mut split = false;
        for &(ts, te) in tokens[first..].iter().take_while(|t| t.1 <= f.end) {
            push_text_piece(hay, findings, f, seg, ts);
            split = true;
            seg = te;
        }
        if split {
            push_text_piece(hay, findings, f, seg, f.end);
            findings[k].end = findings[k].start;
        }
    }
    // Tokens do not overlap and are in order: the first token ending after
    // a finding's start is the only one that can touch it first.
    findings.retain(|f| {
        let i = tokens.partition_point(|t| t.1 <= f.start);
        f.end > f.start && tokens.get(i).is_none_or(|t| t.0 >= f.end)
    });
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
fn token_end(hay: &[u8], start: usize, cur: &simd::LineMasks) -> (usize, u8, bool) {
    let mut p = start;
    let mut seen = 0;
    let mut joined = false;
    loop {
        let (e, digit, alpha) = cur.token_run(p);
        if digit {
            seen |= class::DIGIT;
        }
        if alpha {
            seen |= class::ALPHA;
        }
        p = e;
        if p + 1 < hay.len()
            && class::is(hay[p], class::TOKEN_JOIN)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PseudonymKey, RuleSet};

    /// Token rules are tried in their order, the first that takes a token
    /// winning, whether they are among the first 64 (read from a bit set by
    /// the token's length) or after them (tried one by one); a rule that
    /// needs context words stays out on a line without them.
    #[test]
    fn token_rules_past_the_64th_and_in_order() {
        // 70 rules: rule k takes two letters of k (`aa` for 0, `ab` for 1,
        // ...) and 3 + k % 7 digits; rules 3 and 10 take the same tokens
        // (`ad` + 6 digits), as do 68 and 69 (`zz` + 9); rule 66 needs the
        // word `lot`.
        let mut yaml = String::from("rules:\n");
        for k in 0..70u8 {
            let (prefix, digits) = match k {
                10 => ("ad".to_string(), 6),
                68 | 69 => ("zz".to_string(), 9),
                _ => (
                    format!("{}{}", (b'a' + k / 26) as char, (b'a' + k % 26) as char),
                    3 + k % 7,
                ),
            };
            yaml.push_str(&format!(
                "  - id: t{k}\n    category: other_identifier\n    detector:\n      token:\n        pattern: '{prefix}\\d{{{digits}}}'\n"
            ));
            if k == 66 {
                yaml.push_str("    context:\n      words: [lot]\n");
            }
        }
        let set = RuleSet::from_yaml("tokens.yaml", &yaml).unwrap();
        let e = Engine::new(&set, PseudonymKey::ephemeral()).unwrap();
        let mut s = e.scratch();
        let mut rule_of = |line: &str| -> Vec<String> {
            e.detect_line(line.as_bytes(), &mut s);
            s.main
                .findings
                .iter()
                .map(|f| e.rules[f.rule as usize].id.clone())
                .collect()
        };
        assert_eq!(rule_of("x aa123 y"), ["t0"]);
        assert_eq!(rule_of("x bl12345 y"), ["t37"]);
        assert_eq!(rule_of("x ad123456 y"), ["t3"]);
        // Past the 64th: rule 65 is `cn` + 3 + 65 % 7 = 5 digits.
        assert_eq!(rule_of("x cn12345 y"), ["t65"]);
        // Rule 66 (`co` + 6 digits) needs its word.
        assert_eq!(rule_of("x co123456 y"), Vec::<String>::new());
        assert_eq!(rule_of("lot co123456"), ["t66"]);
        // Rules 68 and 69 take the same tokens: the first wins.
        assert_eq!(rule_of("x zz123456789 y"), ["t68"]);
    }

    proptest::proptest! {
        /// Looking hits up by position finds every hit a context window can
        /// touch: the same answer as reading them all.
        #[test]
        fn hits_around_a_window_include_every_hit_touching_it(
            mut spans in proptest::collection::vec((0usize..400, 1usize..30), 0..60),
            lo in 0usize..450,
            width in 0usize..60,
        ) {
            spans.sort_unstable();
            let hits: Vec<Hit> = spans
                .iter()
                .map(|&(start, len)| Hit { pattern: 0, start, end: start + len })
                .collect();
            let longest = spans.iter().map(|s| s.1).max().unwrap_or(0);
            let hi = lo + width;
            let seen = HitsSeen { hits: &hits, sorted: true, longest };
            let around = seen.around(lo, hi);
            for h in hits.iter().filter(|h| h.start <= hi && h.end >= lo) {
                proptest::prop_assert!(
                    around.iter().any(|a| a.start == h.start && a.end == h.end),
                    "{}..{} missing for {}..={}", h.start, h.end, lo, hi
                );
            }
        }
    }
}
