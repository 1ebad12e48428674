//! Finding every rule literal (keywords, context words, regex gates) in a
//! line with one scan over its words and a hash-table lookup per word.
//!
//! An Aho-Corasick automaton over the pack's ~400 literals costs about 18
//! instructions a byte on every line: the literals start with every letter,
//! so no prefilter applies, and the overlapping search the engine needs has
//! no fast loop. But a literal that must stand on word boundaries can only
//! begin where a word begins, and then the whole word (the run of letters,
//! digits, `_` and non-ASCII bytes there) must be the literal's first word.
//! So the scan walks the words of the line and looks each one up once, by a
//! key made of its length and its first, second and last bytes (no pass over
//! the word's bytes to hash it); only a hit is compared byte by byte with the
//! literals that start with that word. The tables are a few kilobytes.
//! Word starts and ends come from SSE2 masks of 64 bytes at a time
//! (`simd.rs`), and a 1 KiB bit filter over the keys skips the table probe
//! for nearly every word: both remove branches whose outcome varies from
//! word to word (callgrind, 5 MB clean: the scan's mispredictions fell from
//! 2.45 M to 0.96 M, its instructions from 92 M to 54 M).
//!
//! Cost: about as many instructions as the automaton's plain search (some
//! 18 a byte on the 1 MB clean corpus, most of them the word-boundary
//! branches), but 14% less time for the whole engine on 100 MB: the
//! automaton's loop waits on loads from its large transition table.
//!
//! A literal is split into a *lead* (the bytes before its first word:
//! `" st\""` has the lead `" "`), its first word (`st`) and the *rest*
//! (`"\""`). A match is reported where the line's word equals the first
//! word, the lead ends just before it and the rest follows it.
//!
//! Regex gates (`unbounded` literals) need not stand on word boundaries:
//! `nov` gates the date regex inside `November`. A gate that is one word
//! with nothing after it matches at the start of any longer word
//! (`/patient` in `/patients/12`); such gates are few, and are tried by
//! the word's first byte. A gate is not looked for inside a word (`nov` in
//! `xnov`), which an automaton would find; a gate only decides whether a
//! regex runs, and the pack's regexes want word boundaries there anyway.
//! Literals without any word byte (`@`, `::`) are few; they are found with
//! `memchr::memmem`, a vectorised substring search, or on short values
//! (OTLP attributes) by comparing at each offset.
//!
//! Matching is ASCII case-insensitive; other bytes compare exactly.

use memchr::memmem;

use super::class;
use super::simd::LineMasks;

/// The lower-case form of a word byte, or 0 for a byte that ends a word.
/// Word bytes are the engine's boundary bytes (`class::is_word`): ASCII
/// letters and digits, `_`, and bytes that occur in multi-byte UTF-8.
static WORD_LOWER: [u8; 256] = build_word_lower();

const fn build_word_lower() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = if class::is_word_byte(c) {
            c.to_ascii_lowercase()
        } else {
            0
        };
        b += 1;
    }
    t
}

#[inline(always)]
fn word_lower(b: u8) -> u8 {
    WORD_LOWER[b as usize]
}

/// Below this length a line is searched for punctuation literals offset by
/// offset instead of with `memmem`.
const SHORT_HAY: usize = 48;

/// A word's table key: its length and its first, second and last bytes,
/// lower-cased. Cheap to make at the word's end without reading it again;
/// distinct words that share a key are told apart by the comparison.
#[inline(always)]
fn word_key(first: u8, second: u8, last: u8, len: usize) -> u32 {
    u32::from_le_bytes([first, second, last, len.min(255) as u8])
}

fn key_of(w: &[u8]) -> u32 {
    let second = if w.len() > 1 { w[1] } else { 0 };
    word_key(w[0], second, w[w.len() - 1], w.len())
}

#[inline(always)]
fn slot_of(key: u32, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 7) as usize & mask
}

/// Words of [`LiteralMatcher::filter`]: 8,192 bits, 1 KiB. With some 500
/// first words about one word in sixteen that is no literal's passes it.
const FILTER_WORDS: usize = 128;

/// The filter bit of a key: other hash bits than [`slot_of`] takes.
#[inline(always)]
fn filter_bit(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 19) as usize & (FILTER_WORDS * 64 - 1)
}

#[inline(always)]
fn test_bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// One literal, split around its first word.
#[derive(Debug)]
struct Literal {
    /// The whole literal, lower-cased.
    bytes: Box<[u8]>,
    /// Bytes before the first word.
    lead: usize,
    /// Length of the first word.
    word: usize,
}

impl Literal {
    fn first_word(&self) -> &[u8] {
        &self.bytes[self.lead..self.lead + self.word]
    }

    /// Whether the literal's lead ends at `s` and its rest follows `e`
    /// (`s..e` being the line's word, equal to the literal's first word).
    #[inline]
    fn fits(&self, hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
        let lead = &self.bytes[..self.lead];
        let rest = &self.bytes[self.lead + self.word..];
        let start = s.checked_sub(lead.len())?;
        let end = e + rest.len();
        if end > hay.len()
            || !hay[start..s].eq_ignore_ascii_case(lead)
            || !hay[e..end].eq_ignore_ascii_case(rest)
        {
            return None;
        }
        Some((start, end))
    }
}

/// A distinct first word and the literals that start with it.
#[derive(Debug)]
struct Entry {
    /// Index of one literal with this first word, for the comparison.
    word_of: u32,
    literals: Vec<u32>,
}

/// The compiled literal set. Build once; [`LiteralMatcher::find`] does not
/// allocate.
#[derive(Debug)]
pub struct LiteralMatcher {
    literals: Vec<Literal>,
    entries: Vec<Entry>,
    /// Open addressing over `entries`: the entry's key and its index + 1
    /// (0 for an empty slot). The key sits in the slot so that a word that
    /// is no literal's, nearly every word, costs one load.
    slots: Box<[(u32, u32)]>,
    mask: usize,
    /// Shortest and longest first word in `entries`.
    min_word: usize,
    max_word: usize,
    /// Whether some first word (of `entries` or of a prefix gate) begins
    /// with this lower-case byte: most words of a line are skipped on it.
    starts: [bool; 256],
    /// A bit per hash of each entry's key (see [`filter_bit`]): a word
    /// whose bit is clear is no first word, and the probe of `slots`, whose
    /// outcome a branch predictor cannot guess, is skipped. Nearly every
    /// word of a line is no literal's.
    filter: Box<[u64; FILTER_WORDS]>,
    /// A bit per (first, second) lower-case byte pair that begins the first
    /// word of some prefix gate (second 0 for a one-byte word, whose gates
    /// are marked under every second byte): the gate loop runs only when
    /// the line's word begins with such a pair.
    gate_pairs: Box<[u64; 1024]>,
    /// For each word of `gate_pairs`, the number of bits set in the words
    /// before it: the rank of a set pair is this plus the bits below it in
    /// its word, and indexes `pair_at`.
    pair_rank: Box<[u16; 1024]>,
    /// The prefix gates of each set pair, in literal order:
    /// `pair_gates[pair_at[r]..pair_at[r + 1]]` for the pair of rank `r`.
    /// A word that begins with a gate pair is compared only with the gates
    /// that can match it (the month gates `jan` .. `dec` made words such as
    /// `service` and `message` compare with `sep`, `september`, `mar`,
    /// `march` and `may`), with no test per gate of its first byte (a
    /// branch that went either way: 3% of the engine's mispredicted
    /// branches on clean lines in callgrind's model).
    pair_at: Vec<u32>,
    pair_gates: Vec<u32>,
    /// Literals without a word byte, and their literal indexes.
    punct: Vec<(memmem::Finder<'static>, u32)>,
    /// The first bytes of `punct`, as a table and as a list of the distinct
    /// ones.
    punct_first: Box<[bool; 256]>,
    punct_firsts: Vec<u8>,
}

impl LiteralMatcher {
    /// Compiles `literals` (lower-case). `unbounded[i]` says whether literal
    /// `i` is a regex gate, which may match at the start of a longer word.
    pub fn new(literals: &[String], unbounded: &[bool]) -> LiteralMatcher {
        let mut m = LiteralMatcher {
            literals: Vec::with_capacity(literals.len()),
            entries: Vec::new(),
            slots: Box::new([]),
            mask: 0,
            min_word: usize::MAX,
            max_word: 0,
            starts: [false; 256],
            filter: Box::new([0; FILTER_WORDS]),
            gate_pairs: Box::new([0; 1024]),
            pair_rank: Box::new([0; 1024]),
            pair_at: Vec::new(),
            pair_gates: Vec::new(),
            punct: Vec::new(),
            punct_first: Box::new([false; 256]),
            punct_firsts: Vec::new(),
        };
        let mut prefix_by_byte: Vec<Vec<u32>> = vec![Vec::new(); 256];
        for (i, lit) in literals.iter().enumerate() {
            let bytes: Box<[u8]> = lit.as_bytes().to_ascii_lowercase().into();
            let lead = bytes.iter().position(|&b| word_lower(b) != 0);
            let Some(lead) = lead else {
                // An empty literal would match between every two bytes: it
                // is no literal at all.
                if !bytes.is_empty() {
                    m.punct
                        .push((memmem::Finder::new(&bytes[..]).into_owned(), i as u32));
                    if !m.punct_first[usize::from(bytes[0])] {
                        m.punct_first[usize::from(bytes[0])] = true;
                        m.punct_firsts.push(bytes[0]);
                    }
                }
                m.literals.push(Literal {
                    bytes,
                    lead: 0,
                    word: 0,
                });
                continue;
            };
            let word = bytes[lead..]
                .iter()
                .position(|&b| word_lower(b) == 0)
                .unwrap_or(bytes.len() - lead);
            let literal = Literal { bytes, lead, word };
            let first = literal.first_word()[0];
            m.starts[usize::from(first)] = true;
            if unbounded.get(i).copied().unwrap_or(false) && lead + word == literal.bytes.len() {
                prefix_by_byte[usize::from(first)].push(i as u32);
                let w = literal.first_word();
                let pair = usize::from(first) << 8;
                if w.len() == 1 {
                    (0..256).for_each(|second| set_bit(&mut m.gate_pairs[..], pair | second));
                } else {
                    set_bit(&mut m.gate_pairs[..], pair | usize::from(w[1]));
                }
            } else {
                let w = literal.first_word();
                m.min_word = m.min_word.min(w.len());
                m.max_word = m.max_word.max(w.len());
                match m
                    .entries
                    .iter_mut()
                    .find(|e| m.literals[e.word_of as usize].first_word() == w)
                {
                    Some(e) => e.literals.push(i as u32),
                    None => m.entries.push(Entry {
                        word_of: i as u32,
                        literals: vec![i as u32],
                    }),
                }
            }
            m.literals.push(literal);
        }
        // Half full at most, so a miss ends on an empty slot within a probe or two.
        let size = (m.entries.len() * 2).next_power_of_two().max(16);
        m.mask = size - 1;
        let mut slots = vec![(0u32, 0u32); size];
        for (k, e) in m.entries.iter().enumerate() {
            let key = key_of(m.literals[e.word_of as usize].first_word());
            let mut p = slot_of(key, m.mask);
            while slots[p].1 != 0 {
                p = (p + 1) & m.mask;
            }
            slots[p] = (key, k as u32 + 1);
            set_bit(&mut m.filter[..], filter_bit(key));
        }
        m.slots = slots.into_boxed_slice();
        // The set pairs in order of their bit, each with the gates of its
        // first byte whose second byte is the pair's (or who have none).
        let mut rank = 0u32;
        for (w, bits) in m.gate_pairs.iter().enumerate() {
            m.pair_rank[w] = u16::try_from(rank).expect("at most 65,536 pairs");
            rank += bits.count_ones();
        }
        for pair in 0..(1usize << 16) {
            if !test_bit(&m.gate_pairs[..], pair) {
                continue;
            }
            m.pair_at.push(m.pair_gates.len() as u32);
            let (first, second) = (pair >> 8, (pair & 0xFF) as u8);
            for &id in &prefix_by_byte[first] {
                let gate_second = m.literals[id as usize]
                    .first_word()
                    .get(1)
                    .copied()
                    .unwrap_or(0);
                if gate_second == second || gate_second == 0 {
                    m.pair_gates.push(id);
                }
            }
        }
        m.pair_at.push(m.pair_gates.len() as u32);
        m
    }

    /// Calls `f(literal, start, end)` for every match in `hay`, in no
    /// particular order. Whether a match stands on word boundaries is the
    /// caller's question: a word-led literal is reported wherever its first
    /// word is a whole word of the line, which boundary checks then refine
    /// (`fax-gateway`).
    pub fn find(&self, hay: &[u8], masks: &LineMasks, mut f: impl FnMut(u32, usize, usize)) {
        // Word starts come from the word-byte mask of each 64-byte block
        // (a start is a word byte after a non-word byte) and each word's
        // end from the first clear bit after it: no branch per byte.
        debug_assert_eq!(masks.len(), hay.len());
        let mut base = 0;
        // Whether the byte before `base` is a word byte.
        let mut carry = 0u64;
        for block in masks.blocks() {
            let m = block.word;
            let mut starts = m & !((m << 1) | carry);
            carry = m >> 63;
            while starts != 0 {
                let k = starts.trailing_zeros() as usize;
                starts &= starts - 1;
                let s = base + k;
                let first = word_lower(hay[s]);
                if !self.starts[usize::from(first)] {
                    continue;
                }
                let after = !m >> k;
                let e = if after != 0 {
                    s + after.trailing_zeros() as usize
                } else {
                    masks.word_end(base + 64)
                };
                self.word(hay, s, e, first, &mut f);
            }
            base += 64;
        }
        if self.punct.is_empty() {
            return;
        }
        let mut at_pos = |at: usize| {
            let b = hay[at];
            for (finder, id) in &self.punct {
                let needle = finder.needle();
                if needle[0] == b && hay[at + 1..].starts_with(&needle[1..]) {
                    f(*id, at, at + needle.len());
                }
            }
        };
        match self.punct_firsts[..] {
            // Attribute values are mostly a few bytes long: one loop over
            // them with a table costs less than starting a vectorised
            // search (a loop per literal was 7% of the engine on short
            // values; a slice compare at every offset was once a `memcmp`
            // call per byte).
            _ if hay.len() < SHORT_HAY => {
                for (at, &b) in hay.iter().enumerate() {
                    if self.punct_first[usize::from(b)] {
                        at_pos(at);
                    }
                }
            }
            // The built-in pack's are `@` and `%`: one search for both.
            [a] => memchr::memchr_iter(a, hay).for_each(at_pos),
            [a, b] => memchr::memchr2_iter(a, b, hay).for_each(at_pos),
            [a, b, c] => memchr::memchr3_iter(a, b, c, hay).for_each(at_pos),
            _ => {
                for (finder, id) in &self.punct {
                    let needle = finder.needle();
                    // Overlapping, like the loops above (`find_iter` skips
                    // `::` inside `:::`).
                    let mut from = 0;
                    while let Some(k) = finder.find(&hay[from..]) {
                        f(*id, from + k, from + k + needle.len());
                        from += k + 1;
                    }
                }
            }
        }
    }

    /// The literals whose first word is the line's word `s..e` (`first`
    /// being its first byte, lower-cased).
    #[inline]
    fn word(
        &self,
        hay: &[u8],
        s: usize,
        e: usize,
        first: u8,
        f: &mut impl FnMut(u32, usize, usize),
    ) {
        let len = e - s;
        let second = if len > 1 { word_lower(hay[s + 1]) } else { 0 };
        if len >= self.min_word && len <= self.max_word {
            let key = word_key(first, second, word_lower(hay[e - 1]), len);
            if test_bit(&self.filter[..], filter_bit(key)) {
                self.lookup(hay, s, e, key, f);
            }
        }
        let pair = usize::from(first) << 8 | usize::from(second);
        if !test_bit(&self.gate_pairs[..], pair) {
            return;
        }
        let below = self.gate_pairs[pair / 64] & ((1u64 << (pair % 64)) - 1);
        let r = usize::from(self.pair_rank[pair / 64]) + below.count_ones() as usize;
        let (lo, hi) = (self.pair_at[r] as usize, self.pair_at[r + 1] as usize);
        for &id in &self.pair_gates[lo..hi] {
            let lit = &self.literals[id as usize];
            let w = lit.word;
            if len >= w && hay[s..s + w].eq_ignore_ascii_case(lit.first_word()) {
                if let Some((start, end)) = lit.fits(hay, s, s + w) {
                    f(id, start, end);
                }
            }
        }
    }

    #[inline]
    fn lookup(
        &self,
        hay: &[u8],
        s: usize,
        e: usize,
        key: u32,
        f: &mut impl FnMut(u32, usize, usize),
    ) {
        let mut p = slot_of(key, self.mask);
        loop {
            let (slot_key, k) = self.slots[p];
            if k == 0 {
                return;
            }
            if slot_key != key {
                p = (p + 1) & self.mask;
                continue;
            }
            let entry = &self.entries[k as usize - 1];
            if hay[s..e].eq_ignore_ascii_case(self.literals[entry.word_of as usize].first_word()) {
                for &id in &entry.literals {
                    if let Some((start, end)) = self.literals[id as usize].fits(hay, s, e) {
                        f(id, start, end);
                    }
                }
                return;
            }
            p = (p + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`LiteralMatcher::find`] over a line classified for it.
    fn scan(m: &LiteralMatcher, hay: &[u8], f: impl FnMut(u32, usize, usize)) {
        let mut masks = LineMasks::default();
        masks.classify(hay);
        m.find(hay, &masks, f);
    }

    fn matches(lits: &[(&str, bool)], hay: &str) -> Vec<(String, usize, usize)> {
        let words: Vec<String> = lits.iter().map(|(l, _)| l.to_string()).collect();
        let unbounded: Vec<bool> = lits.iter().map(|(_, u)| *u).collect();
        let m = LiteralMatcher::new(&words, &unbounded);
        let mut out = Vec::new();
        scan(&m, hay.as_bytes(), |id, s, e| {
            out.push((words[id as usize].clone(), s, e));
        });
        out.sort_by_key(|x| (x.1, x.2));
        out
    }

    fn owned(want: &[(&str, usize, usize)]) -> Vec<(String, usize, usize)> {
        want.iter()
            .map(|(l, s, e)| (l.to_string(), *s, *e))
            .collect()
    }

    #[test]
    fn words_phrases_leads_and_rests() {
        let lits = [
            ("phone", false),
            ("date of birth", false),
            ("birth", false),
            ("fax#", false),
            (" st\"", true),
            ("d.o.b", false),
        ];
        let got = matches(
            &lits,
            "Phone: 5; Date of Birth 1 fax# 2 \"1 Main St\" D.O.B",
        );
        let want = [
            ("phone", 0, 5),
            ("date of birth", 10, 23),
            ("birth", 18, 23),
            ("fax#", 26, 30),
            (" st\"", 40, 44),
            ("d.o.b", 45, 50),
        ];
        assert_eq!(got, owned(&want));
    }

    #[test]
    fn whole_words_only_unless_a_gate() {
        let lits = [("call", false), ("nov", true), ("/patient", true)];
        // "called" and "recall" hold "call" but not as a word.
        let got = matches(&lits, "called recall 3-Nov-2020 November /patients/1 xnov");
        let want = [("nov", 16, 19), ("nov", 25, 28), ("/patient", 34, 42)];
        assert_eq!(got, owned(&want));
    }

    #[test]
    fn prefix_gates_sharing_a_first_byte_match_only_their_own_words() {
        // Gates of one first byte with different second bytes, a one-byte
        // gate (any second byte) and a word literal of the same byte.
        let lits = [
            ("sep", true),
            ("september", true),
            ("sat", true),
            ("s", true),
            ("service", false),
        ];
        let got = matches(&lits, "service Sept SATURDAY september x s");
        let want = [
            ("s", 0, 1),
            ("service", 0, 7),
            ("s", 8, 9),
            ("sep", 8, 11),
            ("s", 13, 14),
            ("sat", 13, 16),
            ("s", 22, 23),
            ("sep", 22, 25),
            ("september", 22, 31),
            ("s", 34, 35),
        ];
        assert_eq!(got, owned(&want));
    }

    #[test]
    fn punctuation_literals_and_non_ascii() {
        let lits = [("@", true), ("::", true), ("née", false)];
        let got = matches(&lits, "a@b ::1 Née x");
        // Non-ASCII bytes compare exactly: "Née" lower-cases to "née".
        let want = [("@", 1, 2), ("::", 4, 6), ("née", 8, 12)];
        assert_eq!(got, owned(&want));
    }

    #[test]
    fn punctuation_literals_in_short_and_long_lines() {
        let lits = [("@", true), ("::", true)];
        for pad in [0, 10, 40, 47, 48, 49, 100] {
            let line = format!("{}a@b :::", " ".repeat(pad));
            let want = [
                ("@", pad + 1, pad + 2),
                ("::", pad + 4, pad + 6),
                ("::", pad + 5, pad + 7),
            ];
            assert_eq!(matches(&lits, &line), owned(&want), "pad {pad}");
        }
        assert!(matches(&lits, ":").is_empty());
    }

    /// Punctuation literals are found by one loop on short lines, by one
    /// `memchr`, `memchr2` or `memchr3` over the distinct first bytes on
    /// long ones, and by a search per literal past three first bytes: every
    /// way finds every occurrence, overlapping ones included.
    #[test]
    fn punctuation_literals_with_one_to_four_first_bytes() {
        let all = ["@", "::", "%", "#", "::/", "%%"];
        for k in 1..=all.len() {
            let lits: Vec<(&str, bool)> = all[..k].iter().map(|l| (*l, true)).collect();
            for pad in [0, 47, 100] {
                let line = format!("{}a@b :::/ 5%% #x", " ".repeat(pad));
                let mut want: Vec<(String, usize, usize)> = Vec::new();
                for l in &all[..k] {
                    for at in 0..line.len() {
                        if line[at..].starts_with(l) {
                            want.push((l.to_string(), at, at + l.len()));
                        }
                    }
                }
                want.sort_by_key(|x| (x.1, x.2));
                assert_eq!(matches(&lits, &line), want, "{k} literals, pad {pad}");
            }
        }
    }

    #[test]
    fn a_line_of_any_bytes_is_scanned_without_panic() {
        let lits = [("x", false), ("ab", true), (" c", false), ("d ", false)];
        let words: Vec<String> = lits.iter().map(|(l, _)| l.to_string()).collect();
        let unbounded: Vec<bool> = lits.iter().map(|(_, u)| *u).collect();
        let m = LiteralMatcher::new(&words, &unbounded);
        let hay: Vec<u8> = (0..=255u8).chain(b" c d x ab".iter().copied()).collect();
        let mut n = 0;
        scan(&m, &hay, |_, s, e| {
            assert!(s < e && e <= hay.len());
            n += 1;
        });
        assert!(n >= 3, "{n}");
    }
}
